"""State stores with the same atomic semantics: ``Memory`` (default), ``SQLite``, ``Redis``.

How a shared store's failures are handled (outages, misconfiguration, data it cannot hold, lost
data, reservations of long calls, forks) is told in ``ledgers.base`` and ``ledgers.resilient``.
"""

from __future__ import annotations

from typing import Any

from .base import (Ask, CallRecord, Counter, Grant, GrantRecord, Ledger, LedgerBase, LedgerDataError,
                   LedgerMisconfigured, LedgerUnavailable, Limit, Totals, TripMark)
from .memory import Memory

__all__ = [
    "Ask", "CallRecord", "Counter", "Grant", "GrantRecord", "Ledger", "LedgerBase", "LedgerDataError",
    "LedgerMisconfigured", "LedgerUnavailable", "Limit", "Memory", "Redis", "SQLite", "Totals", "TripMark",
]


def __getattr__(name: str) -> Any:
    # SQLite and Redis load lazily: the redis client is an optional extra.
    if name == "SQLite":
        from .sqlite import SQLite

        return SQLite
    if name == "Redis":
        from .redis import Redis

        return Redis
    raise AttributeError(name)
