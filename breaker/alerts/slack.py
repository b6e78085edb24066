"""Render an ``Event`` as a Slack incoming-webhook message.

Why a module of its own: the webhook sink delivers bytes; what a person reads
in a channel is a separate concern, easy to test without any HTTP. The
``text`` field alone must read well (it is what notifications and clients
without blocks show); ``blocks`` add a headline and the attribution.
"""

from __future__ import annotations

from typing import Any

from ..events import Event

__all__ = ["slack_message"]

_TITLES = {
    "threshold": (":warning:", "Budget threshold reached"),
    "degraded": (":arrow_down:", "Calls degraded"),
    "tripped": (":octagonal_sign:", "Agent stopped"),
    "loop": (":repeat:", "Runaway loop detected"),
    "unknown_price": (":grey_question:", "Model without a price"),
    "ledger_error": (":rotating_light:", "Budget ledger unreachable"),
    "session_end": (":white_check_mark:", "Session ended"),
}


def slack_message(event: Event) -> dict[str, Any]:
    """A Slack payload: readable ``text`` plus ``blocks`` (headline, message, who, money)."""
    emoji, title = _TITLES.get(event.kind, (":information_source:", event.kind))
    message = _escape(event.message)
    context = _context(event)
    text = f"{emoji} *{title}*: {message}"
    if context:
        text += "\n" + " · ".join(context)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{title}*\n{message}"}},
    ]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": c} for c in context[:10]]})
    return {"text": text, "blocks": blocks}


def _context(event: Event) -> list[str]:
    out = []
    for label, value in (("session", event.session), ("feature", event.feature), ("user", event.user)):
        if value is not None:
            out.append(f"{label} `{_escape(value)}`")
    if event.spent_usd is not None and event.limit_usd is not None:
        share = f" ({event.fraction:.0%})" if event.fraction is not None else ""
        out.append(f"spent ${event.spent_usd:,.4f} of ${event.limit_usd:,.2f}{share}")
    elif event.spent_usd is not None:
        out.append(f"spent ${event.spent_usd:,.4f}")
    elif event.fraction is not None:
        out.append(f"{event.fraction:.0%} of the budget")
    return out


def _escape(text: str) -> str:
    """Slack's three control characters (a message must not turn into a mention or a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
