"""Every exception the library raises, in one place.

The kill is a ``BaseException`` on purpose: agent code wraps model calls in
``except Exception`` and in retry decorators that retry any ``Exception``; a
kill they can catch is a kill that gets retried. ``Tripped`` passes through
them like ``asyncio.CancelledError`` does, and the session boundary turns it
into an ordinary ``SessionKilled`` for the code outside the agent.
"""

from __future__ import annotations

__all__ = [
    "BreakerError",
    "BudgetExceeded",
    "ConfigError",
    "LedgerError",
    "LoopDetected",
    "SessionKilled",
    "Tripped",
    "UnknownPrice",
    "UsageError",
]


class BreakerError(Exception):
    """Base of the library's ordinary (catchable) errors."""


class ConfigError(BreakerError, ValueError):
    """Bad configuration, raised at construction with a message that says how to fix it."""


class UsageError(BreakerError, ValueError):
    """A provider (or a caller of ``record``) reported usage that cannot be right."""


class UnknownPrice(BreakerError, LookupError):
    """A model with no known price, raised before the request is sent."""

    def __init__(self, model: str, provider: str | None = None, why: str | None = None) -> None:
        self.model = model
        self.provider = provider
        self.why = why
        where = f" (provider {provider!r})" if provider else ""
        because = f" ({why})" if why else ""
        super().__init__(
            f"No price is known for model {model!r}{where}{because}, so its cost cannot be "
            f"enforced and the call was not sent. Add a price: "
            f"Breaker(prices={{{model!r}: {{'input': 3.0, 'output': 12.0}}}}) "
            f"(USD per million tokens; optional 'cache_read', 'cache_write'), or pass "
            f"unknown_price='warn' to send it and enforce only token and call budgets."
        )


class LedgerError(BreakerError):
    """The ledger (SQLite, Redis) could not be read or written."""


class Tripped(BaseException):
    """The hard kill: a budget or a loop detector stopped the run.

    Carries who was stopped (``scope``, ``key``), why (``reason``) and the money
    figures (``spent_usd``, ``limit_usd``; ``None`` for token and call budgets,
    whose figures are in ``spent`` and ``limit`` with ``metric``).
    """

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        key: str | None,
        reason: str,
        metric: str = "usd",
        spent: float | None = None,
        limit: float | None = None,
        session: str | None = None,
        sticky: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.scope = scope
        self.key = key
        self.reason = reason
        self.metric = metric
        self.spent = spent
        self.limit = limit
        self.session = session
        self.sticky = sticky

    @property
    def spent_usd(self) -> float | None:
        return self.spent if self.metric == "usd" else None

    @property
    def limit_usd(self) -> float | None:
        return self.limit if self.metric == "usd" else None

    def __str__(self) -> str:
        return self.message

    def again(self) -> Tripped:
        """A fresh copy of this trip, to raise once more (a sticky trip refuses every later
        call; re-raising one instance would grow its traceback forever)."""
        return type(self)(
            self.message, scope=self.scope, key=self.key, reason=self.reason, metric=self.metric,
            spent=self.spent, limit=self.limit, session=self.session, sticky=self.sticky,
        )


class BudgetExceeded(Tripped):
    """A budget cannot pay for the next call (or a stream ran past its reservation)."""


class LoopDetected(Tripped):
    """A runaway-loop detector stopped the session."""


class SessionKilled(RuntimeError):
    """What a session boundary raises, ``from`` the ``Tripped`` inside it.

    An ordinary exception, so web handlers and callers outside the agent deal
    with it like any other failure.
    """

    def __init__(self, tripped: Tripped) -> None:
        super().__init__(tripped.message)
        self.tripped = tripped
        self.scope = tripped.scope
        self.key = tripped.key
        self.reason = tripped.reason
        self.spent_usd = tripped.spent_usd
        self.limit_usd = tripped.limit_usd
