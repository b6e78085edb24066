"""A ledger history written by a real guard, and the truth the engine saw while writing it.

The CLI tests compare what ``breaker report`` / ``forecast`` print with what
the engine itself returned (``settle``'s cost, ``Ticket.degraded``), never
with figures computed by hand a second time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from breaker import Breaker, Budget, Degrade, Usage
from breaker.adapter import Call

DAY = 86_400


@dataclass
class Truth:
    cost: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (by, key) -> nano-USD
    calls: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    degraded: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    unpriced: int = 0
    old_cost: int = 0  # spend recorded 10 days ago
    total: int = 0


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_fp = iter(range(10**9))


def _call(guard: Breaker, truth: Truth, session, model: str, usage: Usage | None, *, old: bool = False) -> None:
    ticket = guard.admit(Call(model, "openai", input_tokens=usage.input_tokens if usage else 100,
                              max_output_tokens=1000, fingerprint=next(_fp)))
    cost = guard.settle(ticket, usage)
    used = ticket.model
    for by, key in (("session", session.id), ("feature", session.feature or "(none)"),
                    ("user", session.user or "(none)"), ("model", used)):
        truth.calls[(by, key)] += 1
        truth.cost[(by, key)] += cost or 0
        truth.degraded[(by, key)] += ticket.degraded
    truth.total += cost or 0
    if cost is None and usage is not None:
        truth.unpriced += 1
    if old:
        truth.old_cost += cost or 0


def populate(ledger) -> Truth:
    """Sessions over two features, three users, four models, now and ten days ago."""
    truth = Truth()
    clock = _Clock(time.time() - 10 * DAY)
    guard = Breaker(
        budgets=[Budget(usd=0.02, degrade_at=0.5)],
        degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
        alerts=[], ledger=ledger, loops=None, unknown_price="warn",
        prices={"my-finetune": {"input": 3.0, "output": 12.0}, "house-model": {"input": 1, "output": 1}},
        clock=clock,
    )
    with guard.session("old-1", feature="summarize", user="acme") as s:
        _call(guard, truth, s, "gpt-4o-mini", Usage(20_000, 2_000), old=True)
    clock.now = time.time() - 60
    with guard.session("t-1", feature="support", user="acme") as s:
        for _ in range(4):  # $0.0045 each: the 4th passes 50% of $0.02 and later calls are degraded
            _call(guard, truth, s, "gpt-4o", Usage(1000, 200))
        _call(guard, truth, s, "gpt-4o", Usage(1000, 200))
        _call(guard, truth, s, "gpt-4o", None)  # a failed call
        s.outcome("escalated")
    with guard.session("t-2", feature="support", user="beta") as s:
        _call(guard, truth, s, "claude-3-5-haiku-latest", Usage(5000, 300, cache_read_tokens=4000))
        _call(guard, truth, s, "my-finetune", Usage(800, 100))
        s.outcome("resolved")
    with guard.session("t-3", feature="summarize") as s:
        _call(guard, truth, s, "gpt-4o-mini", Usage(3000, 400, reasoning_tokens=0))
        _call(guard, truth, s, "unpriced-model", Usage(500, 50))
        s.outcome("resolved")
    return truth


def write_sqlite(path) -> Truth:
    from breaker.ledgers import SQLite

    ledger = SQLite(str(path))
    try:
        return populate(ledger)
    finally:
        ledger.close()
