"""google-genai through breaker: the real ``genai.Client`` (sync and ``aio``) against FakeLLM's Gemini routes.

Costs are checked against genai-prices read independently: ``genai_prices.extract_usage`` (its own
Google extractor) reads the usage the SDK received, and ``calc_price`` prices it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING

import pytest

genai = pytest.importorskip("google.genai")

import google.genai.models as genai_models  # noqa: E402
from genai_prices import calc_price, extract_usage  # noqa: E402
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types  # noqa: E402

from breaker import Budget, BudgetExceeded, Degrade, LoopDetected, LoopPolicy, SessionKilled, UnknownPrice, Usage  # noqa: E402
from breaker.pricing import PriceBook  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from breaker.testing.reply import count_input  # noqa: E402
from tests.providers.conftest import genai_nano, killed_session, nano  # noqa: E402
from tests.telemetry.conftest import otel  # noqa: E402,F401  (the in-memory OpenTelemetry fixture)

MODEL = "gemini-2.5-flash"
PLAIN = Reply(text="the answer is forty two", input_tokens=1_200, output_tokens=5)
CACHED = Reply(text="from the cache", input_tokens=5_000, cached_tokens=4_096, output_tokens=3)
THINKING = Reply(text="after some thought", input_tokens=300, reasoning_tokens=250)


def reference_nano(response) -> int:
    """genai-prices' own figure for the usage in ``response`` (an SDK ``GenerateContentResponse``)."""
    dump = response.model_dump(mode="json", by_alias=True, exclude_none=True)
    extracted = extract_usage(dump, provider_id="google")
    total = calc_price(extracted.usage, extracted.model.id, provider_id="google").total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


def config(**kw) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(**kw)


@pytest.fixture
def client(fake):
    return fake.gemini()


# ------------------------------------------------------------------ exact cost: plain, streamed, cached, thinking
@pytest.mark.parametrize("reply", [PLAIN, CACHED, THINKING], ids=["plain", "cached", "thinking"])
def test_a_call_costs_what_genai_prices_says(guard, fake, client, reply):
    fake.push(reply)
    with guard.session("exact") as s:
        r = client.models.generate_content(model=f"models/{MODEL}", contents="what is the answer?")
    assert s.calls == 1 and fake.count == 1
    assert nano(s.cost_usd) == reference_nano(r) > 0
    u = r.usage_metadata
    assert s.tokens == u.prompt_token_count + (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)


@pytest.mark.parametrize("reply", [PLAIN, CACHED, THINKING], ids=["plain", "cached", "thinking"])
def test_a_streamed_call_costs_what_genai_prices_says(guard, fake, client, reply):
    fake.push(reply)
    with guard.session("stream") as s:
        chunks = list(client.models.generate_content_stream(model=MODEL, contents="stream it"))
    assert len(chunks) > 1 and s.calls == 1 and fake.count == 1
    assert nano(s.cost_usd) == reference_nano(chunks[-1]) > 0  # the last chunk's usage is the final, cumulative one
    assert fake.requests[0].stream and fake.requests[0].path.endswith(":streamGenerateContent?alt=sse")


@pytest.mark.parametrize("reply", [PLAIN, CACHED, THINKING], ids=["plain", "cached", "thinking"])
async def test_async_calls_cost_what_genai_prices_says(guard, fake, client, reply):
    fake.push(reply, reply)
    async with guard.session("aio") as s:
        r = await client.aio.models.generate_content(model=MODEL, contents="async")
        chunks = [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="async 2")]
    assert s.calls == 2 and fake.count == 2
    assert nano(s.cost_usd) == pytest.approx(reference_nano(r) + reference_nano(chunks[-1]), abs=1)


def test_thinking_is_output_and_reasoning(guard, fake, client):
    fake.push(Reply(text="four words of answer", input_tokens=100, reasoning_tokens=900))
    with guard.session("think") as s:
        r = client.models.generate_content(
            model=MODEL, contents="think", config=config(thinking_config=types.ThinkingConfig(thinking_budget=1000)))
    assert r.usage_metadata.thoughts_token_count == 900 and r.usage_metadata.candidates_token_count == 4
    assert s.tokens == 100 + 904
    assert nano(s.cost_usd) == genai_nano(Usage(100, 904, reasoning_tokens=900), MODEL, "google")


@pytest.mark.parametrize("usage, expect", [
    # Audio input is dearer than text on 2.5 Flash: the modality breakdown is billed.
    ({"promptTokenCount": 1000, "candidatesTokenCount": 10, "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 400}, {"modality": "AUDIO", "tokenCount": 600}]},
     Usage(1000, 10, input_audio_tokens=600)),
    # Tool-use prompt tokens (a code-execution or search round inside the request) are input too.
    ({"promptTokenCount": 100, "toolUsePromptTokenCount": 50, "candidatesTokenCount": 5}, Usage(150, 5)),
], ids=["audio", "tool-use-prompt"])
def test_usage_details_are_billed(guard, fake, client, usage, expect):
    fake.push(Reply(text="ok", raw_usage=usage))
    with guard.session("details") as s:
        r = client.models.generate_content(model=MODEL, contents="listen")
    assert s.tokens == expect.total_tokens
    assert nano(s.cost_usd) == reference_nano(r)
    if expect.input_audio_tokens:  # the audio tokens really were priced at the audio rate
        assert nano(s.cost_usd) > genai_nano(Usage(1000, 10), MODEL, "google")


@pytest.mark.parametrize("model, searches", [("gemini-2.5-flash", 1), ("gemini-3-flash-preview", 3)])
def test_search_grounding_fees(guard, fake, client, model, searches):
    # Gemini 2.x bills a grounded prompt, Gemini 3 each search query it ran.
    fake.push(Reply(text="grounded answer", input_tokens=80, output_tokens=2, web_search_calls=3))
    tools = [types.Tool(google_search=types.GoogleSearch())]
    with guard.session(f"search-{model}") as s:
        client.models.generate_content(model=model, contents="news?", config=config(tools=tools))
    assert nano(s.cost_usd) == genai_nano(Usage(80, 2, web_search_calls=searches), model, "google")
    assert nano(s.cost_usd) > genai_nano(Usage(80, 2), model, "google")


@pytest.mark.parametrize("prompt", [200_000, 250_000])
def test_long_context_tier(guard, fake, client, prompt):
    fake.push(Reply(text="long", input_tokens=prompt, output_tokens=100))
    with guard.session(f"long-{prompt}") as s:
        r = client.models.generate_content(model="gemini-2.5-pro", contents="a long document")
    assert nano(s.cost_usd) == reference_nano(r)
    rate_in, rate_out = (2.5, 15) if prompt > 200_000 else (1.25, 10)  # USD per million, all tokens at the tier
    assert nano(s.cost_usd) == nano((prompt * rate_in + 100 * rate_out) / 1e6)


def test_models_prefix_prices_like_the_bare_name():
    book = PriceBook()
    prefixed, bare = book.lookup("models/gemini-2.5-flash", "google"), book.lookup("gemini-2.5-flash", "google")
    assert prefixed is not None and bare is not None
    assert (prefixed.model, prefixed.bands, prefixed.den) == (bare.model, bare.bands, bare.den)


# ------------------------------------------------------------------ enforcement
def test_unaffordable_call_is_refused_before_any_request(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    with killed_session(guard, "poor"):
        with pytest.raises(BudgetExceeded):
            client.models.generate_content(model=MODEL, contents="x" * 5_000, config=config(max_output_tokens=1000))
    assert fake.count == 0


def test_unaffordable_stream_is_refused_before_any_request(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    with killed_session(guard, "poor-stream"):
        with pytest.raises(BudgetExceeded):
            for _ in client.models.generate_content_stream(model=MODEL, contents="x" * 5_000):
                pass
    assert fake.count == 0


def test_a_kill_passes_through_except_exception(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    attempts = 0
    with pytest.raises(SessionKilled) as info:
        with guard.session("swallow"):
            for _ in range(3):
                attempts += 1
                try:
                    client.models.generate_content(model=MODEL, contents="y" * 5_000)
                except Exception:  # agent code that swallows errors does not swallow the kill
                    pass
    assert isinstance(info.value.__cause__, BudgetExceeded)
    assert attempts == 1 and fake.count == 0


def test_a_runaway_agent_is_stopped_within_its_budget(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(usd=0.002)]).instrument()
    fake.default = Reply(text="keep going", output_tokens=90)  # input: what the fake counts in the request
    with killed_session(guard, "runaway") as s:
        for i in range(100):
            client.models.generate_content(model=MODEL, contents=f"step {i} " + "context " * 50,
                                           config=config(max_output_tokens=100))
    assert 1 < fake.count == s.calls < 100
    assert s.cost_usd <= 0.002  # settled spend never passes a kill limit
    with pytest.raises(SessionKilled):  # the trip is sticky: a new call in the session is refused unsent
        with guard.session("runaway"):
            client.models.generate_content(model=MODEL, contents="again")
    assert fake.count == s.calls


def test_output_cap_is_lowered_to_what_the_budget_affords(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(tokens=600)]).instrument()
    with guard.session("cap"):
        client.models.generate_content(model=MODEL, contents="cap", config=config(max_output_tokens=5_000))
        client.models.generate_content(model=MODEL, contents="no cap given")
        list(client.models.generate_content_stream(model=MODEL, contents="stream cap"))
    caps = [r.body["generationConfig"]["maxOutputTokens"] for r in fake.requests]
    assert all(16 <= c < 600 for c in caps)  # lowered, or set where the request had none


def test_cap_is_per_candidate_and_never_raised(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(tokens=1_000)]).instrument()
    with guard.session("cands"):
        client.models.generate_content(model=MODEL, contents="c", config=config(max_output_tokens=5_000, candidate_count=2))
        client.models.generate_content(model=MODEL, contents="d", config=config(max_output_tokens=50))
    two, small = (r.body["generationConfig"]["maxOutputTokens"] for r in fake.requests)
    assert 2 * two < 1_000  # two candidates share what the budget affords
    assert small == 50


def test_stream_passing_its_reservation_is_cut_and_billed_what_arrived(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(tokens=400)]).instrument()
    fake.push(Reply(text=" ".join(["w"] * 400), input_tokens=20, ignore_cap=True))  # ignores the lowered cap
    received = 0
    with guard.session("cut") as s:
        with pytest.raises(BudgetExceeded) as info:
            for _ in client.models.generate_content_stream(model=MODEL, contents="cut"):
                received += 1
        assert info.value.reason == "stream_cut"
        cap = fake.requests[0].output_cap
        assert cap is not None and cap < 400 and 100 < received < 400
        assert s.calls == 1 and s.tokens <= 401  # what arrived: at most one chunk past the reservation
        assert s.tokens >= 20 + received
    assert fake.count == 1


def test_broken_stream_is_billed_what_arrived(guard, fake, client):
    fake.push(Reply(text="one two three four five six", input_tokens=30, break_after=3))
    seen = 0
    with guard.session("broken") as s:
        with pytest.raises(Exception):
            for _ in client.models.generate_content_stream(model=MODEL, contents="b"):
                seen += 1
        assert seen == 3
        assert s.calls == 1 and s.tokens >= 30 + 3  # the reported prompt and every chunk that arrived


def test_abandoned_stream_is_billed_what_arrived(guard, fake, client):
    fake.push(Reply(text="one two three four five six seven eight", input_tokens=40))
    with guard.session("abandon") as s:
        stream = client.models.generate_content_stream(model=MODEL, contents="a")
        next(stream), next(stream)
        del stream  # the caller walks away: the SDK's generator is closed, breaker's proxy settles
        assert s.calls == 1 and s.tokens >= 40 + 2 and s.cost_usd > 0


def test_an_error_status_is_a_failed_call_not_billed(make_guard, fake, client):
    guard = make_guard(loops=LoopPolicy(max_errors=2)).instrument()
    fake.push(Reply(status=400), Reply(status=400))
    with killed_session(guard, "errors") as s:
        with pytest.raises(genai_errors.ClientError):
            client.models.generate_content(model=MODEL, contents="e1")
        with pytest.raises(genai_errors.ClientError):
            list(client.models.generate_content_stream(model=MODEL, contents="e2"))
        assert s.calls == 2 and s.cost_usd == 0  # both counted, neither billed
        with pytest.raises(LoopDetected):
            client.models.generate_content(model=MODEL, contents="e3")
    assert fake.count == 2


def test_identical_calls_are_stopped_before_sending(guard, fake, client):
    with killed_session(guard, "loop"):
        with pytest.raises(LoopDetected):
            for _ in range(10):
                client.models.generate_content(model=MODEL, contents="same request")
    assert fake.count == 3  # max_identical=3: the 4th was refused


def test_tool_thrash_is_detected_from_the_models_function_calls(make_guard, fake, client):
    guard = make_guard(loops=LoopPolicy(max_tool_repeats=2)).instrument()
    fake.default = Reply(tool_calls=[("search", {"q": "same"})])
    with killed_session(guard, "thrash"):
        with pytest.raises(LoopDetected) as info:
            for i in range(10):  # distinct requests, the same function call asked for each time
                list(client.models.generate_content_stream(model=MODEL, contents=f"t{i}"))
    assert "search" in str(info.value)
    assert fake.count == 3


def test_malformed_usage_is_returned_and_billed_at_worst_case(guard, fake, client):
    fake.push(Reply(raw_usage={"promptTokenCount": -5, "candidatesTokenCount": 1}))
    with guard.session("bad") as s:
        r = client.models.generate_content(model=MODEL, contents="bad", config=config(max_output_tokens=50))
    assert r.text  # the caller gets the answer
    assert s.calls == 1 and s.tokens >= 50  # the whole reservation, never a silent $0


def test_unknown_model_is_refused_before_sending(guard, fake, client):
    with pytest.raises(UnknownPrice):
        with guard.session("unknown"):
            client.models.generate_content(model="gemini-unknown-9", contents="?")
    assert fake.count == 0


def test_degrade_switches_model_thinking_and_trims_history(make_guard, fake, client):
    degrade = Degrade(model_map={"gemini-2.5-pro": "gemini-2.5-flash"}, reasoning_effort="low", keep_last_messages=2)
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=degrade).instrument()
    history = [{"role": r, "parts": [{"text": f"{r} {i}"}]} for i in range(3) for r in ("user", "model")][:-1]
    thinking = config(thinking_config=types.ThinkingConfig(thinking_budget=8_000))
    with guard.session("deg"):
        client.models.generate_content(model="gemini-2.5-pro", contents=history[:1], config=thinking)
        client.models.generate_content(model="gemini-2.5-pro", contents=history, config=thinking)
    first, second = fake.requests
    assert first.model == "gemini-2.5-pro" and second.model == "gemini-2.5-flash"

    def budget(r):
        t = r.body["generationConfig"]["thinkingConfig"]
        return t.get("thinkingBudget", t.get("thinking_budget"))

    assert budget(first) == 8_000 and budget(second) == 1_024
    # The last two contents start on a model turn: the opening user turn is kept in front.
    assert [c["parts"][0]["text"] for c in second.body["contents"]] == ["user 0", "model 1", "user 2"]
    assert thinking.thinking_config.thinking_budget == 8_000  # the caller's config is never changed


def test_degrade_lowers_a_gemini_3_thinking_level(make_guard, fake, client):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=Degrade(reasoning_effort="low")).instrument()
    cfg = config(thinking_config=types.ThinkingConfig(thinking_level="HIGH"))
    with guard.session("level"):
        for i in range(2):
            client.models.generate_content(model="gemini-3-flash-preview", contents=f"lvl {i}", config=cfg)

    def level(r):
        t = r.body["generationConfig"]["thinkingConfig"]
        return t.get("thinkingLevel", t.get("thinking_level"))

    assert [level(r) for r in fake.requests] == ["HIGH", "LOW"]


async def test_an_async_error_status_is_a_failed_call_not_billed(guard, fake, client):
    fake.push(Reply(status=429), Reply(status=500))
    async with guard.session("aerrors") as s:
        with pytest.raises(genai_errors.ClientError):
            await client.aio.models.generate_content(model=MODEL, contents="a1")
        with pytest.raises(genai_errors.ServerError):
            async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="a2"):
                pass
        assert s.calls == 2 and s.cost_usd == 0
    assert fake.count == 2


def test_trimming_keeps_function_calls_with_their_responses():
    from breaker.providers.trim import trim_messages

    def turn(role, *parts):
        return types.Content(role=role, parts=list(parts))

    call = types.Part.from_function_call(name="lookup", args={"order": 42})
    answer = types.Part.from_function_response(name="lookup", response={"status": "late"})
    task, tool_turn, tool_answer = turn("user", types.Part(text="task")), turn("model", call), turn("user", answer)
    history = [task, tool_turn, tool_answer, turn("model", types.Part(text="it is late")),
               turn("user", types.Part(text="why?")), turn("model", call), turn("user", answer)]
    kept = trim_messages(history, 1, style="gemini")  # the last turn answers a call: the call stays with it
    assert kept == [task, history[5], history[6]]  # and the window starts on the opening user turn
    assert trim_messages(history[:3], 1, style="gemini") == history[:3]


def test_media_parts_are_bounded_as_documented():
    from breaker.estimate import DOCUMENT_PART_TOKENS, IMAGE_PART_TOKENS
    from breaker.providers.gemini import GeminiAdapter

    image = types.Part.from_bytes(data=b"\x89PNG" + b"\0" * 200_000, mime_type="image/png")
    audio = types.Part.from_bytes(data=b"ID3" + b"\1" * 50_000, mime_type="audio/mp3")
    describe = GeminiAdapter().describe
    with_image = describe({"model": MODEL, "contents": [types.Part(text="what is this?"), image]}, True)
    with_audio = describe({"model": MODEL, "contents": [types.Part(text="transcribe"), audio]}, True)
    assert IMAGE_PART_TOKENS <= with_image.input_tokens < IMAGE_PART_TOKENS + 200  # not the image's bytes
    assert with_audio.input_tokens >= 50_003 + DOCUMENT_PART_TOKENS  # audio: its bytes, more than Gemini bills
    assert with_image.fingerprint != describe({"model": MODEL, "contents": [
        types.Part(text="what is this?"), types.Part.from_bytes(data=b"other", mime_type="image/png")]}, True).fingerprint


def test_an_uploaded_file_given_as_a_part_is_bounded_by_its_size(make_guard, fake, client):
    """``client.files.upload`` returns a ``types.File``; passed as a part, the SDK sends it as a
    ``file_data`` reference. Its ``size_bytes`` bounds it as a blob's bytes do, where a bare
    URI can only be estimated: 12 MB of audio must not be admitted on a 6,000-token guess."""
    from breaker.estimate import DOCUMENT_PART_TOKENS, IMAGE_PART_TOKENS
    from breaker.providers.gemini import GeminiAdapter

    audio = types.File(name="files/abc", uri="https://x/files/abc", mime_type="audio/mpeg", size_bytes=12_345_678)
    image = types.File(name="files/img", uri="https://x/files/img", mime_type="image/png", size_bytes=9_000_000)
    describe = GeminiAdapter().describe
    assert describe({"model": MODEL, "contents": [audio, "hi"]}, True).input_tokens >= 12_345_678 + DOCUMENT_PART_TOKENS
    assert IMAGE_PART_TOKENS <= describe({"model": MODEL, "contents": [image, "hi"]}, True).input_tokens < 2 * IMAGE_PART_TOKENS
    by_uri = describe({"model": MODEL, "contents": [types.Part.from_uri(file_uri=audio.uri, mime_type="audio/mpeg")]}, True)
    bare = describe({"model": MODEL, "contents": [{"file_uri": audio.uri, "mime_type": "audio/mpeg"}]}, True)
    assert bare.input_tokens == by_uri.input_tokens >= DOCUMENT_PART_TOKENS  # the SDK sends a bare FileData dict as a file
    other = types.File(name="files/def", uri="https://x/files/def", mime_type="audio/mpeg", size_bytes=12_345_678)
    assert describe({"model": MODEL, "contents": [audio]}, True).fingerprint != describe(
        {"model": MODEL, "contents": [other]}, True).fingerprint  # another upload is another request

    guard = make_guard(budgets=[Budget(usd=0.05)]).instrument()
    fake.push(Reply(text="a transcript", input_tokens=2_000, output_tokens=3))
    with killed_session(guard, "upload"):
        client.models.generate_content(  # the same reference by URI: an estimate, affordable
            model=MODEL, contents=[types.Part.from_uri(file_uri=audio.uri, mime_type="audio/mpeg"), "hi"],
            config=config(max_output_tokens=100))
        assert fake.count == 1 and "fileData" in fake.requests[0].body["contents"][0]["parts"][0]
        with pytest.raises(BudgetExceeded):
            client.models.generate_content(model=MODEL, contents=[audio, "hi"], config=config(max_output_tokens=100))
    assert fake.count == 1  # refused before any request


def test_a_text_only_request_is_reserved_at_text_rates(make_guard, fake, client):
    """gemini-2.5-flash bills audio input at 3.3 times text: a request of text alone cannot be
    billed audio, so it is reserved at the text rates. The same request with a cached content
    (which may hold audio) or a media part is reserved at the dearest kind, as before."""
    from breaker.providers.gemini import GeminiAdapter

    describe = GeminiAdapter().describe
    text = {"model": MODEL, "contents": "x" * 40_000, "config": config(max_output_tokens=100)}
    cached = {**text, "contents": "y" * 40_000,  # other text, of the same size: nothing learned of it
              "config": config(max_output_tokens=100, cached_content="cachedContents/abc")}
    plain, unsure = describe(text, True), describe(cached, True)  # strict: the guard's default bound
    assert plain.text_only and not unsure.text_only and plain.input_tokens == unsure.input_tokens
    media = {**text, "contents": ["x" * 40_000, types.Part.from_bytes(data=b"ID3", mime_type="audio/mp3")]}
    tool = {**text, "config": config(max_output_tokens=100, tools=[types.Tool(url_context=types.UrlContext())])}
    assert not describe(media, True).text_only and not describe(tool, True).text_only
    price = PriceBook().lookup(MODEL, "google")
    text_worst = price.worst_case(plain.input_tokens, True)[0] + price.worst_case(0)[1] * 100
    any_worst = price.worst_case(plain.input_tokens)[0] + price.worst_case(0)[1] * 100
    assert any_worst > 2 * text_worst

    guard = make_guard(budgets=[Budget(usd=2 * text_worst / 1e9)]).instrument()
    fake.push(Reply(text="ok"))  # usage from the request: its input from its size, two output tokens
    with killed_session(guard, "text-rates"):
        client.models.generate_content(**text)  # reserved at text rates: affordable
        assert fake.count == 1
        with pytest.raises(BudgetExceeded):
            client.models.generate_content(**cached)  # the same size, reserved at the audio rate: not
    assert fake.count == 1


def test_a_function_tool_is_bounded_as_the_declaration_sent():
    from breaker.providers.gemini import GeminiAdapter

    def lookup_order(order_id: int, include_history: bool = False) -> dict:
        """Look an order up in the shop's database, with its delivery history if asked."""
        return {}

    call = GeminiAdapter().describe({"model": MODEL, "contents": "x", "config": config(tools=[lookup_order])}, True)
    assert call.tools == ("lookup_order",)
    assert call.input_tokens > len(lookup_order.__doc__) + len("order_id") + len("include_history")


# ------------------------------------------------------------------ counted once: chats, function calling, count_tokens
def test_a_chat_turn_is_counted_once(guard, fake, client):
    with guard.session("chat") as s:
        chat = client.chats.create(model=MODEL)
        chat.send_message("hello")
        for _ in chat.send_message_stream("and again"):
            pass
    assert s.calls == 2 and fake.count == 2
    assert len(fake.requests[1].body["contents"]) == 3  # the second turn carried the history


async def test_an_async_chat_turn_is_counted_once(guard, fake, client):
    async with guard.session("achat") as s:
        chat = client.aio.chats.create(model=MODEL)
        await chat.send_message("hello")
        async for _ in await chat.send_message_stream("again"):
            pass
    assert s.calls == 2 and fake.count == 2


def test_automatic_function_calling_bills_each_request(guard, fake, client):
    calls = []

    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    fake.push(Reply(tool_calls=[("get_weather", {"city": "Paris"})], input_tokens=60),
              Reply(text="It is sunny in Paris", input_tokens=90))
    with guard.session("afc") as s:
        r = client.models.generate_content(model=MODEL, contents="weather in Paris?", config=config(tools=[get_weather]))
    assert calls == ["Paris"] and r.text == "It is sunny in Paris"
    assert s.calls == 2 == fake.count  # the SDK's two requests, each admitted and billed
    assert fake.requests[0].body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert s.tokens > 60 + 90


def test_count_tokens_is_not_billed(guard, fake, client):
    with guard.session("count") as s:
        r = client.models.count_tokens(model=MODEL, contents="how many tokens is this?")
    assert r.total_tokens == count_input({"contents": [{"parts": [{"text": "how many tokens is this?"}],
                                                        "role": "user"}]}) > 0  # answered by the fake
    assert s.calls == 0 and s.cost_usd == 0


# ------------------------------------------------------------------ wrap / instrument
def test_wrap_covers_the_client_and_its_aio_only(make_guard, fake):
    guard = make_guard()
    client = guard.wrap(fake.gemini())
    assert guard.wrap(client) is client  # idempotent
    plain = fake.gemini()
    with guard.session("wrap") as s:
        client.models.generate_content(model=MODEL, contents="wrapped")
        list(client.models.generate_content_stream(model=MODEL, contents="wrapped stream"))
        plain.models.generate_content(model=MODEL, contents="not wrapped")
    assert s.calls == 2 and fake.count == 3


async def test_wrap_covers_aio(make_guard, fake):
    guard = make_guard()
    client = guard.wrap(fake.gemini())
    async with guard.session("wrap-aio") as s:
        await client.aio.models.generate_content(model=MODEL, contents="a")
        async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="b"):
            pass
    assert s.calls == 2 and s.cost_usd > 0


def test_wrap_and_instrument_together_count_a_call_once(guard, fake):
    client = guard.wrap(fake.gemini())
    with guard.session("both") as s:
        client.models.generate_content(model=MODEL, contents="both")
        client.chats.create(model=MODEL).send_message("chat")
    assert s.calls == 2 == fake.count


def test_instrument_patches_and_uninstrument_restores(make_guard, fake):
    names = [(cls, m) for cls in ("Models", "AsyncModels") for m in ("_generate_content", "_generate_content_stream")]
    before = {k: vars(getattr(genai_models, k[0]))[k[1]] for k in names}
    guard = make_guard().instrument()
    assert all(vars(getattr(genai_models, c))[m] is not before[(c, m)] for c, m in names)
    guard.uninstrument()
    assert all(vars(getattr(genai_models, c))[m] is before[(c, m)] for c, m in names)
    with guard.session("after") as s:
        keep = fake.gemini()  # a genai.Client closes its HTTP client when collected: keep it
        keep.models.generate_content(model=MODEL, contents="after")
    assert s.calls == 0 and fake.count == 1


def test_telemetry_span_per_request(make_guard, fake, otel):  # noqa: F811
    guard = make_guard(telemetry=otel.telemetry()).instrument()
    fake.push(Reply(text="traced", input_tokens=120, cached_tokens=20, reasoning_tokens=7))
    with guard.session("otel"):
        keep = fake.gemini()
        keep.models.generate_content(model=MODEL, contents="trace me")
    (span,) = otel.spans()
    a = span.attributes
    assert span.name == f"generate_content {MODEL}" and a["gen_ai.provider.name"] == "google"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (120, 8)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 20 and a["gen_ai.usage.reasoning.output_tokens"] == 7
    assert "trace me" not in repr(dict(a)) and "traced" not in repr(dict(a))  # no content leaves


# ------------------------------------------------------------------ FakeLLM's Gemini wire format
def test_fake_speaks_gemini(fake, client):
    fake.push(Reply(text="one two three four five", input_tokens=50, cached_tokens=20, reasoning_tokens=3),
              Reply(text="a b c", input_tokens=10, reasoning_tokens=2), Reply(status=503))
    r = client.models.generate_content(model=MODEL, contents="hi", config=config(max_output_tokens=5))
    u = r.usage_metadata
    assert (u.prompt_token_count, u.cached_content_token_count) == (50, 20)
    assert (u.candidates_token_count, u.thoughts_token_count) == (2, 3)  # 5 words + 3 thoughts capped at 5
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS and r.text == "one two "
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    counts = [c.usage_metadata.candidates_token_count for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 3  # cumulative, final on the last chunk
    assert [c.candidates[0].finish_reason for c in chunks][-1] == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.thoughts_token_count == 2
    with pytest.raises(genai_errors.ServerError):
        client.models.generate_content(model=MODEL, contents="hi")
    assert [r.model for r in fake.requests] == [MODEL] * 3 and fake.requests[0].output_cap == 5


def test_fake_gemini_base_url_works_with_a_plain_client():
    with FakeLLM() as fake:
        client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=fake.gemini_base_url))
        assert client.models.generate_content(model=MODEL, contents="hi").text == "Hello from FakeLLM."


def test_the_example_runs_offline():
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    done = subprocess.run([sys.executable, str(root / "examples" / "gemini_example.py")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "model: Your order 42 is at the hub." in out and "3 calls" in out
    assert "SessionKilled: Session 'runaway' was stopped" in out and "agent swallowed" not in out
    m = re.search(r"in (\d+) calls; FakeLLM received (\d+) of them", out)
    assert m and m.group(1) == m.group(2) != "0"
