"""Plan: which ledger counters and limits apply to a session.

A budget applies per scope key (a session and its parents, a feature, a user,
a tag, or the one global scope). For one session that becomes a tuple of
``Counter`` objects (one per scope key and window) and a tuple of ``Line``
objects (one per budget limit on one counter, with its thresholds as
integers). The plan is made once per session object and cached on it: every
admission and settlement of that session reuses it.

A budget with a calendar period (``Budget(period="month", tz=...)``) counts on a
lifetime counter whose key names the period (``"feature:x@month:2026-11-01:UTC"``,
``budgets.period_label``), so no ledger needs period arithmetic. A plan with such a
counter is a ``PeriodPlan``, good until the earliest of its periods ends: then it is
falsy, and the engine's ``session.plan or plans.of(session)`` makes the next one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Sequence

from ..budgets import Budget, period_bounds, period_label
from ..ledgers.base import Counter, Limit

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["Line", "PeriodPlan", "Plan", "Plans", "counter_key"]


def counter_key(per: str, key: str | None) -> str:
    """The ledger key of one scope: ``"global"``, ``"session:ID"``, ``"user:ID"``, ``"tag:NAME=VALUE"``.

    The one place this naming lives: the ledger, ``Breaker.spent`` and the CLI all read counters by it.
    """
    if per == "global":
        return "global"
    if per in ("session", "feature", "user"):
        return f"{per}:{key}"
    return f"tag:{per}={key}"


class Line:
    """One budget limit bound to one scope key, with its thresholds as integers."""

    __slots__ = (
        "budget", "per", "key", "counter", "metric", "limit", "hard", "warn", "degrade_at", "watch", "index",
        "window", "anonymous", "scope", "until",
    )

    def __init__(
        self, budget: Budget, per: str, key: str | None, counter: int, metric: int, limit: int,
        window: int = 0, anonymous: bool = False, scope: Counter | None = None, until: float = 0.0,
    ) -> None:
        self.budget = budget
        self.scope = scope if scope is not None else Counter(counter_key(per, key), window)  # its ledger counter
        self.until = until  # when its calendar period ends (0: no period); its trip ends then too
        self.window = window  # seconds of the rolling window (0: the scope's whole life)
        self.anonymous = anonymous  # a per-session budget applied to calls outside any session
        self.per = per
        self.key = key
        self.counter = counter
        self.metric = metric
        self.limit = limit
        self.hard = budget.hard
        fractions = budget.warn_at + ((1.0,) if not budget.hard and 1.0 not in budget.warn_at else ())
        self.warn = tuple((int(limit * f), f) for f in fractions)
        self.degrade_at = int(limit * budget.degrade_at) if budget.degrade_at is not None else None
        watch = [limit + 1]
        if self.warn:
            watch.append(self.warn[0][0])
        if self.degrade_at is not None:
            watch.append(self.degrade_at)
        self.watch = min(watch)  # below this settled amount nothing can fire: the common case skips the line
        self.index = 0

    def who(self) -> str:
        """The scope, as messages name it."""
        if self.anonymous:
            return "Calls outside any session"
        if self.per == "session":
            return f"Session {self.key!r}"
        if self.per == "global":
            return "The global scope"
        if self.per in ("feature", "user"):
            return f"{self.per.capitalize()} {self.key!r}"
        return f"Tag {self.per}={self.key!r}"


class Plan:
    """Counters and limits for one session."""

    __slots__ = ("counters", "lines", "limits", "hard", "hard_lines", "degrading")

    def __init__(self, counters: tuple[Counter, ...], lines: list[Line]) -> None:
        self.counters = counters
        for i, line in enumerate(lines):
            line.index = i
        self.lines = tuple(lines)
        self.limits = tuple(Limit(l.counter, l.metric, l.limit) for l in lines)
        self.hard_lines = tuple(l for l in lines if l.hard)
        self.hard = tuple(Limit(l.counter, l.metric, l.limit) for l in self.hard_lines)
        self.degrading = any(l.degrade_at is not None for l in self.hard_lines)


class PeriodPlan(Plan):
    """A plan with calendar-period counters: current until ``expires`` (the end of its earliest period).

    Falsy from then on, so that the engine's ``session.plan or plans.of(session)`` (and
    ``Plans.of``) make a new plan, with the new periods' counters, at the first call after the
    boundary. Only these plans define ``__bool__``: a plain ``Plan``'s truth test stays free.
    """

    __slots__ = ("expires", "clock")

    def __init__(self, counters: tuple[Counter, ...], lines: list[Line], expires: float,
                 clock: Callable[[], float]) -> None:
        super().__init__(counters, lines)
        self.expires = expires
        self.clock = clock

    def __bool__(self) -> bool:
        return self.clock() < self.expires


class Plans:
    """Makes (once) and caches each session's plan from the guard's budgets.

    Calls outside any session share one anonymous scope. A per-session budget that
    is for the whole life of a session applies to it as a rolling window of
    ``anonymous_window`` (the guard's ``session_ttl``): that scope never ends, and a
    lifetime budget over every session-less call the process ever makes would trip
    it for good.
    """

    __slots__ = ("budgets", "anonymous_window", "clock", "_periods")

    def __init__(self, budgets: Sequence[Budget], anonymous_window: int = 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self.budgets = tuple(budgets)
        self.anonymous_window = anonymous_window
        self.clock = clock
        self._periods: dict[tuple[str, str], tuple[float, float, str]] = {}  # the current period of each kind

    def of(self, session: Session) -> Plan:
        plan = session.plan
        if plan is None or not plan:  # none yet, or a PeriodPlan whose period has ended
            plan = session.plan = self.make(session)
        return plan

    def period(self, budget: Budget, now: float) -> tuple[float, str]:
        """The end and the counter-key suffix of ``budget``'s period holding ``now`` (computed once per period)."""
        key = (budget.period or "", budget.tz)
        hit = self._periods.get(key)
        if hit is None or not hit[0] <= now < hit[1]:
            start, end, first = period_bounds(budget.period or "", budget.zone, now)  # type: ignore[arg-type]
            hit = self._periods[key] = (start, end, period_label(budget.period or "", budget.zone, first))  # type: ignore[arg-type]
        return hit[1], hit[2]

    def make(self, session: Session) -> Plan:
        counters: dict[tuple[str, int], int] = {}

        def counter(key: str, window: int = 0) -> int:
            return counters.setdefault((key, window), len(counters))

        chain = session.chain
        for s in chain:
            counter(counter_key("session", s.id))
        if session.feature is not None:
            counter(counter_key("feature", session.feature))
        if session.user is not None:
            counter(counter_key("user", session.user))
        counter("global")

        lines: list[Line] = []
        anonymous = session.anonymous
        now = self.clock()
        expires = float("inf")
        for budget in self.budgets:
            per = budget.per
            keys: list[str | None]
            if per == "session":
                keys = [s.id for s in chain]
            elif per == "global":
                keys = [None]
            elif per == "feature":
                keys = [session.feature] if session.feature is not None else []
            elif per == "user":
                keys = [session.user] if session.user is not None else []
            else:
                keys = [session.tags[per]] if per in session.tags else []
            for key in keys:
                if budget.key is not None and key != budget.key:
                    continue
                window = budget.window_s
                name, until = counter_key(per, key), 0.0
                if budget.period is not None:  # a lifetime counter per period: it ends with the period
                    until, label = self.period(budget, now)
                    name = f"{name}@{label}"
                    expires = min(expires, until)
                rolled = anonymous and per == "session" and not window and not until
                if rolled:
                    window = self.anonymous_window
                index = counter(name, window)
                scope = Counter(name, window)
                for metric, limit in budget.limits:
                    lines.append(Line(budget, per, key, index, metric, limit, window, rolled, scope, until))
        ordered = tuple(Counter(k, w) for (k, w), _ in sorted(counters.items(), key=lambda kv: kv[1]))
        if expires < float("inf"):
            return PeriodPlan(ordered, lines, expires, self.clock)
        return Plan(ordered, lines)
