"""``breaker report``: where the money went, from a ledger's call records.

Spend is grouped by session, feature, user, model and day: calls, tokens by
kind, cost, cost per outcome (``Session.outcome``), trips and degraded calls,
sums of the ledger's ``CallRecord``s as the engine priced them when each call
settled. Beside them, what the bill is made of (``figures``: cache savings and
the context resent uncached, retries, loops, reasoning, history growth, routed
calls, and a what-if re-pricing under a model map), which re-price the recorded
usage with the bundled prices; the tables and hints for them are in
``report_sections``.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any, Sequence

from ..ledgers.base import CallRecord
from ..redact import scrub
from . import report_sections as sections
from ._common import add_ledger_arguments, describe_span, read_history, usd
from .figures import Repricer, parse_what_if
from .grant import grant_row, read_grants
from .groups import GROUPS, NONE, Group, day_of, group_records, trip_reason
from .render import FORMATS, Column, write_csv, write_json, write_tables

__all__ = ["GROUPS", "NONE", "Group", "add_parser", "day_of", "group_records", "run", "table_columns", "table_row",
           "trip_reason"]

DEFAULT_TOP = 20

HELP = "spend by session, feature, user and model, from a SQLite file or Redis ledger"
DESCRIPTION = """\
Spend by session, feature, user, model and day (UTC) from the call records a
Breaker kept: calls, tokens by kind, cost, cost per outcome, trips and degraded
calls; then what the bill is made of: cache savings and context resent uncached,
retries, loops, reasoning, history growth, routed calls, with hints.

Cost per outcome is a group's whole spend divided by the number of outcomes
recorded with Session.outcome(name) in it, so sessions that failed count against
the ones that succeeded: what one resolved ticket really costs. Outcomes belong to
sessions, not models, so the model table has none.

A trip is a session stopped by a budget or a loop detector; a degraded call was
sent cheaper (another model, fewer output tokens) because a budget or a detector
asked for it; a routed call was sent to the model a Breaker(route=...) rule chose.

Cache and waste figures re-price the recorded usage with the bundled prices, each
request on its own: cache_savings (cache reads and writes billed as plain input,
minus the bill), resent_context (uncached input that re-sent the prefix of the
session's previous call to that model within 5 minutes, the providers' cache
lifetime), retry (failed calls, and requests sent again after an answer or a
failure), loop (calls a loop detector flagged and let through: warn or degrade),
reasoning (reasoning tokens' share of the output), history growth (input added
per call within sessions). --what-if FROM=TO re-prices the calls of FROM at TO's
price (prices only: tokenizers and answer quality differ). Definitions in full:
breaker/cli/figures.py."""

EXAMPLES = """\
examples:
  breaker report --ledger breaker.db
  breaker report --ledger breaker.db --since 7d --by feature
  breaker report --ledger redis://localhost:6379/0 --since 2026-11-01 --format csv > spend.csv
  breaker report --ledger breaker.db --what-if gpt-4o=gpt-4o-mini --by feature"""


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _int(v: int) -> str:
    return f"{v:,}"


# Table columns; token kinds nobody used are dropped from the table (not from JSON / CSV).
TABLE_COLUMNS = (
    Column("key", "{by}"),
    Column("calls", "calls", _int, True),
    Column("input_tokens", "input\ntokens", _int, True),
    Column("cache_read_tokens", "cache\nread", _int, True),
    Column("cache_write_tokens", "cache\nwrite", _int, True),
    Column("output_tokens", "output\ntokens", _int, True),
    Column("reasoning_tokens", "of which\nreasoning", _int, True),
    Column("cost", "cost", str, True),
    Column("degraded_calls", "degraded\ncalls", _int, True),
    Column("routed_calls", "routed\ncalls", _int, True),
    Column("trips", "trips", _int, True),
)
OUTCOME_COLUMNS = (
    Column("key", "{by}"),
    Column("outcome", "outcome"),
    Column("count", "count", _int, True),
    Column("cost_each", "cost each", str, True),
)
OPTIONAL = {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "degraded_calls", "routed_calls", "trips"}
FLAT_KEYS = (
    "key", "sessions", "calls", "failed_calls", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "cost_usd", "cost_nano_usd", "unpriced_calls", "degraded_calls", "trips",
)


def add_parser(sub: Any) -> None:
    """Register ``breaker report`` (its options double as its documentation)."""
    p = sub.add_parser("report", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--since", metavar="WHEN", help="only calls since then: a duration back from now (1h, 7d) "
                   "or an ISO date/time, UTC unless it says otherwise (2026-11-01, 2026-11-01T09:00)")
    p.add_argument("--by", choices=GROUPS, action="append",
                   help="group by this (repeatable); default: all five (day: UTC days, oldest first)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (needs rich), json or csv")
    p.add_argument("--top", type=_top, metavar="N",
                   help=f"rows per group, dearest first (tables default to {DEFAULT_TOP}; 0 = all)")
    p.add_argument("--what-if", action="append", metavar="FROM=TO", dest="what_if",
                   help="re-price the calls of model FROM at model TO's price and show the difference per "
                        "feature (repeatable, or comma-separated: gpt-4o=gpt-4o-mini,o3=o4-mini); prices only")
    p.set_defaults(run=run)


def _top(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (all) or more")
    return n


def run(args: argparse.Namespace) -> int:
    """Print the spend report; 2 (via ``CliError``) for a missing, unreadable or empty ledger."""
    history = read_history(args.ledger, args.since, prefix=args.prefix)
    grants = [grant_row(g) for g in read_grants(args.ledger, history.since, args.prefix)]  # operators' grants
    repricer = Repricer()
    repricer.what_if = parse_what_if(getattr(args, "what_if", None), repricer.book)
    bys: Sequence[str] = list(dict.fromkeys(args.by or GROUPS))
    groups = {by: group_records(history.records, history.outcomes, by, repricer) for by in bys}
    features = groups.get("feature") or group_records(history.records, history.outcomes, "feature", repricer)
    top = args.top if args.top is not None else (DEFAULT_TOP if args.format == "table" else 0)
    total = Group("total", repricer=repricer)
    for r in history.records:
        total.add(r)
    total.outcomes.update(o[4] for o in history.outcomes)
    trips = stopped_sessions(history.records)
    routes = sections.route_rows(history.records, repricer)
    advice = sections.hints(features)

    def shown(by: str, gs: list[Group]) -> list[Group]:
        return (gs[-top:] if by == "day" else gs[:top]) if top else gs

    if args.format == "json":
        payload = {
            "from": iso(history.since if history.since is not None else history.first),
            "to": iso(history.now),
            "ledger": scrub(args.ledger),  # a redis:// URL's password stays out of the report
            "totals": total.row(),
            "by": {by: [g.row() for g in shown(by, gs)] for by, gs in groups.items()},
            "trips": trips,
            "grants": grants,
            "routes": routes,
            "hints": advice,
        }
        if repricer.what_if:
            payload["what_if"] = {"map": repricer.what_if, "by_feature": [
                {"key": g.key, **{k: v for k, v in g.row().items() if k.startswith("what_if")},
                 "cost_usd": g.cost_nano / 1e9, "cost_nano_usd": g.cost_nano} for g in features]}
        write_json(payload)
        return 0
    if args.format == "csv":
        keys = FLAT_KEYS + sections.WASTE_KEYS + (sections.what_if_keys() if repricer.what_if else ())
        columns = [Column("by", "by")] + [Column(k, k) for k in keys] + [
            Column("outcomes", "outcomes"), Column("cost_per_any_outcome_usd", "cost_per_any_outcome_usd")]
        rows = []
        for by, gs in groups.items():
            for g in shown(by, gs):
                row = g.row()
                row["by"] = by
                row["outcomes"] = ";".join(f"{k}={v}" for k, v in row["outcomes"].items())
                rows.append(row)
        write_csv(columns, rows)
        return 0

    tables: list[Any] = []
    notes = []
    for by, gs in groups.items():
        if by == "day":
            tables.append(sections.day_table(gs, top))
            continue
        picked = shown(by, gs)
        rows = [table_row(g) for g in picked]
        columns = [c for c in table_columns(by) if c.key not in OPTIONAL or any(r[c.key] for r in rows)]
        more = f" (dearest {len(picked)} of {len(gs)}; --top 0 shows all)" if len(picked) < len(gs) else ""
        tables.append((f"Spend by {by}{more}", columns, rows))
        outcomes = [{"key": g.key, "outcome": name, "count": count, "cost_each": usd(-(-g.cost_nano // count))}
                    for g in picked for name, count in sorted(g.outcomes.items(), key=lambda kv: -kv[1])]
        if outcomes:
            tables.append((f"Cost per outcome, by {by}",
                           [_header(c, by) for c in OUTCOME_COLUMNS], outcomes))
        waste = sections.waste_table(by, picked) if by != "session" else None
        if waste is not None:
            tables.append(waste)
    if routes:
        tables.append(sections.route_table(routes))
    if repricer.what_if:
        tables.append(sections.what_if_table(features, repricer.what_if))
    t = total.row()
    notes.append(
        f"Total {describe_span(history)}: {usd(total.cost_nano)} over {_n(t['calls'], 'call')} in "
        f"{_n(t['sessions'], 'session')} ({t['input_tokens']:,} input and {t['output_tokens']:,} output tokens); "
        f"{_n(t['degraded_calls'], 'call')} degraded"
        + (f", {_n(len(trips), 'session')} tripped." if trips else ".")
    )
    if total.unpriced_calls:
        notes.append(f"Calls with no price (not in the cost): {total.unpriced_calls:,}; "
                     f"see `breaker prices MODEL`.")
    for trip in trips[:10]:
        notes.append(f"  tripped: session {trip['session']} ({trip['reason']}) at {trip['at']}")
    if len(trips) > 10:
        notes.append(f"  … and {len(trips) - 10} more (--format json lists them all)")
    for given in grants[-10:]:
        lifted = given["trips_lifted"]
        notes.append(f"  granted: {given['amount']} to {given['scope']} by {given['by']} at {given['at']}"
                     + (f" (lifted {lifted} trip{'s' if lifted != 1 else ''})" if lifted else ""))
    notes.extend(sections.waste_lines(total))
    if repricer.what_if:
        diff = total.what_if_nano - total.cost_nano
        notes.append(f"What if: {usd(total.what_if_nano)} instead of {usd(total.cost_nano)} "
                     f"({sections.signed_usd(diff)}) with {total.what_if_calls:,} calls re-priced; prices only "
                     f"(another model counts tokens and answers differently).")
    if total.unrepriced_calls:
        notes.append(f"{total.unrepriced_calls:,} calls have prices the bundled data lacks (Breaker(prices=...)): "
                     f"the cache, reasoning, routing and what-if figures leave them out.")
    notes.extend(advice)
    write_tables(tables, notes)
    return 0


def table_row(group: Group) -> dict[str, Any]:
    """A group's row as the tables show it (cost written out, "unpriced" when nothing was priced)."""
    row = group.row()
    row["cost"] = "unpriced" if group.unpriced_calls == group.calls else usd(group.cost_nano)
    return row


def table_columns(by: str, keys: Sequence[str] | None = None) -> list[Column]:
    """The spend-table columns, headed for ``by`` (all of them, or only ``keys``)."""
    return [_header(c, by) for c in TABLE_COLUMNS if keys is None or c.key in keys]


def _header(column: Column, by: str) -> Column:
    return Column(column.key, column.header.format(by=by), column.show, column.numeric)


def stopped_sessions(records: Sequence[CallRecord]) -> list[dict[str, Any]]:
    """Each stopped session once, with the first reason the ledger gives (the report's and the
    dashboard's trips list)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        reason = trip_reason(r)
        if reason is not None and r.session not in seen:
            seen[r.session] = {"session": r.session, "feature": r.feature, "user": r.user,
                               "reason": reason, "at": iso(r.at)}
    return list(seen.values())


def iso(at: float) -> str:
    """A record's time as ISO 8601 UTC, to the second (the JSON the report and the dashboard write)."""
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="seconds")
