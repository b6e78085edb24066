"""Streams: usage asked for and hidden, billed when abandoned, closed or broken, cut at the reservation."""

from __future__ import annotations

import gc

from breaker.estimate import estimate

import openai
import pytest

from breaker import Budget, BudgetExceeded, LoopDetected, LoopPolicy, SessionKilled, Usage
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, genai_nano, killed_session, messages, nano

WORDS = " ".join(f"w{i}" for i in range(40))  # 40 words: 40 content chunks, 3 bytes each (+1 space)


def _stream(client, tag, **kw):
    return client.chat.completions.create(model=OPENAI_MODEL, messages=messages(tag), stream=True, **kw)


def test_usage_is_requested_and_the_usage_chunk_hidden(guard, fake):
    fake.push(Reply(text="a b c", input_tokens=20, output_tokens=3))
    client = fake.openai(max_retries=0)
    with guard.session("hide") as s:
        chunks = list(_stream(client, "hide"))
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)  # chunk.choices[0] works on every chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b c"
    assert s.tokens == 23 and nano(s.cost_usd) == genai_nano(Usage(20, 3), OPENAI_MODEL, "openai")


def test_usage_chunk_the_caller_asked_for_is_kept(guard, fake):
    fake.push(Reply(text="a b c", input_tokens=20, output_tokens=3))
    client = fake.openai(max_retries=0)
    with guard.session("keep") as s:
        chunks = list(_stream(client, "keep", stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 20
    assert s.tokens == 23


def test_abandoned_stream_is_billed_for_what_arrived(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.openai(max_retries=0)
    with guard.session("abandon") as s:
        stream = _stream(client, "abandon")
        for _ in zip(range(5), stream):  # role chunk + 4 content chunks, then walk away
            pass
        assert s.calls == 0  # still open
        del stream
        gc.collect()
        assert s.calls == 1
        # Input at the request's strict bound; output: "w0 w1 w2 w3 " = 12 bytes, the conservative count.
        bound = estimate(OPENAI_MODEL, messages("abandon"))[0]
        assert s.tokens == bound + 12
        assert nano(s.cost_usd) == genai_nano(Usage(bound, 12), OPENAI_MODEL, "openai")


def test_stream_closed_early_is_billed_once(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.openai(max_retries=0)
    with guard.session("close") as s:
        stream = _stream(client, "close")
        next(stream), next(stream), next(stream)  # role chunk + "w0 " + "w1 "
        stream.close()
        stream.close()
        gc.collect()
        assert s.calls == 1
        assert s.tokens == estimate(OPENAI_MODEL, messages("close"))[0] + 6  # "w0 w1 " arrived


def test_stream_used_as_context_manager_is_billed_on_exit(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.anthropic(max_retries=0)
    with guard.session("cm") as s:
        with client.messages.create(model=ANTHROPIC_MODEL, max_tokens=500, messages=messages("cm"), stream=True) as st:
            for event in st:
                if event.type == "content_block_delta":
                    break
        assert s.calls == 1
        # Anthropic's message_start reported the exact input (30): only the output is estimated.
        assert s.tokens == 30 + 3


def test_broken_stream_is_billed_and_counted_as_an_error(make_guard, fake):
    guard = make_guard(loops=LoopPolicy(max_errors=1)).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30, break_after=6))
    client = fake.openai(max_retries=0)
    with killed_session(guard, "broken") as s:
        seen = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in _stream(client, "broken"):
                seen.append(chunk)
        assert len(seen) == 6 and s.calls == 1 and s.cost_usd > 0
        # The loop detector saw the failure: with max_errors=1 the next call is refused before sending.
        with pytest.raises(LoopDetected):
            _stream(client, "broken-2")
        assert fake.count == 1


def test_anthropic_stream_uses_the_final_cumulative_usage(guard, fake):
    fake.push(Reply(text="x y", input_tokens=40, cached_tokens=15, output_tokens=7))
    client = fake.anthropic(max_retries=0)
    with guard.session("cum") as s:
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages("cum")) as st:
            st.until_done()
    # message_start says output_tokens=1, message_delta says 7 in total: 7, not 8.
    assert s.tokens == 47
    assert nano(s.cost_usd) == genai_nano(Usage(40, 7, cache_read_tokens=15), ANTHROPIC_MODEL, "anthropic")


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_stream_passing_its_reservation_is_cut(make_guard, fake, api):
    # A provider that ignores the lowered cap: 400 words while the budget pays for far fewer.
    guard = make_guard(budgets=[Budget(tokens=400)]).instrument()
    fake.push(Reply(text=" ".join(["w"] * 400), input_tokens=20, ignore_cap=True))
    session = guard.session(f"cut-{api}")
    try:
        with session as s:
            received = 0
            with pytest.raises(BudgetExceeded) as info:
                if api == "chat":
                    for _ in _stream(fake.openai(max_retries=0), "cut"):
                        received += 1
                elif api == "responses":
                    for _ in fake.openai(max_retries=0).responses.create(model=OPENAI_MODEL, input="cut", stream=True):
                        received += 1
                else:
                    with fake.anthropic(max_retries=0).messages.stream(
                        model=ANTHROPIC_MODEL, max_tokens=1000, messages=messages("cut")
                    ) as st:
                        for _ in st.text_stream:
                            received += 1
            cap = fake.requests[0].output_cap
            assert cap is not None and cap < 400  # the request carried the lowered cap
            assert info.value.reason == "stream_cut"
            assert received < 400
            # The provider overshot, so what arrived is billed: at most one chunk past what was reserved.
            assert s.calls == 1 and s.tokens <= 401 and received > 100
    except SessionKilled:  # the overshoot the provider caused passed a hard limit: the session is stopped too
        assert api != "messages"  # Anthropic's exact input leaves room under the limit
    assert fake.count == 1


async def test_async_stream_abandoned_is_billed(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.async_openai(max_retries=0)
    async with guard.session("async-abandon") as s:
        stream = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("aa"), stream=True)
        await stream.__anext__()
        await stream.__anext__()
        await stream.close()
        assert s.calls == 1 and s.cost_usd > 0


async def test_async_stream_broken(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30, break_after=3))
    client = fake.async_anthropic(max_retries=0)
    async with guard.session("async-broken") as s:
        with pytest.raises(Exception):
            async with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=500, messages=messages("ab")) as st:
                async for _ in st:
                    pass
        assert s.calls == 1 and s.tokens >= 30


def test_malformed_streamed_usage_is_read_through_and_billed_at_worst_case(guard, fake):
    fake.push(Reply(raw_usage={"prompt_tokens": 5, "completion_tokens": -3}))
    client = fake.openai(max_retries=0)
    with guard.session("bad-stream") as s:
        chunks = list(_stream(client, "bad-stream", max_tokens=50))
        assert chunks  # the caller reads the whole stream
        assert s.calls == 1 and s.tokens >= 50  # the whole reservation, never a silent $0


@pytest.mark.parametrize("helper", ["chat", "responses"])
def test_leaving_a_stream_helper_early_settles_at_once(guard, fake, helper):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.openai(max_retries=0)
    with guard.session(f"early-{helper}") as s:
        if helper == "chat":
            manager = client.chat.completions.stream(model=OPENAI_MODEL, messages=messages("early"))
        else:
            manager = client.responses.stream(model=OPENAI_MODEL, input="early")
        with manager as stream:
            for event in stream:
                if "delta" in event.type:
                    break
        assert s.calls == 1 and s.tokens > 30  # settled on exit, not at garbage collection
        kept = stream  # still referenced: nothing was collected
    assert kept is not None
