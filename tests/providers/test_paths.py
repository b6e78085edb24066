"""Every SDK path that sends a model request, sync and async, is admitted, billed exactly once, and priced
to the genai-prices figure (cache reads and writes included)."""

from __future__ import annotations

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from breaker import Usage
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, genai_nano, killed_session, messages, nano


class Answer(pydantic.BaseModel):
    answer: int


TEXT = '{"answer": 42}'
# OpenAI: prompt_tokens includes the 10 cached and 4 written; completion includes 2 reasoning.
OPENAI_REPLY = Reply(text=TEXT, input_tokens=50, cached_tokens=10, cache_write_tokens=4, output_tokens=9, reasoning_tokens=2)
OPENAI_USAGE = Usage(50, 9, cache_read_tokens=10, cache_write_tokens=4, reasoning_tokens=2)
RESPONSES_REPLY = Reply(text=TEXT, input_tokens=50, cached_tokens=10, output_tokens=9, reasoning_tokens=2)
RESPONSES_USAGE = Usage(50, 9, cache_read_tokens=10, reasoning_tokens=2)
# Anthropic: the wire's input_tokens leaves out the 10 read and 8 written (3 of them with a 1-hour TTL).
ANTHROPIC_REPLY = Reply(text=TEXT, input_tokens=50, cached_tokens=10, cache_write_tokens=8, cache_write_1h_tokens=3,
                        output_tokens=9)
ANTHROPIC_USAGE = Usage(50, 9, cache_read_tokens=10, cache_write_tokens=8, cache_write_1h_tokens=3)


def _drain(stream):
    for _ in stream:
        pass


SYNC_PATHS = {
    "chat.create": lambda c, m: c.chat.completions.create(model=OPENAI_MODEL, messages=m),
    "chat.create(stream)": lambda c, m: _drain(c.chat.completions.create(model=OPENAI_MODEL, messages=m, stream=True)),
    "chat.parse": lambda c, m: c.chat.completions.parse(model=OPENAI_MODEL, messages=m, response_format=Answer),
    "chat.stream": lambda c, m: _final(c.chat.completions.stream(model=OPENAI_MODEL, messages=m), "get_final_completion"),
    "responses.create": lambda c, m: c.responses.create(model=OPENAI_MODEL, input=m),
    "responses.create(stream)": lambda c, m: _drain(c.responses.create(model=OPENAI_MODEL, input=m, stream=True)),
    "responses.parse": lambda c, m: c.responses.parse(model=OPENAI_MODEL, input=m, text_format=Answer),
    "responses.stream": lambda c, m: _final(c.responses.stream(model=OPENAI_MODEL, input=m), "get_final_response"),
    "messages.create": lambda c, m: c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m),
    "messages.create(stream)": lambda c, m: _drain(
        c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m, stream=True)),
    "messages.stream": lambda c, m: _final(
        c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=m), "get_final_message"),
    "messages.parse": lambda c, m: c.messages.parse(model=ANTHROPIC_MODEL, max_tokens=100, messages=m,
                                                    output_format=Answer),
    "beta.messages.create": lambda c, m: c.beta.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m),
    "beta.messages.create(stream)": lambda c, m: _drain(
        c.beta.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m, stream=True)),
    "beta.messages.stream": lambda c, m: _final(
        c.beta.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=m), "get_final_message"),
    "beta.messages.parse": lambda c, m: c.beta.messages.parse(model=ANTHROPIC_MODEL, max_tokens=100, messages=m,
                                                              output_format=Answer),
}


# The HTTP layer, as callers that post a model request themselves use it (LiteLLM's OpenAI route does).
def _post(c, path, cast_to, body, stream_cls=None):
    stream = stream_cls is not None
    return c.post(path, cast_to=cast_to, body={**body, "stream": True} if stream else body,
                  stream=stream, stream_cls=stream_cls)


SYNC_PATHS.update({
    "chat.post": lambda c, m: _post(c, "/chat/completions", ChatCompletion, {"model": OPENAI_MODEL, "messages": m}),
    "chat.post(stream)": lambda c, m: _drain(_post(c, "/chat/completions", ChatCompletion,
                                                   {"model": OPENAI_MODEL, "messages": m},
                                                   openai.Stream[ChatCompletionChunk])),
    "responses.post": lambda c, m: _post(c, "/responses", Response, {"model": OPENAI_MODEL, "input": m}),
    "messages.post": lambda c, m: _post(c, "/v1/messages", Message,
                                        {"model": ANTHROPIC_MODEL, "max_tokens": 100, "messages": m}),
    "beta.messages.post": lambda c, m: _post(c, "/v1/messages?beta=true", Message,
                                             {"model": ANTHROPIC_MODEL, "max_tokens": 100, "messages": m}),
})


def _final(manager, getter):
    with manager as stream:
        return getattr(stream, getter)()


async def _adrain(stream):
    async for _ in stream:
        pass


async def _afinal(manager, getter):
    async with manager as stream:
        return await getattr(stream, getter)()


async def _acall(coro):
    return await coro


ASYNC_PATHS = {
    "chat.create": lambda c, m: c.chat.completions.create(model=OPENAI_MODEL, messages=m),
    "chat.create(stream)": lambda c, m: _adrain_after(c.chat.completions.create(model=OPENAI_MODEL, messages=m, stream=True)),
    "chat.parse": lambda c, m: c.chat.completions.parse(model=OPENAI_MODEL, messages=m, response_format=Answer),
    "chat.stream": lambda c, m: _afinal(c.chat.completions.stream(model=OPENAI_MODEL, messages=m), "get_final_completion"),
    "responses.create": lambda c, m: c.responses.create(model=OPENAI_MODEL, input=m),
    "responses.create(stream)": lambda c, m: _adrain_after(c.responses.create(model=OPENAI_MODEL, input=m, stream=True)),
    "responses.parse": lambda c, m: c.responses.parse(model=OPENAI_MODEL, input=m, text_format=Answer),
    "responses.stream": lambda c, m: _afinal(c.responses.stream(model=OPENAI_MODEL, input=m), "get_final_response"),
    "messages.create": lambda c, m: c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m),
    "messages.create(stream)": lambda c, m: _adrain_after(
        c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m, stream=True)),
    "messages.stream": lambda c, m: _afinal(
        c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=m), "get_final_message"),
    "messages.parse": lambda c, m: c.messages.parse(model=ANTHROPIC_MODEL, max_tokens=100, messages=m,
                                                    output_format=Answer),
    "beta.messages.create": lambda c, m: c.beta.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=m),
    "beta.messages.stream": lambda c, m: _afinal(
        c.beta.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=m), "get_final_message"),
    "beta.messages.parse": lambda c, m: c.beta.messages.parse(model=ANTHROPIC_MODEL, max_tokens=100, messages=m,
                                                              output_format=Answer),
}


ASYNC_PATHS.update({
    "chat.post": lambda c, m: _post(c, "/chat/completions", ChatCompletion, {"model": OPENAI_MODEL, "messages": m}),
    "chat.post(stream)": lambda c, m: _adrain_after(_post(c, "/chat/completions", ChatCompletion,
                                                          {"model": OPENAI_MODEL, "messages": m},
                                                          openai.AsyncStream[ChatCompletionChunk])),
    "messages.post": lambda c, m: _post(c, "/v1/messages", Message,
                                        {"model": ANTHROPIC_MODEL, "max_tokens": 100, "messages": m}),
})


async def _adrain_after(coro):
    await _adrain(await coro)


def _expect(name: str) -> tuple[Reply, Usage, str, str]:
    if name.startswith(("messages", "beta")):
        return ANTHROPIC_REPLY, ANTHROPIC_USAGE, ANTHROPIC_MODEL, "anthropic"
    if name.startswith("responses"):
        return RESPONSES_REPLY, RESPONSES_USAGE, OPENAI_MODEL, "openai"
    return OPENAI_REPLY, OPENAI_USAGE, OPENAI_MODEL, "openai"


def _client(fake, name: str, is_async: bool):
    anthropic = name.startswith(("messages", "beta"))
    if is_async:
        return fake.async_anthropic(max_retries=0) if anthropic else fake.async_openai(max_retries=0)
    return fake.anthropic(max_retries=0) if anthropic else fake.openai(max_retries=0)


def _check(guard, fake, s, name):
    reply, usage, model, provider = _expect(name)
    assert fake.count == 1, "one request reached the provider"
    assert s.calls == 1
    assert s.tokens == usage.total_tokens
    assert nano(s.cost_usd) == genai_nano(usage, model, provider)
    assert guard.inflight() is None


@pytest.mark.parametrize("name", list(SYNC_PATHS))
def test_sync_path_is_billed_exactly_once(guard, fake, name):
    fake.default = _expect(name)[0]
    client = _client(fake, name, False)
    with guard.session(f"sync-{name}") as s:
        SYNC_PATHS[name](client, messages(name))
        _check(guard, fake, s, name)


@pytest.mark.parametrize("name", list(ASYNC_PATHS))
async def test_async_path_is_billed_exactly_once(guard, fake, name):
    fake.default = _expect(name)[0]
    client = _client(fake, name, True)
    async with guard.session(f"async-{name}") as s:
        await ASYNC_PATHS[name](client, messages(name))
        _check(guard, fake, s, name)


def test_a_request_posted_to_the_http_layer_gets_the_lowered_cap(make_guard, fake):
    """The engine's patch reaches a request that bypassed ``create``: it is applied to the posted body."""
    from breaker import Budget

    guard = make_guard(budgets=[Budget(usd=0.001)]).instrument()
    fake.default = Reply(text="ok", input_tokens=20, output_tokens=10)
    with guard.session("post-cap") as s:
        reply = _post(fake.openai(max_retries=0), "/chat/completions", ChatCompletion,
                      {"model": OPENAI_MODEL, "messages": messages("cap"), "max_tokens": 100_000})
    cap = fake.requests[0].body["max_tokens"]
    assert 0 < cap < 100_000 and reply.usage.completion_tokens == 10
    assert s.calls == 1 and fake.count == 1


def test_web_searches_and_tool_calls_are_counted(guard, fake):
    fake.push(Reply(web_search_calls=2, tool_calls=[("lookup", {"q": 1})], input_tokens=30, output_tokens=12))
    client = fake.anthropic(max_retries=0)
    with guard.session("ws") as s:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages("ws"))
    usage = Usage(30, 12, web_search_calls=2, tool_calls=1)
    assert nano(s.cost_usd) == genai_nano(usage, ANTHROPIC_MODEL, "anthropic")
    assert nano(s.cost_usd) > genai_nano(Usage(30, 12), ANTHROPIC_MODEL, "anthropic")  # searches are paid for


def test_responses_web_searches_and_function_calls(guard, fake):
    fake.push(Reply(web_search_calls=1, tool_calls=[("lookup", {"q": 1})], input_tokens=30, output_tokens=12))
    client = fake.openai(max_retries=0)
    with guard.session("resp-ws") as s:
        client.responses.create(model=OPENAI_MODEL, input="search please", tools=[{"type": "web_search"}])
    usage = Usage(30, 12, web_search_calls=1, tool_calls=1)
    assert nano(s.cost_usd) == genai_nano(usage, OPENAI_MODEL, "openai")


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_streamed_tool_calls_feed_tool_thrash_detection(make_guard, fake, api):
    from breaker import LoopDetected, LoopPolicy

    guard = make_guard(loops=LoopPolicy(max_tool_repeats=1)).instrument()
    fake.default = Reply(tool_calls=[("search", {"q": "same", "n": 1})])
    with killed_session(guard, f"stream-thrash-{api}"):
        with pytest.raises(LoopDetected):
            for i in range(5):
                if api == "chat":
                    _drain(fake.openai(max_retries=0).chat.completions.create(
                        model=OPENAI_MODEL, messages=messages(f"st{i}"), stream=True))
                elif api == "responses":
                    _drain(fake.openai(max_retries=0).responses.create(model=OPENAI_MODEL, input=f"st{i}", stream=True))
                else:
                    _final(fake.anthropic(max_retries=0).messages.stream(
                        model=ANTHROPIC_MODEL, max_tokens=100, messages=messages(f"st{i}")), "get_final_message")
    assert fake.count == 2  # the same tool call twice passes max_tool_repeats=1: the 3rd request is refused
