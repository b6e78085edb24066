"""The dashboard's HTML page, rendered on the server from ``/api/summary``'s data.

Every id in a ledger (session, feature, user, model) was chosen by whoever
wrote to it, so every value goes through ``html.escape`` on its way into the
page: there is no other way in (the template's slots are filled only with
escaped text). The page runs no script at all (its Content-Security-Policy
says ``script-src 'none'``): the charts are inline SVG drawn here, the
time-range picker is a plain GET form and reloading is a ``<meta>`` refresh.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib import resources
from string import Template
from typing import Any, Sequence
from urllib.parse import urlencode

from ..version import __version__
from ._common import usd
from .dashboard_data import OTHER

__all__ = ["RANGES", "render_error", "render_page", "static_file"]

RANGES = (("", "everything"), ("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
          ("30d", "last 30 days"))
PALETTE = ("#3b6fd8", "#e0803a", "#3aa66a", "#c94a5a", "#8a5cc8", "#2aa3b3", "#a0a6b3")  # the last: others
TOP_ROWS = 10
CHART_W, CHART_H, LEFT, BOTTOM, TOP = 760, 210, 70, 26, 10


def static_file(name: str) -> str:
    """A file shipped beside this module (``dashboard.html``, ``dashboard.css``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any], *, since: str | None, refresh: int) -> str:
    """The whole page for one summary; ``since`` is the range shown (``None``: everything)."""
    by = data["by"]
    slots = {
        "title_cost": usd(data["cost_nano_usd"]),
        "ledger": data["ledger"],
        "span": f"from {_when(data['from'])} to {_when(data['to'])}",
        "refresh": str(refresh),
        "query": "?" + urlencode({"since": since}) if since else "",
        "version": __version__,
    }
    html = {
        "since_options": _since_options(since),
        "notice": "",
        "cards": _cards(data),
        "chart_feature": _chart(data["series"], "feature"),
        "chart_model": _chart(data["series"], "model"),
        "scope_feature": _scopes(by["feature"], data["cost_nano_usd"], "feature"),
        "scope_user": _scopes(by["user"], data["cost_nano_usd"], "user"),
        "trips": _trips(data["tripped"]),
        "sessions": _sessions(by["session"]),
        "outcomes": _outcomes(by["feature"], data),
        "waste": _waste(by["feature"], data),
        "models": _models(by["model"]),
        "degraded": _degraded(data["degraded"]),
    }
    return _fill(slots, html)


def render_error(message: str, *, since: str | None, ledger: str, refresh: int) -> str:
    """The page when there is nothing to show (no calls in the range, a ledger that cannot be read)."""
    slots = {"title_cost": "nothing", "ledger": ledger, "span": "no figures", "refresh": str(refresh),
             "query": "?" + urlencode({"since": since}) if since else "", "version": __version__}
    html = {key: '<p class="empty">Nothing to show.</p>' for key in (
        "chart_feature", "chart_model", "scope_feature", "scope_user", "trips", "sessions", "outcomes", "waste", "models",
        "degraded")}
    html.update(since_options=_since_options(since), cards="",
                notice=f'<section class="notice"><p>{escape(message)}</p></section>')
    return _fill(slots, html)


def _fill(text: dict[str, str], html: dict[str, str]) -> str:
    """The template with ``text`` escaped into its slots and ``html`` (built from escaped parts) as is."""
    values = {key: escape(value) for key, value in text.items()}
    values.update(html)
    return Template(static_file("dashboard.html")).substitute(values)


def _since_options(since: str | None) -> str:
    ranges = list(RANGES)
    if since and since not in dict(ranges):
        ranges.append((since, f"since {since}"))
    return "".join(
        f'<option value="{escape(value)}"{" selected" if value == (since or "") else ""}>{escape(label)}</option>'
        for value, label in ranges
    )


def _cards(data: dict[str, Any]) -> str:
    cards = [
        ("Spend", usd(data["cost_nano_usd"])),
        ("Calls", f"{data['calls']:,}"),
        ("Sessions", f"{data['sessions']:,}"),
        ("Trips", f"{data['trips']:,}"),
        ("Degraded calls", f"{data['degraded_calls']:,}"),
        ("Unpriced calls", f"{data['unpriced_calls']:,}"),
        ("Input tokens", f"{data['input_tokens']:,}"),
        ("Output tokens", f"{data['output_tokens']:,}"),
    ]
    return "".join(
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value" data-figure="{escape(label.lower().replace(" ", "-"))}">{escape(value)}</div></div>'
        for label, value in cards
    )


def _table(headers: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], *, html_cols: Sequence[int] = ()) -> str:
    """A table of escaped cells; ``headers`` are ``(title, numeric)``; ``html_cols`` hold pre-built markup."""
    if not rows:
        return '<p class="empty">None.</p>'
    head = "".join(f'<th{" class=num" if num else ""} scope="col">{escape(title)}</th>' for title, num in headers)
    body = []
    for row in rows:
        cells = []
        for i, (value, (_, num)) in enumerate(zip(row, headers)):
            cls = "num" if num else ("id" if i == 0 else "")
            cell = value if i in html_cols else escape(value)
            cells.append(f'<td{f" class={cls}" if cls else ""}>{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cost(row: dict[str, Any]) -> str:
    return "unpriced" if row["calls"] and row["unpriced_calls"] == row["calls"] else usd(row["cost_nano_usd"])


def _scopes(rows: Sequence[dict[str, Any]], total: int, by: str) -> str:
    shown = rows[:TOP_ROWS]
    body = []
    for r in shown:
        share = r["cost_nano_usd"] / total if total else 0.0
        meter = (f'<span class="share"><meter min="0" max="1" value="{share:.4f}" title="{share:.1%} of the total">'
                 f'</meter> {share:.0%}</span>')
        body.append([r["key"], f"{r['sessions']:,}", f"{r['calls']:,}", _cost(r), meter, f"{r['trips']:,}"])
    table = _table([(by, False), ("sessions", True), ("calls", True), ("cost", True), ("share", False),
                    ("trips", True)], body, html_cols=(4,))
    return table + _more(len(rows), len(shown))


def _trips(trips: Sequence[dict[str, Any]]) -> str:
    rows = [[t["session"], t["feature"] or "-", t["user"] or "-", t["reason"], _when(t["at"])] for t in trips[:50]]
    return _table([("session", False), ("feature", False), ("user", False), ("reason", False), ("at", False)],
                  rows) + _more(len(trips), len(rows))


def _sessions(rows: Sequence[dict[str, Any]]) -> str:
    shown = rows[:TOP_ROWS]
    body = [[r["key"], f"{r['calls']:,}", f"{r['input_tokens']:,}", f"{r['output_tokens']:,}", _cost(r),
             f"{r['degraded_calls']:,}", "tripped" if r["trips"] else "",
             ", ".join(f"{name} ×{count}" for name, count in r["outcomes"].items())] for r in shown]
    return _table([("session", False), ("calls", True), ("input tokens", True), ("output tokens", True),
                   ("cost", True), ("degraded", True), ("stopped", False), ("outcomes", False)],
                  body) + _more(len(rows), len(shown))


def _outcomes(features: Sequence[dict[str, Any]], totals: dict[str, Any]) -> str:
    body = []
    for name, count in sorted(totals["outcomes"].items(), key=lambda kv: -kv[1]):
        body.append(["(all features)", name, f"{count:,}", usd(-(-totals["cost_nano_usd"] // count))])
    for r in features:
        for name, count in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
            body.append([r["key"], name, f"{count:,}", usd(-(-r["cost_nano_usd"] // count))])
    return _table([("feature", False), ("outcome", False), ("count", True), ("cost each", True)], body)


def _waste(features: Sequence[dict[str, Any]], totals: dict[str, Any]) -> str:
    def row(key: str, r: dict[str, Any]) -> list[str]:
        rate = r.get("cache_hit_rate")
        return [key, "-" if rate is None else f"{rate:.0%}", usd(r.get("cache_savings_nano_usd", 0)),
                f"{r.get('resent_context_tokens', 0):,}", usd(r.get("resent_context_nano_usd", 0)),
                usd(r.get("retry_nano_usd", 0)), usd(r.get("loop_nano_usd", 0)), usd(r.get("reasoning_nano_usd", 0))]

    body = [row("(all features)", totals)] + [row(r["key"], r) for r in features[:TOP_ROWS * 2]]
    return _table([("feature", False), ("cache hit", True), ("cache saved", True), ("resent tokens", True),
                   ("resent cost", True), ("retries", True), ("loops", True), ("reasoning", True)], body)


def _models(rows: Sequence[dict[str, Any]]) -> str:
    body = [[r["key"], f"{r['calls']:,}", f"{r['input_tokens']:,}", f"{r['cache_read_tokens']:,}",
             f"{r['output_tokens']:,}", _cost(r), f"{r['degraded_calls']:,}"] for r in rows[:TOP_ROWS * 2]]
    return _table([("model", False), ("calls", True), ("input tokens", True), ("cache read", True),
                   ("output tokens", True), ("cost", True), ("degraded", True)], body) + _more(len(rows), len(body))


def _degraded(rows: Sequence[dict[str, Any]]) -> str:
    body = [[r["session"], r["feature"] or "-", r["model"], usd(r["cost_nano_usd"]), _when(r["at"])] for r in rows]
    return _table([("session", False), ("feature", False), ("sent to model", False), ("cost", True),
                   ("at", False)], body)


def _more(total: int, shown: int) -> str:
    if total <= shown:
        return ""
    return f'<p class="note">The dearest {shown:,} of {total:,}; <code>/api/summary</code> lists them all.</p>'


def _chart(series: dict[str, Any], by: str) -> str:
    """Stacked bars of spend per time bucket, one colour per key, as inline SVG (a tooltip per bar)."""
    lines: list[dict[str, Any]] = series[by]
    starts: list[str] = series["starts"]
    n = len(starts)
    totals = [sum(line["cost_nano_usd"][i] for line in lines) for i in range(n)]
    peak = max(totals, default=0)
    if peak <= 0:
        return '<p class="empty">No priced spend in this range.</p>'
    plot_w, plot_h = CHART_W - LEFT - 8, CHART_H - BOTTOM - TOP
    slot = plot_w / n
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{escape(f"spend by {by}")}">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#c3c8d2"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT + plot_w}" y2="{TOP}" stroke="#eceef2"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(usd(peak))}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">$0</text>',
    ]
    for i in range(n):
        y = TOP + plot_h
        x = LEFT + i * slot + (slot - bar) / 2
        for k, line in enumerate(lines):
            value = line["cost_nano_usd"][i]
            if value <= 0:
                continue
            h = value / peak * plot_h
            y -= h
            tip = f"{line['key']}, {_when(starts[i])}: {usd(value)}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                         f'fill="{_colour(k, line["key"])}"><title>{escape(tip)}</title></rect>')
    for i in sorted({0, n // 2, n - 1}):
        x = LEFT + i * slot + slot / 2
        anchor = "start" if i == 0 and n > 1 else ("end" if i == n - 1 and n > 1 else "middle")
        parts.append(f'<text x="{x:.1f}" y="{CHART_H - 8}" text-anchor="{anchor}">{escape(_when(starts[i]))}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12" fill="{_colour(k, line["key"])}"/>'
        f'</svg>{escape(line["key"])} <span class="note">{escape(usd(sum(line["cost_nano_usd"])))}</span></li>'
        for k, line in enumerate(lines)
    )
    step = series["step_seconds"]
    note = f'<p class="note">One bar per {escape(_duration(step))} (UTC).</p>'
    return "".join(parts) + f'<ul class="legend">{legend}</ul>' + note


def _colour(index: int, key: str) -> str:
    return PALETTE[-1] if key == OTHER else PALETTE[index % (len(PALETTE) - 1)]


def _duration(seconds: int) -> str:
    for size, unit in ((30 * 86_400, "30 days"), (7 * 86_400, "week"), (86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"


def _when(iso: str) -> str:
    """``2026-11-23T09:00:00+00:00`` → ``2026-11-23 09:00 UTC``."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso
