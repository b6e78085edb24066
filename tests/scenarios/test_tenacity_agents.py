"""Seed pattern: retry logic multiplying spend (3-7x): agents wrapped in tenacity.

tenacity's default ``@retry`` retries any ``Exception`` forever with no wait;
``retry_if_not_exception_type(ValueError)`` retries *anything*, a kill included.
The provider here always fails, so without the breaker these loops never end.
"""

from __future__ import annotations

import json

import openai
import pytest
import tenacity
from tenacity import AsyncRetrying, RetryError, retry_if_not_exception_type, stop_after_attempt

import breaker
from breaker import Breaker, LoopDetected, SessionKilled
from breaker.retry import retry_unless_tripped, stop_when_tripped
from breaker.testing import Reply
from tests.conftest import Clock

MINI = "gpt-4o-mini"
ASK = [{"role": "user", "content": "Classify ticket 42 as JSON."}]


def test_tenacity_default_retry_forever_is_stopped_by_the_kill(fake, sink):
    fake.default = Reply(status=500)
    guard = Breaker(alerts=[sink], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=0))
    attempts = []

    @tenacity.retry  # retry_if_exception_type(Exception), stop_never, wait_none
    def classify():
        attempts.append(1)
        return client.chat.completions.create(model=MINI, messages=ASK, max_tokens=50)

    with pytest.raises(SessionKilled) as info:
        with guard.session("default-retry"):
            try:
                classify()
            except Exception:  # noqa: BLE001 - agent code
                pytest.fail("a kill must not be catchable as an Exception")
    assert isinstance(info.value.__cause__, LoopDetected)
    assert info.value.reason == "loop:identical"  # tenacity re-sends the very same request
    assert fake.count == 3  # 3 identical requests sent; the 4th refused, and not retried by tenacity
    assert len(attempts) == 4


def test_retry_if_not_exception_type_retries_the_kill_but_the_sticky_trip_sends_nothing(fake, sink):
    fake.default = Reply(status=500)
    guard = Breaker(alerts=[sink], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=0))
    attempts = []

    @tenacity.retry(retry=retry_if_not_exception_type(ValueError), stop=stop_after_attempt(25))
    def classify():
        attempts.append(1)
        return client.chat.completions.create(model=MINI, messages=ASK, max_tokens=50)

    with guard.session("custom-predicate") as s:
        try:
            classify()
        except Exception as e:  # noqa: BLE001 - agent code swallows tenacity's RetryError...
            swallowed = e
    assert isinstance(swallowed, RetryError)
    assert isinstance(swallowed.last_attempt.exception(), LoopDetected)
    assert len(attempts) == 25  # tenacity kept retrying the kill...
    assert fake.count == 3  # ...but every retry after the trip was refused before it was sent
    assert s.tripped is not None and s.calls == 3


def test_stop_when_tripped_makes_that_loop_end_with_the_kill(fake, sink):
    fake.default = Reply(status=500)
    guard = Breaker(alerts=[sink], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=0))
    attempts = []

    @tenacity.retry(retry=retry_if_not_exception_type(ValueError), stop=stop_when_tripped | stop_after_attempt(25))
    def classify():
        attempts.append(1)
        return client.chat.completions.create(model=MINI, messages=ASK, max_tokens=50)

    with pytest.raises(SessionKilled):
        with guard.session("with-helpers"):
            try:
                classify()
            except Exception:  # noqa: BLE001
                pytest.fail("swallowed")
    assert fake.count == 3 and len(attempts) == 4


async def test_async_agent_retrying_bad_json_is_seen_through_before_sleep(fake, sink):
    # every model call succeeds, the agent's parser fails and re-prompts at once:
    # no failed call reaches settle, only the before_sleep hook reports the loop
    fake.default = Reply(text="Sure! The category is billing.")
    guard = Breaker(alerts=[sink], clock=Clock())
    client = guard.wrap(fake.async_openai(max_retries=0))
    messages = list(ASK)

    async def classify():
        async for attempt in AsyncRetrying(retry=retry_unless_tripped, stop=stop_when_tripped | stop_after_attempt(30),
                                           before_sleep=breaker.retry.before_sleep(guard)):
            with attempt:
                r = await client.chat.completions.create(model=MINI, messages=messages, max_tokens=50)
                messages.append({"role": "assistant", "content": r.choices[0].message.content})
                messages.append({"role": "user", "content": "That was not JSON. Try again."})
                return json.loads(r.choices[0].message.content)

    with pytest.raises(SessionKilled) as info:
        async with guard.session("bad-json"):
            await classify()
    assert info.value.reason == "loop:no_backoff"
    assert fake.count == 4  # the first answer and 3 hot re-prompts; the 4th re-prompt refused


async def test_without_the_hook_the_same_loop_runs_to_its_own_stop(fake):
    fake.default = Reply(text="Sure! The category is billing.")
    guard = Breaker(alerts=[], clock=Clock())
    client = guard.wrap(fake.async_openai(max_retries=0))
    messages = list(ASK)
    with guard.session("bad-json-unwatched"):
        with pytest.raises(RetryError):
            async for attempt in AsyncRetrying(retry=retry_unless_tripped, stop=stop_after_attempt(8)):
                with attempt:
                    r = await client.chat.completions.create(model=MINI, messages=messages, max_tokens=50)
                    messages.append({"role": "assistant", "content": r.choices[0].message.content})
                    messages.append({"role": "user", "content": "That was not JSON. Try again."})
                    json.loads(r.choices[0].message.content)
    assert fake.count == 8


def test_sdk_level_retries_count_as_requests_but_not_as_agent_retries(fake):
    # the SDK retries a 500 inside one create() (FakeLLM asks for a 1 ms retry-after):
    # three requests reach the provider per agent-level call
    fake.default = Reply(status=500)
    guard = Breaker(alerts=[], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=2))
    with pytest.raises(SessionKilled) as info:
        with guard.session("sdk-retries") as s:
            for step in range(50):
                try:
                    client.chat.completions.create(
                        model=MINI, messages=[{"role": "user", "content": f"try {step}"}], max_tokens=50)
                except openai.APIError:
                    pass
    assert info.value.reason == "loop:no_backoff"
    assert fake.count == 4 * 3  # four create() calls, each retried twice by the SDK
