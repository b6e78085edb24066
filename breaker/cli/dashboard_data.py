"""What ``breaker dashboard`` shows, as JSON-ready data: ``GET /api/summary``.

The figures are ``breaker report``'s own: the same ``Group`` sums over the
same ``CallRecord``s (``report.group_records`` and ``Group.add``), so the
dashboard and ``breaker report --format json`` agree by construction. Its
``totals`` and ``by`` have the report's shape; the headline figures
(``cost_usd``, ``calls``, ``sessions``, ``trips`` …) are the totals again at
the top level. What only the dashboard needs is added beside them: spend over
time per feature and per model (the chart), and the latest degraded calls.

A ledger keeps spend, not budgets: limits live in the code or configuration
that builds the ``Breaker``. So "how full" is shown as spend per scope.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..ledgers.base import CallRecord
from ..redact import scrub
from ._common import History
from .report import GROUPS, Group, group_records, iso, stopped_sessions

__all__ = ["OTHER", "SERIES_KEYS", "STEPS", "degraded", "series", "summary", "tripped"]

SERIES_KEYS = 6  # features / models drawn in the chart; the rest are summed as OTHER
OTHER = "(others)"
STEPS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
MAX_BUCKETS = 48
DEGRADED_SHOWN = 20


def summary(history: History, ledger: str, *, top: int = 0) -> dict[str, Any]:
    """The dashboard's JSON: the report's ``totals``, ``by`` and trips, a time series, degraded calls.

    ``top`` keeps the dearest ``top`` rows per group (0: all, as the report's JSON does).
    """
    records, outcomes = history.records, history.outcomes
    total = Group("total")
    for r in records:
        total.add(r)
    total.outcomes.update(o[4] for o in outcomes)
    totals = total.row()
    groups = {by: group_records(records, outcomes, by) for by in GROUPS}
    start = history.since if history.since is not None else history.first
    return {
        **{k: v for k, v in totals.items() if k != "key"},  # cost_usd, calls, sessions, trips (a count) …
        "from": iso(start),
        "to": iso(history.now),
        "ledger": scrub(ledger),  # a redis:// password stays out, as in the report
        "totals": totals,
        "by": {by: [g.row() for g in (gs[:top] if top else gs)] for by, gs in groups.items()},
        "tripped": stopped_sessions(records),
        "series": series(records, start, history.now),
        "degraded": degraded(records),
    }


def series(records: Sequence[CallRecord], start: float, end: float) -> dict[str, Any]:
    """Spend per time bucket, per feature and per model (nano-USD, summed by ``Group.add``).

    The bucket is the shortest of ``STEPS`` that covers the span in at most
    ``MAX_BUCKETS`` bars; the ``SERIES_KEYS`` dearest keys are drawn, the others summed.
    """
    span = max(end - start, 1.0)
    step = next((s for s in STEPS if span / s <= MAX_BUCKETS), STEPS[-1])
    origin = int(start // step) * step
    count = int((end - origin) // step) + 1
    out: dict[str, Any] = {
        "step_seconds": step,
        "starts": [iso(origin + i * step) for i in range(count)],
    }
    buckets: list[list[CallRecord]] = [[] for _ in range(count)]
    for r in records:
        buckets[min(max(int((r.at - origin) // step), 0), count - 1)].append(r)
    for by in ("feature", "model"):
        shown = [g.key for g in group_records(records, (), by)[:SERIES_KEYS]]
        lines: dict[str, list[int]] = {key: [0] * count for key in shown}
        for i, bucket in enumerate(buckets):
            for g in group_records(bucket, (), by):  # the report's grouping, one bucket at a time
                line = lines.get(g.key) or lines.setdefault(OTHER, [0] * count)
                line[i] += g.cost_nano
        out[by] = [{"key": key, "cost_nano_usd": line} for key, line in lines.items()]
    return out


def degraded(records: Sequence[CallRecord], limit: int = DEGRADED_SHOWN) -> list[dict[str, Any]]:
    """The latest calls sent cheaper than asked (another model, a lower cap), newest first."""
    rows = [r for r in records if r.degraded and r.outcome != "refused"]
    return [
        {"at": iso(r.at), "session": r.session, "feature": r.feature, "user": r.user, "model": r.model,
         "cost_nano_usd": r.cost_nano, "cost_usd": None if r.cost_nano is None else r.cost_nano / 1e9}
        for r in reversed(rows[-limit:])
    ]


