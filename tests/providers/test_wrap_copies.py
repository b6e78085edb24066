"""``wrap(client)`` covers the client's copies and every namespace (issue 19): ``with_options(...)``,
``copy()``, ``beta.chat.completions``, ``beta.responses``, resources made before ``wrap``; the real SDKs
against FakeLLM, priced against genai-prices, and a refused call never reaches the fake."""

from __future__ import annotations

import pydantic
import pytest

from breaker import Breaker, Budget, BudgetExceeded, Usage
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, genai_nano, killed_session, messages, nano


class Answer(pydantic.BaseModel):
    a: int


@pytest.fixture
def guard():
    return Breaker(alerts=[])  # wrap() only: nothing is instrumented


def _chat(usage) -> Usage:
    return Usage(usage.prompt_tokens, usage.completion_tokens)


def _openai_calls(client):
    """One call through each way a wrapped client's copies and namespaces send, with its usage."""
    yield "with_options", _chat(client.with_options(timeout=5).chat.completions.create(
        model=OPENAI_MODEL, messages=messages("with_options")).usage)
    yield "copy", _chat(client.copy(max_retries=1).chat.completions.create(
        model=OPENAI_MODEL, messages=messages("copy")).usage)
    yield "copy of a copy", _chat(client.with_options(timeout=5).with_options(max_retries=0).chat.completions.create(
        model=OPENAI_MODEL, messages=messages("copy2")).usage)
    yield "beta parse", _chat(client.beta.chat.completions.parse(
        model=OPENAI_MODEL, messages=messages("beta-parse"), response_format=Answer).usage)
    yield "beta create", _chat(client.beta.chat.completions.create(
        model=OPENAI_MODEL, messages=messages("beta-create")).usage)
    r = client.with_options(timeout=5).beta.responses.create(model=OPENAI_MODEL, input="beta-responses")
    yield "beta responses", Usage(r.usage.input_tokens, r.usage.output_tokens)
    chunks = list(client.with_options(timeout=5).beta.chat.completions.create(
        model=OPENAI_MODEL, messages=messages("beta-stream"), stream=True, stream_options={"include_usage": True}))
    yield "beta stream", _chat(chunks[-1].usage)


def test_openai_copies_and_namespaces_are_metered_exactly(guard, fake):
    fake.default = Reply(text='{"a": 1}', input_tokens=25, output_tokens=4)
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session("openai-copies") as s:
        expected = 0
        for n, (way, usage) in enumerate(_openai_calls(client), 1):
            expected += genai_nano(usage, OPENAI_MODEL, "openai")
            assert (s.calls, nano(s.cost_usd)) == (n, expected), way
    assert fake.count == s.calls == 7


async def test_async_openai_copies_and_beta_are_metered(guard, fake):
    fake.default = Reply(text='{"a": 1}', input_tokens=25, output_tokens=4)
    client = guard.wrap(fake.async_openai(max_retries=0))
    async with guard.session("async-copies") as s:
        a = await client.with_options(timeout=5).chat.completions.create(model=OPENAI_MODEL, messages=messages("a1"))
        b = await client.copy().beta.chat.completions.parse(
            model=OPENAI_MODEL, messages=messages("a2"), response_format=Answer)
    assert fake.count == s.calls == 2
    assert nano(s.cost_usd) == sum(genai_nano(_chat(x.usage), OPENAI_MODEL, "openai") for x in (a, b))


@pytest.mark.parametrize("is_async", [False, True])
async def test_anthropic_copies_and_beta_are_metered(guard, fake, is_async):
    fake.default = Reply(text="hi there", input_tokens=40, output_tokens=2)
    client = guard.wrap(fake.async_anthropic(max_retries=0) if is_async else fake.anthropic(max_retries=0))
    async with guard.session(f"anthropic-{is_async}") as s:
        replies = []
        for n, send in enumerate((client.with_options(timeout=5).messages, client.copy().beta.messages,
                                  client.with_options(timeout=5).copy().messages)):
            r = send.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=messages(f"m{n}"))
            replies.append(await r if is_async else r)
    assert fake.count == s.calls == 3
    assert nano(s.cost_usd) == 3 * genai_nano(Usage(40, 2), ANTHROPIC_MODEL, "anthropic")


def test_resources_made_before_wrap_are_covered(guard, fake):
    fake.default = Reply(text='{"a": 1}', input_tokens=25, output_tokens=4)
    client = fake.openai(max_retries=0)
    beta = client.beta.chat.completions  # made before wrap(): bound to the client's unpatched post
    raw = client.with_raw_response.chat.completions
    guard.wrap(client)
    with guard.session("made-before") as s:
        a = beta.create(model=OPENAI_MODEL, messages=messages("b1"))
        b = raw.create(model=OPENAI_MODEL, messages=messages("b2")).parse()
    assert fake.count == s.calls == 2
    assert nano(s.cost_usd) == sum(genai_nano(_chat(x.usage), OPENAI_MODEL, "openai") for x in (a, b))


def test_a_copy_is_budgeted_and_refused_before_sending(fake):
    guard = Breaker(alerts=[], budgets=[Budget(calls=2)])
    client = guard.wrap(fake.openai(max_retries=0))
    with killed_session(guard, "budgeted") as s:
        client.with_options(timeout=5).chat.completions.create(model=OPENAI_MODEL, messages=messages("c1"))
        client.copy().beta.chat.completions.create(model=OPENAI_MODEL, messages=messages("c2"))
        with pytest.raises(BudgetExceeded):
            client.with_options(timeout=5).beta.chat.completions.parse(
                model=OPENAI_MODEL, messages=messages("c3"), response_format=Answer)
    assert fake.count == 2 and s.calls == 2  # the third never reached the provider


def test_a_copy_keeps_the_named_provider_unless_it_points_elsewhere(guard, fake):
    model = "llama-3.3-70b-versatile"
    client = guard.wrap(fake.openai(max_retries=0), provider="groq")
    with guard.session("groq") as s:
        a = client.with_options(timeout=5).chat.completions.create(model=model, messages=messages("g1"))
        b = client.copy().beta.chat.completions.create(model=model, messages=messages("g2"))
    assert fake.count == s.calls == 2
    assert nano(s.cost_usd) == sum(genai_nano(_chat(x.usage), model, "groq") for x in (a, b))
    # Pointed at another host, the copy's host decides: a loopback host names no provider, so the model's
    # default price applies (gpt-4o-mini at OpenAI), not Groq's, which the caller named for the first host.
    elsewhere = client.with_options(base_url=fake.base_url.replace("127.0.0.1", "localhost"))
    with guard.session("elsewhere") as t:
        r = elsewhere.chat.completions.create(model=OPENAI_MODEL, messages=messages("g3"))
    assert nano(t.cost_usd) == genai_nano(_chat(r.usage), OPENAI_MODEL, "openai")


def test_instrument_and_wrap_of_a_copy_count_once(make_guard, fake):
    guard = make_guard().instrument()
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session("once") as s:
        client.with_options(timeout=5).beta.chat.completions.create(model=OPENAI_MODEL, messages=messages("o1"))
        client.copy().chat.completions.create(model=OPENAI_MODEL, messages=messages("o2"))
    assert fake.count == s.calls == 2
