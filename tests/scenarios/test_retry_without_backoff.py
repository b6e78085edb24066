"""Seed pattern: an error-retry loop without backoff (+40% spend), in agent code that swallows errors.

The provider is failing; the agent retries at once, forever, catching every
exception. Each retry differs a little (a timestamp in the system prompt), so
identical-request detection cannot see it: the no-backoff signal does.
"""

from __future__ import annotations

import openai
import pytest

from breaker import Breaker, LoopDetected, SessionKilled
from breaker.testing import Reply
from tests.conftest import Clock

MINI = "gpt-4o-mini"


def agent(client, swallowed: list) -> None:
    for step in range(100):  # bounded, so a broken breaker fails the test instead of hanging it
        try:
            client.chat.completions.create(
                model=MINI,
                messages=[{"role": "system", "content": f"Current time: step {step}"},
                          {"role": "user", "content": "Summarise ticket 42."}],
                max_completion_tokens=200,
            )
            return
        except Exception as e:  # noqa: BLE001 - this is the agent code under test
            swallowed.append(e)


def test_retry_storm_without_backoff_is_cut_after_three_hot_retries(fake, sink):
    fake.default = Reply(status=500, error="upstream overloaded")
    guard = Breaker(alerts=[sink], clock=Clock())  # the default LoopPolicy
    client = guard.wrap(fake.openai(max_retries=0))
    swallowed: list = []
    with pytest.raises(SessionKilled) as info:
        with guard.session("ticket-42") as s:
            agent(client, swallowed)
    assert isinstance(info.value.__cause__, LoopDetected)
    assert info.value.reason == "loop:no_backoff"
    assert fake.count == 4  # the first call and 3 hot retries reached the provider; the 4th never did
    assert s.calls == 4
    assert len(swallowed) == 4 and all(isinstance(e, openai.InternalServerError) for e in swallowed)
    loop = sink.of("loop")
    assert [e.data["signal"] for e in loop] == ["no_backoff"] and len(sink.of("tripped")) == 1
    assert all("Summarise" not in e.message and "ticket 42." not in e.message for e in sink)


def test_the_same_loop_with_a_backoff_is_left_alone_until_the_error_window_fills(fake, sink):
    fake.default = Reply(status=500)
    clock = Clock()
    guard = Breaker(alerts=[sink], clock=clock)
    client = guard.wrap(fake.openai(max_retries=0))
    failures = 0
    with pytest.raises(SessionKilled) as info:
        with guard.session("patient"):
            for step in range(100):
                try:
                    client.chat.completions.create(
                        model=MINI, messages=[{"role": "user", "content": f"attempt {step}"}], max_tokens=50)
                except openai.APIError:
                    failures += 1
                    clock.advance(2)  # a real backoff: not a hot retry
    assert info.value.reason == "loop:errors"  # 5 failures within a minute: the storm signal
    assert fake.count == failures == 5
