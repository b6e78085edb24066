"""The price the provider bills (issue 17): service tiers, the provider behind a host, aliases,
audio tokens, per-request fees, the host's decimal context and amounts no ledger holds.

Each figure is checked against genai-prices' own ``calc_price`` (with ``price_context``),
through the real SDKs pointed at FakeLLM.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_CEILING

import httpx
import openai
import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price

from breaker import Breaker, Budget, SessionKilled, UnknownPrice, Usage, UsageError
from breaker.pricing import PriceBook, provider_for_url
from breaker.testing import Reply
from tests.providers.conftest import messages

BIG = "lorem ipsum dolor sit amet " * 16_000  # about 100k input tokens as FakeLLM counts them


def reference(model: str, provider: str, context: dict | None = None, **usage: int) -> int:
    """genai-prices' figure in nano-USD, rounded up as breaker rounds."""
    total = calc_price(GUsage(**usage), model, provider_id=provider, price_context=context).total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


def _spent(guard: Breaker, fn) -> int:
    with guard.session() as s:
        fn()
    return round(s.cost_usd * 1e9)


@pytest.mark.parametrize("route", ["chat", "responses", "chat(stream)"])
def test_priority_tier_is_billed_at_priority_rates(make_guard, fake, route):
    """gpt-5.4, about 100k in / 10k out: the priority tier bills twice the standard one."""
    guard = make_guard(budgets=[Budget(usd=100)]).instrument()
    fake.push(Reply(output_tokens=10_000), Reply(output_tokens=10_000))
    client = fake.openai()

    def call(tier: str) -> int:  # the input tokens the fake reported
        prompt = [{"role": "user", "content": BIG + tier}]
        if route == "responses":
            return client.responses.create(model="gpt-5.4", input=prompt, service_tier=tier,
                                           max_output_tokens=20_000).usage.input_tokens
        if route == "chat(stream)":
            chunks = list(client.chat.completions.create(model="gpt-5.4", messages=prompt, service_tier=tier,
                                                         max_completion_tokens=20_000, stream=True,
                                                         stream_options={"include_usage": True}))
            return chunks[-1].usage.prompt_tokens
        return client.chat.completions.create(model="gpt-5.4", messages=prompt, service_tier=tier,
                                              max_completion_tokens=20_000).usage.prompt_tokens

    with guard.session() as p:
        p_in = call("priority")
    with guard.session() as d:
        d_in = call("default")
    assert [r.body["service_tier"] for r in fake.requests] == ["priority", "default"]  # sent as written
    assert p_in > 90_000
    priority = round(p.cost_usd * 1e9)
    assert priority == reference("gpt-5.4", "openai", {"service_tier": "priority"}, input_tokens=p_in,
                                 output_tokens=10_000)
    assert round(d.cost_usd * 1e9) == reference("gpt-5.4", "openai", input_tokens=d_in, output_tokens=10_000)
    assert priority >= 1.9 * round(d.cost_usd * 1e9)


def test_auto_tier_is_billed_at_the_tier_the_response_names(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=100)]).instrument()
    fake.push(Reply(output_tokens=1000, service_tier="priority"))
    client = fake.openai()
    with guard.session() as s:
        r = client.chat.completions.create(model="gpt-5.4", messages=messages("auto"), service_tier="auto")
    assert r.service_tier == "priority"
    expected = reference("gpt-5.4", "openai", {"service_tier": "priority"},
                         input_tokens=r.usage.prompt_tokens, output_tokens=1000)
    assert round(s.cost_usd * 1e9) == expected
    assert fake.requests[0].body["service_tier"] == "auto"


def test_a_named_provider_prices_there_and_never_at_another(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=100)])
    client = guard.wrap(fake.openai(), provider="groq")
    fake.push(Reply(output_tokens=2000))
    with guard.session() as s:
        r = client.chat.completions.create(model="openai/gpt-oss-120b", messages=[{"role": "user", "content": BIG}])
    usage = {"input_tokens": r.usage.prompt_tokens, "output_tokens": 2000}
    assert round(s.cost_usd * 1e9) == reference("openai/gpt-oss-120b", "groq", **usage)
    assert round(s.cost_usd * 1e9) != reference("gpt-oss-120b", "openai", **usage)
    # a model the named provider does not list is refused, not priced at another provider's rates
    with pytest.raises(UnknownPrice, match="fireworks"):
        guard.record("gpt-5.4", Usage(1000, 100), provider="fireworks")
    with pytest.raises(Exception, match="knows no provider 'groqq'"):
        guard.wrap(fake.openai(), provider="groqq")


class _ToFake(httpx.BaseTransport):
    """Sends every request to FakeLLM whatever its host: a client configured for Groq's real URL."""

    def __init__(self, fake) -> None:
        self.fake = fake
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.replace("/openai/v1", "/v1")
        request.url = httpx.URL(f"http://127.0.0.1:{self.fake.port}{path}")
        return self.inner.handle_request(request)


def test_instrument_names_the_provider_from_the_clients_host(guard, fake):
    assert provider_for_url("https://api.groq.com/openai/v1") == "groq"
    assert provider_for_url("https://api.together.xyz/v1") == "together"
    assert provider_for_url("https://my-resource.openai.azure.com/openai") == "azure"
    assert provider_for_url(fake.base_url) is None  # a local server or proxy: the SDK default stays a hint
    client = openai.OpenAI(base_url="https://api.groq.com/openai/v1", api_key="x",
                           http_client=httpx.Client(transport=_ToFake(fake)))
    fake.push(Reply(output_tokens=500))
    with guard.session() as s:
        r = client.chat.completions.create(model="llama-3.3-70b-versatile", messages=messages("groq"))
    assert fake.count == 1
    assert round(s.cost_usd * 1e9) == reference(
        "llama-3.3-70b-versatile", "groq", input_tokens=r.usage.prompt_tokens, output_tokens=500)


def test_a_string_price_aliases_a_deployment_name(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10)], prices={"prod-gpt4o": "gpt-4o"}).instrument()
    with guard.session() as s:
        r = fake.openai().chat.completions.create(model="prod-gpt4o", messages=messages("alias"))
    assert round(s.cost_usd * 1e9) == reference(
        "gpt-4o", "openai", input_tokens=r.usage.prompt_tokens, output_tokens=r.usage.completion_tokens)
    with pytest.raises(Exception, match="names another alias"):
        Breaker(prices={"a": "b", "b": "gpt-4o"})


@pytest.mark.parametrize("model", ["gpt-audio", "gpt-audio-mini"])
def test_audio_tokens_are_billed_at_audio_rates(make_guard, fake, model):
    guard = make_guard(budgets=[Budget(usd=10)]).instrument()
    fake.push(Reply(text="ok " * 200, audio_input_tokens=3, audio_output_tokens=150))
    with guard.session() as s:
        r = fake.openai().chat.completions.create(model=model, messages=messages("audio"))
    u = r.usage
    cost = round(s.cost_usd * 1e9)
    assert cost == reference(model, "openai", input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens,
                             input_audio_tokens=3, output_audio_tokens=150)
    text_only = reference(model, "openai", input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens)
    assert cost > 4 * text_only


def test_a_text_only_chat_request_to_an_audio_model_is_reserved_at_text_rates(make_guard, fake):
    """gpt-audio bills audio input at 12.8 times text: a request with no audio in it (no ``input_audio``
    part, no earlier audio answer sent back by id) is reserved at the text rate; one with audio at the
    audio rate, its audio reference counted as an estimate (its length is not in the request)."""
    from breaker.estimate import DOCUMENT_PART_TOKENS
    from breaker.providers.openai import ChatAdapter

    text = {"model": "gpt-audio", "max_tokens": 100, "messages": [{"role": "user", "content": "x" * 20_000}]}
    heard = {**text, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, {"type": "text", "text": "x"}]}]}
    answered = {**text, "messages": [*text["messages"], {"role": "assistant", "audio": {"id": "audio_abc"}},
                                     {"role": "user", "content": "and again"}]}
    describe = ChatAdapter().describe
    plain = describe(text, True)
    assert plain.text_only and not describe(heard, True).text_only and not describe(answered, True).text_only
    assert describe(answered, True).input_tokens >= plain.input_tokens + DOCUMENT_PART_TOKENS
    price = PriceBook().lookup("gpt-audio", "openai")
    text_worst = price.worst_case(plain.input_tokens, True)[0] + price.worst_case(0)[1] * 100
    assert price.worst_case(plain.input_tokens)[0] > 4 * text_worst

    guard = make_guard(budgets=[Budget(usd=2 * text_worst / 1e9)]).instrument()
    client = fake.openai(max_retries=0)
    with pytest.raises(SessionKilled):
        with guard.session("text-rates"):
            client.chat.completions.create(**text)  # reserved at the text rate: affordable
            assert fake.count == 1
            client.chat.completions.create(**answered)  # audio in it: reserved at the audio rate, refused
    assert fake.count == 1


def test_per_request_fee_is_billed_whatever_requests_says(make_guard):
    guard = make_guard(budgets=[Budget(usd=10)])
    with guard.session() as s:
        guard.record("sonar-pro", Usage(1000, 1000, requests=0), provider="perplexity")
    assert round(s.cost_usd * 1e9) == reference("sonar-pro", "perplexity", input_tokens=1000, output_tokens=1000)


def test_batch_and_fast_variants(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10)])
    with guard.session() as s:
        guard.record("claude-opus-4-8", Usage(10_000, 1000), provider="anthropic", batch=True)
    assert round(s.cost_usd * 1e9) == reference(
        "claude-opus-4-8", "anthropic", {"processing": "batch"}, input_tokens=10_000, output_tokens=1000)
    guard.instrument()
    client = fake.anthropic()
    with guard.session() as fast:
        r = client.messages.create(model="claude-opus-4-8", max_tokens=500, messages=messages("fast"), speed="fast")
    assert fake.requests[-1].body["speed"] == "fast"
    expected = reference("claude-opus-4-8", "anthropic", {"speed": "fast"},
                         input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens)
    assert round(fast.cost_usd * 1e9) == expected
    assert expected > reference("claude-opus-4-8", "anthropic", input_tokens=r.usage.input_tokens,
                                output_tokens=r.usage.output_tokens)


def test_prices_ignore_the_host_applications_decimal_context():
    expected = PriceBook().lookup("gpt-5.4", "openai").cost(Usage(123_457, 9_876))
    with decimal.localcontext() as ctx:
        ctx.prec = 2
        ctx.rounding = decimal.ROUND_DOWN
        assert PriceBook().lookup("gpt-5.4", "openai").cost(Usage(123_457, 9_876)) == expected
        assert PriceBook({"m": {"input": "1.23456789", "output": 3}}).lookup("m").cost(Usage(10**6, 0)) == 1_234_567_890


def test_amounts_beyond_a_ledger_are_refused_before_the_call(make_guard, fake):
    guard = make_guard(budgets=[Budget(calls=100)], prices={"dear": {"input": 1e15, "output": 1e15}}).instrument()
    with pytest.raises(SessionKilled, match="more than a ledger can hold"):
        with guard.session():
            fake.openai().chat.completions.create(model="dear", messages=messages("dear"), max_tokens=10_000)
    assert fake.count == 0
    with pytest.raises(UsageError, match="more than a ledger can hold"):
        guard.record("dear", Usage(10**7, 10**7))


def test_a_model_priced_in_units_breaker_cannot_meter_is_unknown_not_free(make_guard):
    guard = make_guard(budgets=[Budget(usd=10)])
    with pytest.raises(UnknownPrice, match="cannot meter"):
        guard.record("mistral-ocr-2505", Usage(1000, 10), provider="mistral")


def test_breaker_prices_lists_every_tier(capsys):
    from breaker.cli import main

    assert main(["prices", "gpt-5.4"]) in (0, None)
    out = capsys.readouterr().out
    assert "priority" in out and "flex" in out and "batch" in out
