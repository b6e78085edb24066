"""The parts of ``breaker report`` beyond spend: cache and waste tables, routed calls, what-if,
cost per outcome by day, and the hints and waste lines (the demo ends with the same lines).

The figures are ``Group``'s (``report.py``), defined in ``figures.py``; this module only
lays them out and says, in a sentence per feature, where a change would pay.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..ledgers.base import CallRecord
from ._common import usd
from .figures import CACHE_LIFETIME, Repricer, flags_of
from .groups import Group
from .render import Column

__all__ = [
    "WASTE_KEYS", "day_table", "hints", "route_rows", "route_table", "signed_usd", "waste_lines", "waste_table",
    "waste_summary", "what_if_keys", "what_if_table",
]

WASTE_KEYS = (
    "cache_hit_rate", "cache_savings_usd", "resent_context_tokens", "resent_context_usd",
    "resent_context_saving_usd", "retry_usd", "loop_usd", "loop_calls", "reasoning_usd",
    "history_growth_tokens_per_call", "growing_sessions", "routed_calls", "routing_savings_usd",
)
"""The figures CSV adds to each group's row (JSON has them all, with exact nano-USD beside)."""

# Hints fire when a figure is a noticeable part of a feature's spend, not on rounding noise.
HINT_SHARE = 0.05
GROWTH_HINT_TOKENS = 500
_MINUTES = int(CACHE_LIFETIME // 60)


def what_if_keys() -> tuple[str, ...]:
    return ("what_if_calls", "what_if_cost_usd", "what_if_difference_usd")


def signed_usd(nano: int) -> str:
    """A difference in USD with its sign: ``+$0.0120``, ``-$1.50``."""
    return ("-" if nano < 0 else "+") + usd(abs(nano))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _money(nano: int) -> str:
    return usd(nano) if nano else "-"


def _growth(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.0f}"


WASTE_COLUMNS = (
    Column("key", "{by}"),
    Column("cache_hit_rate", "cache\nhit rate", _pct, True),
    Column("cache_savings", "cache\nsaved", _money, True),
    Column("resent_context", "resent\nuncached", _money, True),
    Column("retry", "retries", _money, True),
    Column("loop", "loops", _money, True),
    Column("reasoning", "reasoning", _money, True),
    Column("history_growth_tokens_per_call", "input added\nper call", _growth, True),
)


def waste_table(by: str, groups: Sequence[Group]) -> tuple[str, list[Column], list[dict[str, Any]]] | None:
    """``Cache and waste, by {by}``, or ``None`` when nothing in it is worth a row."""
    rows = []
    for g in groups:
        w = g.waste()
        row = {"key": g.key, "cache_hit_rate": w["cache_hit_rate"] if g.cache_read_tokens else None,
               "cache_savings": g.cache_savings_nano, "resent_context_tokens": g.resent_tokens,
               "resent_context": g.resent_nano, "retry": g.retry_nano, "loop": g.loop_nano,
               "reasoning": g.reasoning_nano, "history_growth_tokens_per_call": w["history_growth_tokens_per_call"]}
        if any(row[k] for k in ("cache_hit_rate", "cache_savings", "resent_context_tokens", "retry", "loop", "reasoning")):
            rows.append(row)
    if not rows:
        return None
    columns = [Column(c.key, c.header.format(by=by), c.show, c.numeric) for c in WASTE_COLUMNS]
    return f"Cache and waste, by {by}", columns, rows


DAY_COLUMNS = (
    Column("key", "day (UTC)"),
    Column("calls", "calls", lambda v: f"{v:,}", True),
    Column("sessions", "sessions", lambda v: f"{v:,}", True),
    Column("cost", "cost", str, True),
    Column("outcomes", "outcomes", lambda v: f"{v:,}" if v else "-", True),
    Column("cost_per_outcome", "cost per\noutcome", str, True),
    Column("waste", "retries +\nloops", _money, True),
)


def day_table(groups: Sequence[Group], top: int) -> tuple[str, list[Column], list[dict[str, Any]]]:
    """Cost per outcome over time: one row per UTC day (the latest ``top`` days; 0: all)."""
    shown = groups[-top:] if top else groups
    rows = []
    for g in shown:
        n = sum(g.outcomes.values())
        rows.append({"key": g.key, "calls": g.calls, "sessions": len(g.sessions), "cost": usd(g.cost_nano),
                     "outcomes": n, "cost_per_outcome": usd(-(-g.cost_nano // n)) if n else "-",
                     "waste": g.retry_nano + g.loop_nano})
    more = f" (latest {len(shown)} of {len(groups)}; --top 0 shows all)" if len(shown) < len(groups) else ""
    return f"Cost per outcome by day{more}", list(DAY_COLUMNS), rows


def route_rows(records: Iterable[CallRecord], repricer: Repricer) -> list[dict[str, Any]]:
    """Routed calls per (requested model, model sent): their cost, and as requested."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        if r.outcome == "refused" or not r.requested_model or "routed" not in flags_of(r):
            continue
        row = pairs.get((r.requested_model, r.model))
        if row is None:
            row = pairs[(r.requested_model, r.model)] = {
                "requested_model": r.requested_model, "model": r.model, "calls": 0, "cost_nano_usd": 0,
                "requested_cost_nano_usd": 0, "unrepriced_calls": 0}
        row["calls"] += 1
        fx = repricer.fixed(r)
        if fx.requested is None:
            row["unrepriced_calls"] += 1
            continue
        row["cost_nano_usd"] += r.cost_nano or 0
        row["requested_cost_nano_usd"] += fx.requested
    out = sorted(pairs.values(), key=lambda row: (-row["requested_cost_nano_usd"], row["requested_model"]))
    for row in out:
        row["saved_nano_usd"] = row["requested_cost_nano_usd"] - row["cost_nano_usd"]
        row["cost_usd"], row["requested_cost_usd"] = row["cost_nano_usd"] / 1e9, row["requested_cost_nano_usd"] / 1e9
        row["saved_usd"] = row["saved_nano_usd"] / 1e9
    return out


def route_table(rows: Sequence[dict[str, Any]]) -> tuple[str, list[Column], list[dict[str, Any]]]:
    columns = [Column("requested_model", "requested"), Column("model", "sent"),
               Column("calls", "calls", lambda v: f"{v:,}", True),
               Column("cost_nano_usd", "cost\nas sent", usd, True),
               Column("requested_cost_nano_usd", "cost as\nrequested", usd, True),
               Column("saved_nano_usd", "saved", signed_usd, True)]
    return "Routed calls: requested vs sent (same usage)", columns, list(rows)


def what_if_table(
    groups: Sequence[Group], what_if: dict[str, str],
) -> tuple[str, list[Column], list[dict[str, Any]]]:
    """The what-if re-pricing per feature: cost as billed, under the map, and the difference."""
    rows = [{"key": g.key, "calls": g.what_if_calls, "now": usd(g.cost_nano), "then": usd(g.what_if_nano),
             "difference": g.what_if_nano - g.cost_nano} for g in groups if g.what_if_calls]
    columns = [Column("key", "feature"), Column("calls", "calls\nre-priced", lambda v: f"{v:,}", True),
               Column("now", "cost", str, True), Column("then", "cost\nwhat-if", str, True),
               Column("difference", "difference", signed_usd, True)]
    mapping = ", ".join(f"{a} → {b}" for a, b in what_if.items())
    return f"What if {mapping} (prices only)", columns, rows


def waste_lines(total: Group) -> list[str]:
    """Where the money went, in a few sentences (the report's notes, the demo's last lines)."""
    w = total.waste()
    lines = []
    if total.cache_read_tokens or total.resent_tokens:
        text = "Cache: "
        if total.cache_read_tokens:
            text += (f"{w['cache_hit_rate']:.0%} of input read from the prompt cache, saving "
                     f"{usd(total.cache_savings_nano)}")
        else:
            text += "no input read from the prompt cache"
        if total.resent_tokens:
            text += (f"; {total.resent_tokens:,} input tokens re-sent uncached within {_MINUTES} minutes of the "
                     f"same prefix ({usd(total.resent_nano)}"
                     + (f"; caching would save {usd(total.resent_saving_nano)})" if total.resent_saving_nano else ")"))
        lines.append(text + ".")
    parts = [f"{usd(total.retry_nano)} on failed calls and requests sent again",
             f"{usd(total.loop_nano)} on {total.loop_calls:,} call{'' if total.loop_calls == 1 else 's'} "
             f"a loop detector flagged and let through"]
    if total.reasoning_nano:
        parts.append(f"{usd(total.reasoning_nano)} on reasoning tokens")
    share = (total.retry_nano + total.loop_nano) / total.cost_nano if total.cost_nano else 0.0
    lines.append(f"Waste: {', '.join(parts)}" + (f" (retries and loops: {share:.0%} of the spend)." if share else "."))
    measured, growing, _, per_call = total.followed.growth()
    if growing and per_call is not None:
        lines.append(f"History: the input grew call after call in {growing:,} of {measured:,} sessions, by about "
                     f"{per_call:,.0f} tokens per call (the whole history re-sent every turn).")
    if total.routed_calls:
        saved = total.routed_requested_nano - total.routed_nano
        lines.append(f"Routing: {total.routed_calls:,} call{'' if total.routed_calls == 1 else 's'} sent to the "
                     f"model a route rule chose, "
                     + (f"saving {usd(saved)}" if saved >= 0 else f"costing {usd(-saved)} more")
                     + " against the models requested.")
    return lines


def waste_summary(records: Iterable[CallRecord]) -> list[str]:
    """``waste_lines`` of some records (oldest first), e.g. one session's: what the demo ends with."""
    total = Group("total")
    for r in records:
        total.add(r)
    return waste_lines(total)


def hints(features: Sequence[Group]) -> list[str]:
    """One sentence per feature and lever that would pay: caching, history, retries, loops, reasoning."""
    out = []
    for g in features:
        if not g.cost_nano:
            continue
        name = f"feature {g.key!r}"
        if g.resent_saving_nano and g.resent_nano >= HINT_SHARE * g.cost_nano:
            out.append(
                f"Hint: {name} re-sent {g.resent_tokens:,} input tokens uncached within {_MINUTES} minutes of the "
                f"same prefix ({usd(g.resent_nano)}, {g.resent_nano / g.cost_nano:.0%} of its spend): prompt caching "
                f"would save about {usd(g.resent_saving_nano)}. Keep the stable part first (system prompt, tools, "
                f"earlier turns) and, on Anthropic, mark it with cache_control.")
        measured, growing, _, per_call = g.followed.growth()
        if growing and per_call is not None and per_call >= GROWTH_HINT_TOKENS and growing * 2 >= measured:
            out.append(
                f"Hint: the input of {name} grows by about {per_call:,.0f} tokens per call in {growing:,} of "
                f"{measured:,} sessions: the whole history is re-sent every turn, so a conversation costs the square of its "
                f"length. Trim it (Degrade(keep_last_messages=...)), summarise old turns, or cache the prefix.")
        if g.retry_nano >= HINT_SHARE * g.cost_nano:
            out.append(
                f"Hint: {name} spent {usd(g.retry_nano)} ({g.retry_nano / g.cost_nano:.0%}) on failed calls and "
                f"requests sent again: back off between retries (breaker.retry), and fix validators that re-ask "
                f"the same question.")
        if g.loop_nano:
            out.append(
                f"Hint: {name} spent {usd(g.loop_nano)} on {g.loop_calls:,} calls a loop detector flagged and let "
                f"through (LoopPolicy on_detect='warn' or 'degrade'); on_detect='kill' would have refused them.")
        if g.reasoning_nano >= 0.3 * g.cost_nano:
            out.append(
                f"Hint: {name} spent {usd(g.reasoning_nano)} ({g.reasoning_nano / g.cost_nano:.0%}) on reasoning "
                f"tokens: a lower reasoning effort (Degrade(reasoning_effort='low')) or a model without reasoning "
                f"may do for it.")
    return out
