"""Abandoned streams (issue 19): a stream its caller stopped reading is billed what arrived, at the
latest when the same reader starts the session's next call or leaves the session, and never makes a
later call wait; a stream read in another thread or task, or not read yet, is left alone; a refusal
that only waited says so in a log line.

Every budget below is held whole by an open stream (no ``max_tokens``: the reservation takes all the
budget can pay for), so without the settlement the next call would wait ``reservation_wait`` and be refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time

import pytest

from breaker import Budget, BudgetExceeded, Usage
from breaker.estimate import estimate
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, genai_nano, messages, nano

WORDS = " ".join(f"w{i}" for i in range(40))  # 40 words, 40 chunks when streamed
WAIT = 2.0  # reservation_wait: a call that waited for the stream would take this long
FAST = 1.0  # a call that did not wait takes far less (loopback)
TIGHT = [Budget(tokens=3_000)]


def _open(client, api: str, tag: str):
    if api == "chat":
        return client.chat.completions.create(model=OPENAI_MODEL, messages=messages(tag), stream=True)
    return client.messages.create(model=ANTHROPIC_MODEL, max_tokens=2_500, messages=messages(tag), stream=True)


def _client(fake, api: str, **kw):
    return fake.openai(max_retries=0, **kw) if api == "chat" else fake.anthropic(max_retries=0, **kw)


def _text(api: str, event) -> str:
    if api == "chat":
        return "".join(c.delta.content or "" for c in event.choices)
    return event.delta.text if event.type == "content_block_delta" else ""


def _billed(api: str, tag: str, arrived: str) -> Usage:
    """What the stream is billed: the input bound (Anthropic reports the exact input first) and the
    output's UTF-8 bytes, the conservative count of what arrived."""
    inp = estimate(OPENAI_MODEL, messages(tag))[0] if api == "chat" else 30
    return Usage(input_tokens=inp, output_tokens=len(arrived.encode()))


def _call(client, api: str, tag: str):
    if api == "chat":
        r = client.chat.completions.create(model=OPENAI_MODEL, messages=messages(tag), max_tokens=20)
        return Usage(r.usage.prompt_tokens, r.usage.completion_tokens)
    r = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=20, messages=messages(tag))
    return Usage(r.usage.input_tokens, r.usage.output_tokens)


def _price(api: str, usage: Usage) -> int:
    return genai_nano(usage, OPENAI_MODEL, "openai") if api == "chat" else genai_nano(usage, ANTHROPIC_MODEL, "anthropic")


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_a_stream_left_with_break_is_billed_what_arrived_when_the_next_call_starts(make_guard, fake, api):
    guard = make_guard(budgets=TIGHT, reservation_wait=WAIT).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30), Reply(text="ok", input_tokens=12))
    client = _client(fake, api)
    with guard.session(f"break-{api}") as s:
        stream = _open(client, api, "first")
        arrived = ""
        for i, event in enumerate(stream):
            arrived += _text(api, event)
            if i == 4:
                break  # walk away, keeping the stream referenced
        assert s.calls == 0  # unfinished: it holds the whole budget
        t0 = time.monotonic()
        second = _call(client, api, "second")
        assert time.monotonic() - t0 < FAST  # no wait for the abandoned stream's reservation
        assert fake.count == 2
        billed = _billed(api, "first", arrived)
        assert s.calls == 2 and s.tokens == billed.input_tokens + billed.output_tokens + second.input_tokens + second.output_tokens
        assert nano(s.cost_usd) == _price(api, billed) + _price(api, second)
        # It was closed: reading on says why, rather than truncating silently.
        with pytest.raises(RuntimeError, match="started another call of the session"):
            next(stream)
        assert stream.response.is_closed
    assert s.calls == 2 and fake.count == 2


def test_leaving_the_session_settles_what_its_code_stopped_reading(make_guard, fake):
    guard = make_guard(budgets=[Budget(tokens=3_000, per="user")], reservation_wait=WAIT).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30), Reply(text="ok", input_tokens=12))
    client = fake.openai(max_retries=0)
    with guard.session("left", user="acme") as first:
        stream = _open(client, "chat", "left")
        arrived = "".join(_text("chat", e) for _, e in zip(range(5), stream))
    kept = stream  # still referenced after the block
    billed = _billed("chat", "left", arrived)
    assert first.calls == 1 and first.tokens == billed.input_tokens + billed.output_tokens
    assert nano(first.cost_usd) == _price("chat", billed)
    with guard.session("next", user="acme") as second:  # same user budget, another session
        t0 = time.monotonic()
        used = _call(client, "chat", "next")
        assert time.monotonic() - t0 < FAST
    assert second.calls == 1 and nano(second.cost_usd) == _price("chat", used)
    assert guard.spent(per="user", key="acme").tokens == first.tokens + second.tokens
    assert kept.response.is_closed


def test_a_stream_not_read_yet_is_left_alone(guard, fake):
    """Opened, not read, another call, then read: a stream handed on (a streaming HTTP response) is not cut."""
    fake.push(Reply(text=WORDS, input_tokens=30, output_tokens=40), Reply(text="ok", input_tokens=12))
    client = fake.openai(max_retries=0)
    with guard.session("unread") as s:
        stream = _open(client, "chat", "unread")
        other = _call(client, "chat", "other")
        text = "".join(_text("chat", e) for e in stream)
    assert text == WORDS  # the whole answer
    assert s.calls == 2 and nano(s.cost_usd) == _price("chat", Usage(30, 40)) + _price("chat", other)


def test_a_stream_read_in_another_thread_is_not_cut(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30, output_tokens=40), Reply(text="ok", input_tokens=12))
    client = fake.openai(max_retries=0)
    paused, resume = threading.Event(), threading.Event()
    got: list[str] = []
    errors: list[BaseException] = []

    def read(stream) -> None:
        try:
            for i, event in enumerate(stream):
                got.append(_text("chat", event))
                if i == 4:
                    paused.set()
                    resume.wait(5)
        except BaseException as e:  # pragma: no cover - what the test guards against
            errors.append(e)

    with guard.session("threads") as s:
        stream = _open(client, "chat", "threads")
        reader = threading.Thread(target=contextvars.copy_context().run, args=(read, stream))
        reader.start()
        assert paused.wait(5)
        other = _call(client, "chat", "other")  # this thread's next call, while the reader pauses
        resume.set()
        reader.join(5)
    assert not errors and "".join(got) == WORDS
    assert s.calls == 2 and nano(s.cost_usd) == _price("chat", Usage(30, 40)) + _price("chat", other)


async def test_a_stream_read_in_another_task_is_not_cut(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30, output_tokens=40), Reply(text="ok", input_tokens=12))
    client = fake.async_openai(max_retries=0)
    async with guard.session("tasks") as s:
        stream = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("tasks"), stream=True)
        paused, resume = asyncio.Event(), asyncio.Event()

        async def read() -> str:
            text = ""
            async for event in stream:
                text += _text("chat", event)
                if not paused.is_set():
                    paused.set()
                    await resume.wait()
            return text

        task = asyncio.create_task(read())
        await paused.wait()
        r = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("other"), max_tokens=20)
        resume.set()
        assert await task == WORDS
    other = Usage(r.usage.prompt_tokens, r.usage.completion_tokens)
    assert s.calls == 2 and nano(s.cost_usd) == _price("chat", Usage(30, 40)) + _price("chat", other)


async def test_an_async_stream_left_with_break_is_settled_by_the_next_call_of_its_task(make_guard, fake):
    guard = make_guard(budgets=TIGHT, reservation_wait=WAIT).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30), Reply(text="ok", input_tokens=12))
    client = fake.async_openai(max_retries=0)
    async with guard.session("async-break") as s:
        stream = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("ab"), stream=True)
        arrived = ""
        async for event in stream:
            arrived += _text("chat", event)
            if len(arrived) >= 9:
                break
        t0 = time.monotonic()
        r = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("ab2"), max_tokens=20)
        assert time.monotonic() - t0 < FAST
        with pytest.raises(RuntimeError, match="abandoned"):
            await stream.__anext__()
        assert stream.response.is_closed
    billed = _billed("chat", "ab", arrived)
    assert fake.count == 2 and s.calls == 2
    assert nano(s.cost_usd) == _price("chat", billed) + _price("chat", Usage(r.usage.prompt_tokens, r.usage.completion_tokens))


async def test_an_async_stream_is_settled_and_closed_when_its_async_session_ends(guard, fake):
    fake.push(Reply(text=WORDS, input_tokens=30))
    client = fake.async_anthropic(max_retries=0)
    async with guard.session("async-left") as s:
        stream = await client.messages.create(model=ANTHROPIC_MODEL, max_tokens=500, messages=messages("al"), stream=True)
        arrived = ""
        async for event in stream:
            arrived += _text("messages", event)
            if arrived:
                break
    assert s.calls == 1 and nano(s.cost_usd) == _price("messages", _billed("messages", "al", arrived))
    for _ in range(20):  # the close was started on the loop by the session's exit
        if stream.response.is_closed:
            break
        await asyncio.sleep(0.01)
    assert stream.response.is_closed


def test_a_refusal_that_only_waited_says_so_in_a_log_line(make_guard, fake, caplog):
    """The stream is read in another thread (so it is not cut); the next call waits for it, is refused
    without being sent, and a WARNING says it waited."""
    guard = make_guard(budgets=TIGHT, reservation_wait=0.2).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30, output_tokens=40))
    client = fake.openai(max_retries=0)
    paused, resume = threading.Event(), threading.Event()
    got: list[str] = []

    def read(stream) -> None:
        for i, event in enumerate(stream):
            got.append(_text("chat", event))
            if i == 2:
                paused.set()
                resume.wait(5)

    caplog.set_level(logging.WARNING, logger="breaker")
    with guard.session("waited") as s:
        stream = _open(client, "chat", "waited")
        reader = threading.Thread(target=contextvars.copy_context().run, args=(read, stream))
        reader.start()
        assert paused.wait(5)
        t0 = time.monotonic()
        with pytest.raises(BudgetExceeded) as refused:
            client.chat.completions.create(model=OPENAI_MODEL, messages=messages("refused"), max_tokens=20)
        waited = time.monotonic() - t0
        resume.set()
        reader.join(5)
    assert refused.value.reason == "busy" and 0.2 <= waited < FAST
    assert fake.count == 1  # the refused call never reached the provider
    assert "".join(got) == WORDS and s.calls == 1  # the stream went on, billed in full
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "waited" in r.getMessage()]
    assert len(lines) == 1 and "Session 'waited'" in lines[0] and "0.2s" in lines[0]


def test_sessions_inside_the_streams_session_count_as_its_code(make_guard, fake):
    """A stream of the outer session read (and left) inside an inner one is the outer block's: the inner
    block's end leaves it (the outer code may read on), the outer block's next call settles it."""
    guard = make_guard(budgets=TIGHT, reservation_wait=WAIT).instrument()
    fake.push(Reply(text=WORDS, input_tokens=30), Reply(text="ok", input_tokens=12), Reply(text="ok", input_tokens=12))
    client = fake.openai(max_retries=0)
    with guard.session("outer") as outer:
        stream = _open(client, "chat", "outer")
        with guard.session("inner"):
            arrived = "".join(_text("chat", e) for _, e in zip(range(3), stream))
        arrived += _text("chat", next(stream))  # still open: the outer code reads on
        t0 = time.monotonic()
        with guard.session("inner-2") as inner:
            used = _call(client, "chat", "inner-call")  # counts against the outer session's budget too
        assert time.monotonic() - t0 < FAST
        with pytest.raises(RuntimeError, match="abandoned"):
            next(stream)
    billed = _billed("chat", "outer", arrived)
    assert inner.calls == 1 and outer.calls == 2  # the outer session's figures include the inner's
    assert nano(inner.cost_usd) == _price("chat", used)
    assert nano(outer.cost_usd) == _price("chat", billed) + _price("chat", used)
    assert fake.count == 2
