"""Stops: what happens when a limit is reached or a loop is found.

A budget that cannot pay for the next call trips its scope (``BudgetExceeded``,
sticky for a lifetime budget, lifted by a rolling window as it frees, ended with its
calendar period, or lifted by an operator's grant: ``Stops.grant``);
a loop detector whose action is kill trips the session (``LoopDetected``); a
budget past ``degrade_at`` or a loop whose action is degrade marks the session
degraded. Each writes its message with the real figures, sets the ledger's trip
marker where other processes must see it, keeps the refused call in the
ledger's history, and emits its event once.

**Grants.** ``Breaker.grant`` (and ``breaker grant`` from a shell) adds headroom to one
scope on the ledger and lifts its trip markers there (``ledgers.base``), so every process
sharing the ledger sees it at its next call. A lifetime session trip is also kept in the
process (``State.tripped``: refused without asking the ledger); a refused call asks the
ledger whether that trip still stands, and a trip the ledger no longer holds is lifted
(``raise_if_tripped``). Loop trips are the process's own verdict on the agent and are not
lifted by a grant.
"""

from __future__ import annotations

import getpass
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from ..budgets import METRICS, USD, format_amount, format_seconds, grant_amount, normalize_per
from ..errors import BudgetExceeded, ConfigError, LedgerError, LoopDetected, Tripped
from ..ledgers.base import Counter, GrantRecord, Ledger, LedgerUnavailable
from ..pricing import NANO
from .notify import Notifier
from .plan import counter_key
from .records import call_record

if TYPE_CHECKING:
    from ..adapter import Call
    from ..loops import Detection
    from ..session import Session
    from .plan import Line, Plans

__all__ = ["Stops", "edge", "grant", "operator", "raise_if_tripped"]

log = logging.getLogger("breaker")

_ZERO = (0, 0, 0)


def operator() -> str:
    """Who grants, for the grant's record: the login name (``getpass.getuser``), or ``"unknown"``."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no USER/LOGNAME and no passwd entry (a bare container)
        return "unknown"


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
        counter = line.scope  # the counter the refusal was about (this period's, for a period budget)
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
        if window:
            message += f" Calls resume once the {format_seconds(window)} window frees enough."
        elif line.until:
            tz = line.budget.zone
            message += (f" Every later call in this scope is refused until its {line.budget.period} ends, at "
                        f"{datetime.fromtimestamp(line.until, tz):%Y-%m-%d %H:%M} {line.budget.tz}, or an operator "
                        f"grants more (Breaker.grant, `breaker grant`).")
        else:
            message += (" Every later call in this scope is refused; raise the budget, start a new scope, or have "
                        "an operator grant more (Breaker.grant, `breaker grant`).")
        trip = BudgetExceeded(
            message, scope=line.per, key=line.key, reason="budget", metric=METRICS[line.metric],
            spent=edge(line.metric, settled), limit=edge(line.metric, line.limit), session=session.id,
        )
        if not already:
            self.ledger.trip(counter, line.metric, needed, now)
            if not window and not line.until and line.per == "session" and line.key == session.id:
                session.state.tripped = trip
            if self.notifier.once(("trip", counter.key, window, line.metric, int(now // window) if window else 0)):
                event = self.notifier.budget_event("tripped", message, session, line, settled)
                event.data["reason"] = trip.reason  # like loop trips: sinks and telemetry read the reason here
                self.notifier.emit(event)
        return trip

    def grant(
        self, usd: Any, tokens: Any, calls: Any, *, per: str, key: str | None, by: str | None, now: float,
        state_of: Callable[[str], Any] | None = None,
    ) -> GrantRecord:
        """``Breaker.grant``: ``grant`` on this guard's ledger, and a granted session's own trip in this
        process (``state_of(session_id)`` gives its state) lifted at once: other processes lift
        theirs at their next call."""
        record = grant(self.ledger, usd, tokens, calls, per=per, key=key, by=by, now=now)
        if per == "session" and state_of is not None:
            state = state_of(key)  # type: ignore[arg-type]
            trip = state.tripped
            if trip is not None and _lifted(self.ledger, trip, now):
                with state.lock:
                    if state.tripped is trip:
                        state.tripped = None
        return record

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


def grant(
    ledger: Any, usd: Any = None, tokens: Any = None, calls: Any = None, *, per: str = "session",
    key: str | None = None, by: str | None = None, now: float,
) -> GrantRecord:
    """An operator's grant on ``ledger`` (``Breaker.grant``, ``breaker grant``): the arguments checked,
    the headroom and the lifted trips written (``ledgers.base``), the grant logged and returned."""
    amount = grant_amount(usd, tokens, calls)
    try:
        per = normalize_per(per)
    except ConfigError as e:  # said of a Budget: said here of the grant
        raise ConfigError(str(e).replace("Budget(", "grant(", 1)) from None
    if per == "global":
        if key is not None:
            raise ConfigError("grant(per='global') takes no key: there is only one global scope")
    elif not isinstance(key, str) or not key:
        raise ConfigError(f"grant(per={per!r}) needs key=..., the {per} to grant to, e.g. key='ticket-42'")
    if by is not None and (not isinstance(by, str) or not by.strip()):
        raise ConfigError(f"grant(by={by!r}) must name who grants, e.g. by='alice'")
    write = getattr(ledger, "grant", None)
    if write is None:
        raise ConfigError(f"the ledger {ledger!r} keeps no operator grants; use ledgers.Memory, SQLite or Redis")
    scope = counter_key(per, key)
    try:
        record: GrantRecord = write(scope, amount, now, by or operator())
    except LedgerUnavailable as e:  # an operator must know the headroom does not exist
        raise LedgerUnavailable(f"The grant to {scope} was not recorded: {e}", maybe_applied=e.maybe_applied,
                                state=e.state) from e
    log.warning("breaker: %s granted %s to %s (%d counters; %d trip markers lifted)", record.by,
                ", ".join(format_amount(m, a) for m, a in enumerate(amount) if a), record.scope,
                record.counters, record.lifted)
    return record


def raise_if_tripped(session: Session) -> None:
    """Refuse at once when the session or a parent is tripped (sticky), unless an operator's
    grant has lifted that trip on the ledger since (see the module docstring)."""
    for s in (session, *session.ancestors):
        state = s.state
        trip = state.tripped
        if trip is None:
            continue
        host = s.host
        ledger = getattr(host, "ledger", None)  # the engine's registry (``Sessions``) holds the guard's ledger
        if ledger is None or not _lifted(ledger, trip, getattr(host, "clock", time.time)()):
            raise trip.again()
        with state.lock:
            if state.tripped is trip:
                state.tripped = None


def _lifted(ledger: Any, trip: Tripped, now: float) -> bool:
    """Whether the ledger no longer holds ``trip``, a session's lifetime budget trip (a grant lifted it).

    Anything else (a loop trip, a ledger that cannot say, or cannot be read now) stands.
    """
    if trip.reason != "budget" or trip.scope != "session" or trip.key is None or trip.metric not in METRICS:
        return False
    trips = getattr(ledger, "trips", None)
    if trips is None:
        return False
    metric = METRICS.index(trip.metric)
    try:
        marks = trips(now, [Counter(counter_key("session", trip.key))])
    except (LedgerError, OSError, NotImplementedError):  # cannot be read now, or cannot say: the trip stands
        return False
    return not any(mark.metric == metric for mark in marks)
