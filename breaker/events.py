"""What alert sinks receive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EVENT_KINDS"]

EVENT_KINDS = ("threshold", "degraded", "tripped", "loop", "unknown_price", "ledger_error", "session_end")


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person may want to know about.

    Attributes:
        kind: one of ``threshold``, ``degraded``, ``tripped``, ``loop``,
            ``unknown_price``, ``ledger_error``, ``session_end``.
        scope, key: the budget scope and key concerned (``"session"``,
            ``"ticket-42"``), when there is one.
        session, feature, user: who made the call.
        spent_usd, limit_usd, fraction: the money figures, when they apply.
        message: a sentence for a person. Never contains prompt or completion text.
        at: when (seconds since the epoch).
        data: extra figures (totals at ``session_end``, the loop signal, the model).
    """

    kind: str
    message: str
    scope: str | None = None
    key: str | None = None
    session: str | None = None
    feature: str | None = None
    user: str | None = None
    spent_usd: float | None = None
    limit_usd: float | None = None
    fraction: float | None = None
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "message": self.message,
            "scope": self.scope,
            "key": self.key,
            "session": self.session,
            "feature": self.feature,
            "user": self.user,
            "spent_usd": self.spent_usd,
            "limit_usd": self.limit_usd,
            "fraction": self.fraction,
            "at": self.at,
            "data": self.data,
        }
