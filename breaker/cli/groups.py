"""A report's groups: the totals of the call records of one session, feature, user, model or day.

``Group.add`` sums one record (records oldest first) and ``Group.row`` gives the
machine values ``breaker report`` (JSON, CSV, tables) and ``breaker dashboard``
show, so the two agree by construction. The cache, waste and routing figures
are defined in ``figures``.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from ..ledgers.base import CallRecord
from ._common import Outcome
from .figures import Repricer, Sessions

__all__ = ["GROUPS", "NONE", "Group", "day_of", "default_repricer", "group_records", "trip_reason"]

GROUPS = ("session", "feature", "user", "model", "day")
NONE = "(none)"  # feature / user not set on the session

_REPRICER: Repricer | None = None


def default_repricer() -> Repricer:
    """The bundled prices, no what-if: one per process, so every grouping shares its memo."""
    global _REPRICER
    if _REPRICER is None:
        _REPRICER = Repricer()
    return _REPRICER


@dataclass
class Group:
    """One group's totals (integers: tokens, calls, nano-USD).

    Records must arrive oldest first (retries, resent context and history growth
    follow each session in order); ``repricer`` re-prices them (``figures``).
    """

    key: str
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0
    unpriced_calls: int = 0
    degraded_calls: int = 0
    sessions: set[str] = field(default_factory=set)
    tripped: dict[str, str] = field(default_factory=dict)  # session -> reason
    outcomes: Tally = field(default_factory=Tally)
    cache_savings_nano: int = 0
    resent_tokens: int = 0
    resent_nano: int = 0
    resent_saving_nano: int = 0
    retry_nano: int = 0
    loop_nano: int = 0
    loop_calls: int = 0
    reasoning_nano: int = 0
    routed_calls: int = 0
    routed_nano: int = 0  # routed calls whose requested model has a price: their cost as sent …
    routed_requested_nano: int = 0  # … and as requested
    what_if_nano: int = 0  # every call at its what-if price (the recorded cost when its model is not mapped)
    what_if_calls: int = 0
    unrepriced_calls: int = 0
    repricer: Repricer = field(default_factory=default_repricer, repr=False, compare=False)
    followed: Sessions = field(default_factory=Sessions, repr=False, compare=False)

    def add(self, r: CallRecord) -> None:
        reason = trip_reason(r)
        if reason is not None:
            self.tripped.setdefault(r.session, reason)
        if r.outcome == "refused":  # a call refused before it was sent: a trip, not a call
            return
        self.calls += 1
        self.errors += r.outcome == "error"
        self.input_tokens += r.input_tokens
        self.cache_read_tokens += r.cache_read_tokens
        self.cache_write_tokens += r.cache_write_tokens
        self.output_tokens += r.output_tokens
        self.reasoning_tokens += r.reasoning_tokens
        if r.cost_nano is None:
            self.unpriced_calls += 1
        else:
            self.cost_nano += r.cost_nano
        self.degraded_calls += bool(r.degraded)
        self.sessions.add(r.session)
        self._figures(r)

    def _figures(self, r: CallRecord) -> None:
        """Cache, waste, routing and what-if sums (``figures`` says what each one is)."""
        repricer = self.repricer
        fx = repricer.fixed(r)
        retry, resent = self.followed.see(r, fx)
        cost = r.cost_nano or 0
        if retry:
            self.retry_nano += cost
        self.cache_savings_nano += fx.cache_savings
        self.reasoning_nano += fx.reasoning
        self.unrepriced_calls += fx.unrepriced
        if fx.loop is not None:
            self.loop_nano += cost
            self.loop_calls += 1
        if fx.routed:
            self.routed_calls += 1
            if fx.requested is not None:
                self.routed_nano += cost
                self.routed_requested_nano += fx.requested
        if resent:
            self.resent_tokens += resent
            spent, saving = repricer.resent(r, resent)
            self.resent_nano += spent
            self.resent_saving_nano += saving
        if repricer.what_if:
            self.what_if_nano += cost if fx.what_if is None else fx.what_if
            self.what_if_calls += fx.what_if is not None

    def row(self) -> dict[str, Any]:
        """Machine values for JSON and CSV (USD as a float, exact nano-USD alongside)."""
        n_outcomes = sum(self.outcomes.values())
        return {
            "key": self.key,
            "sessions": len(self.sessions),
            "calls": self.calls,
            "failed_calls": self.errors,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_nano / 1e9,
            "cost_nano_usd": self.cost_nano,
            "unpriced_calls": self.unpriced_calls,
            "degraded_calls": self.degraded_calls,
            "trips": len(self.tripped),
            "outcomes": dict(self.outcomes),
            "cost_per_outcome_usd": {name: self.cost_nano / count / 1e9 for name, count in self.outcomes.items()},
            "cost_per_any_outcome_usd": self.cost_nano / n_outcomes / 1e9 if n_outcomes else None,
            **self.waste(),
        }

    def waste(self) -> dict[str, Any]:
        """The cache, waste and routing figures (``figures``), USD as floats with exact nano-USD beside."""
        measured, growing, per_call, _ = self.followed.growth()
        out: dict[str, Any] = {"cache_hit_rate": self.cache_read_tokens / self.input_tokens if self.input_tokens else None}
        for name, nano in (("cache_savings", self.cache_savings_nano), ("resent_context", self.resent_nano),
                           ("resent_context_saving", self.resent_saving_nano), ("retry", self.retry_nano),
                           ("loop", self.loop_nano), ("reasoning", self.reasoning_nano),
                           ("routing_savings", self.routed_requested_nano - self.routed_nano)):
            out[f"{name}_usd"] = nano / 1e9
            out[f"{name}_nano_usd"] = nano
        out.update({
            "resent_context_tokens": self.resent_tokens, "loop_calls": self.loop_calls,
            "routed_calls": self.routed_calls, "history_sessions": measured, "growing_sessions": growing,
            "history_growth_tokens_per_call": per_call, "unrepriced_calls": self.unrepriced_calls,
        })
        if self.repricer.what_if:
            out.update({"what_if_calls": self.what_if_calls, "what_if_cost_usd": self.what_if_nano / 1e9,
                        "what_if_cost_nano_usd": self.what_if_nano,
                        "what_if_difference_usd": (self.what_if_nano - self.cost_nano) / 1e9,
                        "what_if_difference_nano_usd": self.what_if_nano - self.cost_nano})
        return out


def trip_reason(r: CallRecord) -> str | None:
    """Why a record's session was stopped, if the record says so."""
    if r.tripped:
        return r.tripped
    if r.outcome == "refused":
        return "refused"
    return None


def day_of(at: float) -> str:
    """The UTC day of a timestamp, ``"2026-11-23"`` (ledgers keep UTC; a report does not shift with its reader)."""
    return datetime.fromtimestamp(at, tz=timezone.utc).date().isoformat()


def _key(r: CallRecord, by: str) -> str:
    if by == "day":
        return day_of(r.at)
    value = r.model if by == "model" else getattr(r, by)
    return value if value else NONE


def group_records(
    records: Iterable[CallRecord], outcomes: Iterable[Outcome], by: str, repricer: Repricer | None = None,
) -> list[Group]:
    """Totals per ``by`` key, dearest first (days: oldest first). Outcomes join on session,
    feature, user or the day they were recorded. ``records`` oldest first."""
    groups: dict[str, Group] = {}
    repricer = repricer or default_repricer()
    for r in records:
        key = _key(r, by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key, repricer=repricer)
        group.add(r)
    if by != "model":
        join: Callable[[Outcome], str | None] = {
            "session": lambda o: o[1], "feature": lambda o: o[2], "user": lambda o: o[3],
            "day": lambda o: day_of(o[0]),
        }[by]
        for o in outcomes:
            group = groups.get(join(o) or NONE)
            if group is not None:
                group.outcomes[o[4]] += 1
    if by == "day":
        return sorted(groups.values(), key=lambda g: g.key)
    return sorted(groups.values(), key=lambda g: (-g.cost_nano, -g.calls, g.key))
