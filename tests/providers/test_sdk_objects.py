"""The caller gets the SDK's own objects: raw responses, streamed responses, stream managers.

A drop-in guard may refuse a call it cannot afford but changes nothing else a
caller can see. Each test drives a real SDK against FakeLLM with ``instrument()``
(or ``wrap()``) on and checks both what the caller sees (types, ``isinstance``,
a body still readable raw, errors and warnings where the SDK raises them) and
the money: the provider's usage when the caller parses the body, the
reservation's worst case when it never does.
"""

from __future__ import annotations

import gc
import inspect
import json
import warnings

import anthropic
import openai
import pytest
from anthropic.lib.streaming import AsyncMessageStream, AsyncMessageStreamManager, MessageStream, MessageStreamManager
from openai._legacy_response import LegacyAPIResponse
from openai._response import APIResponse, AsyncAPIResponse, AsyncResponseContextManager, ResponseContextManager

from breaker import Budget
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, messages

DEPRECATED_ANTHROPIC_MODEL = "claude-opus-4-5"  # in anthropic's DEPRECATED_MODELS, and priced


@pytest.fixture
def tickets(monkeypatch):
    """The tickets a guard admits (for the worst case a never-read answer is billed)."""

    def spy(guard):
        seen = []
        admit, admit_async = guard.admit, guard.admit_async

        def admit_spy(call, *a, **kw):
            seen.append(admit(call, *a, **kw))
            return seen[-1]

        async def admit_async_spy(call, *a, **kw):
            seen.append(await admit_async(call, *a, **kw))
            return seen[-1]

        monkeypatch.setattr(guard, "admit", admit_spy)
        monkeypatch.setattr(guard, "admit_async", admit_async_spy)
        return seen

    return spy


# --------------------------------------------------------------- 3. raw responses are the caller's to read
def test_a_streaming_response_is_live_in_the_callers_with_and_billed_where_it_is_parsed(guard, fake, tickets):
    seen = tickets(guard)
    fake.push(Reply(text="one two three four", input_tokens=10, output_tokens=4),
              Reply(text="read raw", input_tokens=10, output_tokens=2))
    client = fake.openai(max_retries=0)
    with guard.session("streaming-response") as s:
        manager = client.chat.completions.with_streaming_response.create(model=OPENAI_MODEL, messages=messages("sr"))
        assert type(manager) is ResponseContextManager and len(fake.requests) == 0  # sent on enter, as the SDK does
        with manager as response:
            assert type(response) is APIResponse
            assert not response.is_closed  # the body is still the caller's to read
            assert len(fake.requests) == 1 and s.calls == 0  # sent; billed where it is read
            completion = response.parse()
        assert completion.usage.completion_tokens == 4
        assert s.calls == 1 and s.tokens == 14  # what FakeLLM reported

        # Read raw, never parsed: billed the reservation's worst case when the with closes it.
        with client.chat.completions.with_streaming_response.create(
                model=OPENAI_MODEL, messages=messages("raw"), max_tokens=50) as response:
            body = json.loads("".join(response.iter_lines()))
        assert body["usage"]["completion_tokens"] == 2  # the caller read every byte itself
        assert len(fake.requests) == 2 and s.calls == 2
        assert s.tokens == 14 + seen[1].worst_case_usage().total_tokens


def test_an_unparsed_raw_response_is_returned_readable_and_billed_its_worst_case(guard, fake, tickets):
    """A body the SDK cannot validate raises where the caller parses it, not in create()."""
    seen = tickets(guard)
    fake.push(Reply(raw_usage={"prompt_tokens": "many", "completion_tokens": 1}), Reply(input_tokens=10, output_tokens=3))
    client = fake.openai(max_retries=0, _strict_response_validation=True)
    with guard.session("raw") as s:
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("bad"),
                                                                max_tokens=40)
        assert type(raw) is LegacyAPIResponse
        assert json.loads(raw.text)["usage"]["prompt_tokens"] == "many"  # readable raw, as without breaker
        with pytest.raises(openai.APIResponseValidationError):
            raw.parse()  # the SDK's own error, where the SDK raises it
        worst = seen[0].worst_case_usage().total_tokens
        assert len(fake.requests) == 1 and s.calls == 1 and s.tokens == worst

        # Read only through its headers, then dropped: the worst case when it is collected.
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("drop"),
                                                                max_tokens=40)
        assert raw.headers["x-request-id"] == "req_fake" and s.calls == 1
        del raw  # nothing breaker adds holds it (no cycle): CPython frees it, and it is billed, right here
        assert len(fake.requests) == 2 and s.calls == 2
        assert s.tokens == worst + seen[1].worst_case_usage().total_tokens


def test_a_raw_response_parsed_later_is_billed_exactly_once(guard, fake):
    fake.push(Reply(input_tokens=10, output_tokens=4), Reply(input_tokens=10, output_tokens=2))
    client = fake.openai(max_retries=0)
    with guard.session("raw-once") as s:
        raw = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("once"))
        assert s.calls == 0 and not vars(raw).keys() & {"parse", "close"}  # the object itself is untouched
        first = raw.parse()
        assert raw.parse() is first  # the SDK's cache, unchanged
        del raw
        gc.collect()  # already settled from parse(): collecting it bills nothing more
        assert s.calls == 1 and s.tokens == 14 and len(fake.requests) == 1

        # parse() of a temporary: the response lives as long as its parse needs it.
        completion = client.chat.completions.with_raw_response.create(model=OPENAI_MODEL,
                                                                       messages=messages("tmp")).parse()
        assert completion.usage.completion_tokens == 2
        assert s.calls == 2 and s.tokens == 26 and len(fake.requests) == 2


# --------------------------------------------------------------- 4. async raw streams await and parse
async def _anthropic_raw_stream(client, s):
    raw = await client.messages.with_raw_response.create(model=ANTHROPIC_MODEL, max_tokens=50,
                                                         messages=messages("ars"), stream=True)
    assert type(raw) is anthropic._response.AsyncAPIResponse
    assert inspect.iscoroutinefunction(raw.parse)  # as the SDK's
    stream = await raw.parse()
    assert isinstance(stream, anthropic.AsyncStream)
    return [e.type async for e in stream]


async def _openai_streaming_response(client, s):
    manager = client.chat.completions.with_streaming_response.create(model=OPENAI_MODEL, messages=messages("aos"),
                                                                      stream=True)
    assert type(manager) is AsyncResponseContextManager
    async with manager as response:
        assert type(response) is AsyncAPIResponse and not response.is_closed
        stream = await response.parse()
        assert isinstance(stream, openai.AsyncStream)
        return [c async for c in stream]


@pytest.mark.parametrize("path", ["anthropic.with_raw_response", "openai.with_streaming_response"])
async def test_an_async_raw_stream_is_awaited_and_parsed_as_the_sdk_does(guard, fake, path):
    fake.push(Reply(text="a b c", input_tokens=10, output_tokens=3))
    anthropic_path = path.startswith("anthropic")
    client = fake.async_anthropic(max_retries=0) if anthropic_path else fake.async_openai(max_retries=0)
    async with guard.session(f"async-raw-{path}") as s:
        events = await (_anthropic_raw_stream if anthropic_path else _openai_streaming_response)(client, s)
        assert events
        assert len(fake.requests) == 1 and s.calls == 1 and s.tokens == 13


async def test_an_async_legacy_raw_stream_parses_without_await_as_the_sdk_does(guard, fake):
    """OpenAI's async ``with_raw_response`` is a ``LegacyAPIResponse``: its ``parse()`` is not a
    coroutine and returns the ``AsyncStream`` itself; breaker's is the same (metered)."""
    fake.push(Reply(text="a b c", input_tokens=10, output_tokens=3))
    client = fake.async_openai(max_retries=0)
    async with guard.session("async-legacy") as s:
        raw = await client.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=messages("al"),
                                                                      stream=True)
        assert type(raw) is LegacyAPIResponse
        stream = raw.parse()
        assert not inspect.isawaitable(stream) and isinstance(stream, openai.AsyncStream)
        assert raw.parse() is stream
        assert [c async for c in stream]
        assert len(fake.requests) == 1 and s.calls == 1 and s.tokens == 13


# --------------------------------------------------------------- 5. Anthropic messages.stream() is the SDK's manager
def test_messages_stream_is_the_sdks_manager_and_sends_the_lowered_cap(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.001)]).instrument()  # the reservation lowers max_tokens
    client = fake.anthropic(max_retries=0)
    with guard.session("manager") as s:
        with pytest.raises(TypeError, match="output_format"):  # the SDK's check, at the stream() call
            client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("t"), output_format="json")
        with pytest.warns(DeprecationWarning, match="deprecated"):  # the SDK's warning, at the stream() call
            manager = client.messages.stream(model=DEPRECATED_ANTHROPIC_MODEL, max_tokens=100_000,
                                             messages=messages("m"))
        assert type(manager) is MessageStreamManager and len(fake.requests) == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # nothing warns again when it sends
            with manager as stream:
                assert type(stream) is MessageStream
                final = stream.get_final_message()
        assert len(fake.requests) == 1 and 0 < fake.requests[0].body["max_tokens"] < 100_000
        assert s.calls == 1 and s.tokens == final.usage.input_tokens + final.usage.output_tokens


@pytest.mark.parametrize("how", ["instrument", "wrap"])
async def test_async_messages_stream_is_the_sdks_manager(make_guard, fake, how):
    guard = make_guard(budgets=[Budget(usd=0.001)])
    client = fake.async_anthropic(max_retries=0)
    if how == "instrument":
        guard.instrument()
    else:
        guard.wrap(client)
    async with guard.session(f"async-manager-{how}") as s:
        with pytest.raises(TypeError, match="output_format"):
            client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=10, messages=messages("t"), output_format="json")
        with pytest.warns(DeprecationWarning, match="deprecated"):
            manager = client.messages.stream(model=DEPRECATED_ANTHROPIC_MODEL, max_tokens=100_000,
                                             messages=messages("am"))
        assert type(manager) is AsyncMessageStreamManager and len(fake.requests) == 0
        async with manager as stream:
            assert type(stream) is AsyncMessageStream
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
        assert text and len(fake.requests) == 1 and 0 < fake.requests[0].body["max_tokens"] < 100_000
        assert s.calls == 1 and s.tokens == final.usage.input_tokens + final.usage.output_tokens


def test_messages_stream_through_wrap_and_instrument_together_is_counted_once(guard, fake):
    client = guard.wrap(fake.anthropic(max_retries=0))  # wrap()'s patch calls instrument()'s inside it
    with guard.session("both") as s:
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=50, messages=messages("b")) as stream:
            stream.until_done()
        with client.beta.messages.stream(model=ANTHROPIC_MODEL, max_tokens=50, messages=messages("bb")) as stream:
            stream.until_done()
    assert s.calls == 2 and len(fake.requests) == 2
