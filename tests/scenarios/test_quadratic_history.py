"""Seed pattern: a history that grows every step, so each step costs more than the last.

Context growth degrades the session (a cheaper model, the history trimmed to
its last messages, tool pairs kept whole), which stretches the budget; the
budget still ends the run, before its limit is passed.
"""

from __future__ import annotations

import pytest

from breaker import Breaker, Budget, BudgetExceeded, Degrade, LoopPolicy, SessionKilled
from breaker.testing import Reply
from tests.conftest import Clock

BIG, SMALL = "gpt-4o", "gpt-4o-mini"
PAGE = "log line with some detail " * 40  # ~1 kB added to the history every step


def hoarding_agent(client, max_steps: int = 400) -> int:
    """Appends every tool output to its history and resends all of it. Returns the steps completed."""
    messages = [{"role": "system", "content": "You are a log analyst."},
                {"role": "user", "content": "Find the root cause."}]
    for step in range(max_steps):
        try:
            r = client.chat.completions.create(model=BIG, messages=messages, max_completion_tokens=100)
        except Exception:  # noqa: BLE001 - agent code swallows errors; a kill passes through
            continue
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
        messages.append({"role": "user", "content": f"Page {step}: {PAGE}"})
    return max_steps


def run(fake, sink, *, degrade: bool):
    guard = Breaker(
        budgets=[Budget(usd=0.02)],
        loops=LoopPolicy(context_limit=5_000, context_rising=3),
        degrade=Degrade(model_map={BIG: SMALL}, keep_last_messages=4) if degrade else None,
        alerts=[sink], clock=Clock(),
    )
    client = guard.wrap(fake.openai(max_retries=0))
    with pytest.raises(SessionKilled) as info:
        with guard.session("hoarder") as s:
            hoarding_agent(client)
    return guard, s, info.value


def test_growth_degrades_by_trimming_then_the_budget_stops_it(fake, sink):
    fake.default = Reply(text="Need more logs.")
    guard, s, killed = run(fake, sink, degrade=True)
    assert isinstance(killed.__cause__, BudgetExceeded) and killed.reason == "budget"
    assert s.cost_usd <= 0.02
    # the trimmed request's bound, not the full history's, is what was reserved:
    # the session is stopped within one trimmed call of its budget, not far short of it
    assert s.cost_usd > 0.019
    assert fake.count == s.calls

    sizes = [len(r.body["messages"]) for r in fake.requests]
    models = [r.model for r in fake.requests]
    first = models.index(SMALL)  # the call that crossed the line was already degraded
    assert set(models[:first]) == {BIG} and set(models[first:]) == {SMALL}
    assert sizes[:first] == [2 + 2 * i for i in range(first)]  # full history, growing
    assert all(n == 1 + 4 for n in sizes[first:])  # system + the last 4 messages
    assert all(r.body["messages"][0]["role"] == "system" for r in fake.requests)
    assert [e.data["signal"] for e in sink.of("loop")] == ["context_growth"]
    assert len(sink.of("degraded")) == 1 and len(sink.of("tripped")) == 1


def test_without_degradation_the_same_budget_buys_far_fewer_steps(fake, sink):
    fake.default = Reply(text="Need more logs.")
    _, s_plain, killed = run(fake, sink, degrade=False)
    plain = fake.count
    assert killed.reason == "budget" and s_plain.cost_usd <= 0.02
    assert [e.data["action"] for e in sink.of("loop")] == ["degrade"]  # detected, but nothing to degrade to
    fake.reset()
    _, s_degraded, _ = run(fake, sink, degrade=True)
    assert fake.count > 2 * plain
