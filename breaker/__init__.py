"""agent-cost-breaker: budgets, loop detection and kills for LLM agents.

The public surface is what this module exports; everything else is internal.
"""

from __future__ import annotations

from . import alerts, ledgers
from .budgets import Budget
from .call import Call, Patch, Ticket
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
from .scope import Session
from .usage import Usage

__all__ = [
    "Breaker",
    "Budget",
    "BudgetExceeded",
    "Call",
    "ConfigError",
    "Degrade",
    "Event",
    "LedgerError",
    "LoopDetected",
    "LoopPolicy",
    "Patch",
    "Session",
    "SessionKilled",
    "Spend",
    "Ticket",
    "Tripped",
    "UnknownPrice",
    "Usage",
    "UsageError",
    "alerts",
    "ledgers",
    "retry",
    "testing",
]

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: retry pulls tenacity, testing pulls the fake server
    if name == "retry":
        from . import retry

        return retry
    if name == "testing":
        from . import testing

        return testing
    raise AttributeError(f"module 'breaker' has no attribute {name!r}")
