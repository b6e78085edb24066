"""agent-cost-breaker: budgets, loop detection and kills for LLM agents.

The public surface is what this module exports: the user API. Adapters and
plugins also use ``breaker.adapter`` (``Call``, ``Ticket``, ``Patch`` ...);
everything else is internal.
"""

from __future__ import annotations

from . import alerts, ledgers
from .budgets import Budget
from .degrade import Degrade
from .engine import Breaker, Spend
from .errors import (
    BudgetExceeded,
    ConfigError,
    LedgerError,
    LoopDetected,
    SessionKilled,
    Tripped,
    UnknownPrice,
    UsageError,
)
from .events import Event
from .loops import LoopPolicy
from .session import Session
from .usage import Usage
from .version import __version__

__all__ = [
    "Breaker",
    "Budget",
    "BudgetExceeded",
    "ConfigError",
    "Degrade",
    "Event",
    "LedgerError",
    "LoopDetected",
    "LoopPolicy",
    "Session",
    "SessionKilled",
    "Spend",
    "Tripped",
    "UnknownPrice",
    "Usage",
    "UsageError",
    "alerts",
    "ledgers",
    "retry",
    "testing",
]



def __getattr__(name: str):  # lazy: retry pulls tenacity, testing pulls the fake server
    if name == "retry":
        from . import retry

        return retry
    if name == "testing":
        from . import testing

        return testing
    raise AttributeError(f"module 'breaker' has no attribute {name!r}")
