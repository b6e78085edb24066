"""Stops: what happens when a limit is reached or a loop is found.

A budget that cannot pay for the next call trips its scope (``BudgetExceeded``,
sticky for a lifetime session budget, lifted by a rolling window as it frees);
a loop detector whose action is kill trips the session (``LoopDetected``); a
budget past ``degrade_at`` or a loop whose action is degrade marks the session
degraded. Each writes its message with the real figures, sets the ledger's trip
marker where other processes must see it, keeps the refused call in the
ledger's history, and emits its event once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..budgets import METRICS, USD, format_amount, format_seconds
from ..errors import BudgetExceeded, LoopDetected, Tripped
from ..ledgers.base import Ledger
from ..pricing import NANO
from .notify import Notifier
from .records import call_record

if TYPE_CHECKING:
    from ..adapter import Call
    from ..loops import Detection
    from ..session import Session
    from .plan import Line, Plans

__all__ = ["Stops", "edge", "raise_if_tripped"]

_ZERO = (0, 0, 0)


def edge(metric: int, amount: int) -> float:
    """An integer amount as shown at the edges (USD for money)."""
    return amount / NANO if metric == USD else float(amount)


class Stops:
    """Trips and degrade marks, with their messages, markers and events."""

    __slots__ = ("ledger", "plans", "notifier", "degrading")

    def __init__(self, ledger: Ledger, plans: Plans, notifier: Notifier, degrading: bool) -> None:
        self.ledger = ledger
        self.plans = plans
        self.notifier = notifier
        self.degrading = degrading  # a Degrade is configured: marking a session degraded means something

    def budget(
        self, line: Line, settled: int, needed: int, session: Session, model: str, already: bool, now: float,
        why: str = "",
    ) -> BudgetExceeded:
        """The trip of ``line``'s scope; marks it (once) unless ``already`` tripped.

        ``why`` says what the refused call needs at least, and which bound decided.
        """
        counter = self.plans.of(session).counters[line.counter]
        window = line.window
        spent = format_amount(line.metric, settled)
        if already:
            message = (
                f"{line.who()} is stopped: its budget of {line.budget.describe()} has run out "
                f"({spent} spent). The call to {model} was refused before it was sent."
            )
        else:
            left = format_amount(line.metric, max(line.limit - settled, 0))
            message = (
                f"{line.who()} was stopped: its budget of {line.budget.describe()} cannot pay for the next "
                f"call ({spent} spent, {left} left; the call to {model} needs at least "
                f"{format_amount(line.metric, needed)}{why})."
            )
        message += (
            f" Calls resume once the {format_seconds(window)} window frees enough."
            if window else " Every later call in this scope is refused; raise the budget or start a new scope."
        )
        trip = BudgetExceeded(
            message, scope=line.per, key=line.key, reason="budget", metric=METRICS[line.metric],
            spent=edge(line.metric, settled), limit=edge(line.metric, line.limit), session=session.id,
        )
        if not already:
            self.ledger.trip(counter, line.metric, needed, now)
            if not window and line.per == "session" and line.key == session.id:
                session.state.tripped = trip
            if self.notifier.once(("trip", counter.key, window, line.metric, int(now // window) if window else 0)):
                event = self.notifier.budget_event("tripped", message, session, line, settled)
                event.data["reason"] = trip.reason  # like loop trips: sinks and telemetry read the reason here
                self.notifier.emit(event)
        return trip

    def loop(self, found: Detection, session: Session, call: Call | None, now: float) -> None:
        """Act on a loop detection: emit ``loop``; kill (raise the trip) or mark degraded."""
        state = session.state
        notifier = self.notifier
        action = found.action
        message = f"Session {session.id!r}: {found.message}"
        notifier.emit(notifier.event("loop", message, session, scope="session", key=session.id,
                                     data={"signal": found.signal, "action": action, "count": found.count,
                                           "limit": found.limit, "model": call.model if call else None}))
        if action == "kill":
            trip = LoopDetected(
                f"Session {session.id!r} was stopped by loop detection: {found.message}. Every later call "
                f"in this session is refused before it is sent; start a new session once the agent is fixed.",
                scope="session", key=session.id, reason=f"loop:{found.signal}", metric="calls",
                spent=float(found.count), limit=float(found.limit), session=session.id,
            )
            state.tripped = trip
            notifier.emit(notifier.event("tripped", trip.message, session, scope="session", key=session.id,
                                         data={"reason": trip.reason}))
            if call is not None:
                self.refused(session, call.model, call.provider, trip, now)
            raise trip
        if action == "degrade" and not state.loop_degrade:
            state.loop_degrade = True
            if self.degrading:
                notifier.emit(notifier.event("degraded", f"{message}; later calls are degraded", session,
                                             scope="session", key=session.id,
                                             data={"reason": f"loop:{found.signal}"}))

    def degraded(self, session: Session, why: str) -> None:
        """Mark the session degraded (its next calls are degraded until the budget frees)."""
        state = session.state
        if not state.degrade_hint:
            state.degrade_hint = True
            self.notifier.emit(self.notifier.event("degraded", f"Session {session.id!r} is now degraded: {why}",
                                                   session, scope="session", key=session.id, data={"reason": why}))

    def refused(self, session: Session, model: str, provider: str | None, trip: Tripped, now: float) -> None:
        """Keep the call that tripped a scope in the ledger's history (nothing spent), so
        reports show trips. Only ledgers that keep records; only the first refusal."""
        if not self.ledger.wants_records:
            return
        record = call_record(session, model, provider, None, 0, now, "refused", False)
        record.tripped = trip.reason
        self.ledger.settle(None, self.plans.of(session).counters, (), _ZERO, now, record)


def raise_if_tripped(session: Session) -> None:
    """Refuse at once when the session or a parent is tripped (sticky)."""
    if session.state.tripped is not None:
        raise session.state.tripped.again()
    for parent in session.ancestors:
        if parent.state.tripped is not None:
            raise parent.state.tripped.again()
