"""Agent code that catches every ``Exception`` cannot swallow a kill, sync or async."""

from __future__ import annotations

import asyncio

import pytest

from breaker import Breaker, Budget, BudgetExceeded, SessionKilled, Tripped
from breaker.testing import Reply
from tests.conftest import Clock

MINI = "gpt-4o-mini"


def test_except_exception_cannot_swallow_a_budget_kill(fake, sink):
    fake.default = Reply(text="working on it " * 20)
    guard = Breaker(budgets=[Budget(usd=0.002)], alerts=[sink], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=0))
    swallowed, after_kill = [], []
    with pytest.raises(SessionKilled) as info:
        with guard.session("stubborn") as s:
            for step in range(500):
                try:
                    client.chat.completions.create(
                        model=MINI, messages=[{"role": "user", "content": f"step {step}: " + "context " * 500}],
                        max_completion_tokens=500)
                except Exception as e:  # noqa: BLE001 - the agent's catch-all
                    swallowed.append(e)
                after_kill.append(step)
    assert isinstance(info.value.__cause__, BudgetExceeded)
    assert isinstance(info.value, Exception) and not isinstance(info.value, Tripped)  # ordinary outside
    assert swallowed == []
    assert fake.count == s.calls == len(after_kill)  # nothing ran after the refused call
    assert 0 < s.cost_usd <= 0.002


async def test_async_subagents_in_gather_cannot_swallow_it_either(fake):
    fake.default = Reply(text="ok")
    guard = Breaker(alerts=[], clock=Clock())  # the default loop policy
    client = guard.wrap(fake.async_openai(max_retries=0))
    swallowed = []

    async def subagent(name: str) -> None:
        for _ in range(20):
            try:  # each subagent asks the very same thing over and over
                await client.chat.completions.create(
                    model=MINI, messages=[{"role": "user", "content": "Is the build green?"}], max_tokens=20)
            except Exception as e:  # noqa: BLE001
                swallowed.append(e)

    tasks = []
    with pytest.raises(SessionKilled) as info:
        async with guard.session("team") as s:
            tasks = [asyncio.ensure_future(subagent(name)) for name in "abc"]
            await asyncio.gather(*tasks)
    await asyncio.wait(tasks)  # gather does not cancel the others: they end on their own, refused
    assert info.value.reason == "loop:identical"
    assert all(isinstance(t.exception(), Tripped) for t in tasks)  # every subagent was stopped
    assert swallowed == []
    assert fake.count == s.calls == 3  # identical requests across the session's subagents
