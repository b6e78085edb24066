"""Sessions: the in-process registry of session state, and their figures.

One ``State`` per session id holds what the ledger does not: loop-detector
memory, the sticky trip, degrade hints, outcomes. ``with guard.session(id)``
blocks using the same id share it. A closed session's state is forgotten once
it has been idle for ``session_ttl``, so a long-running server does not grow.
Figures (``Session.cost_usd`` …) are read from the ledger, so with a shared
ledger they include other processes' calls.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any, Callable

from ..budgets import USD
from ..errors import Tripped
from ..events import Event
from ..ledgers.base import Counter, Ledger
from ..pricing import NANO
from ..session import Session, State, new_session_id, stopped_streams
from .notify import Notifier
from .plan import Plans, counter_key

__all__ = ["ANONYMOUS", "Sessions"]

log = logging.getLogger("breaker")

ANONYMOUS = "anonymous"
"""The id calls outside any ``guard.session()`` are attributed to."""


class Sessions:
    """The session registry of one guard (the ``SessionHost`` its sessions call)."""

    def __init__(
        self, loops: Any, ledger: Ledger, plans: Plans, notifier: Notifier, clock: Callable[[], float],
        session_ttl: int, name: str,
    ) -> None:
        self.loops = loops
        self.ledger = ledger
        self.plans = plans
        self.notifier = notifier
        self.clock = clock
        self.session_ttl = session_ttl
        self.current: ContextVar[Session | None] = ContextVar(f"breaker_session_{name}", default=None)
        self._lock = threading.Lock()
        self._states: OrderedDict[str, State] = OrderedDict()
        self._anonymous: Session | None = None

    def now(self) -> Session:
        """The session calls are attributed to right now (the anonymous one outside any)."""
        return self.current.get() or self.anonymous()

    def anonymous(self) -> Session:
        session = self._anonymous
        if session is None:
            session = Session(
                self, ANONYMOUS, feature=None, user=None, tags={}, parent=None, state=self.state_for(ANONYMOUS)
            )
            session.anonymous = True
            self._anonymous = session
            log.warning(
                "breaker: a model call was made outside any guard.session(): such calls share one anonymous "
                "scope, where per-session budgets roll over %ds (session_ttl) and loop detection does not run. "
                "Wrap each agent run in guard.session(...) to attribute and stop it. (Logged once.)",
                self.session_ttl,
            )
        return session

    def state_for(self, session_id: str) -> State:
        with self._lock:
            state = self._states.get(session_id)
            now = self.clock()
            if state is None:
                state = self._states[session_id] = State(
                    session_id, self.loops.new_state() if self.loops is not None else None, now
                )
                if len(self._states) & 255 == 0:
                    self._sweep(now)
            else:
                self._states.move_to_end(session_id)
            state.touched = now
            return state

    def sweep(self, now: float) -> None:
        """Forget closed sessions idle past ``session_ttl``."""
        with self._lock:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        horizon = now - self.session_ttl
        idle = [sid for sid, st in self._states.items() if st.open == 0 and st.touched < horizon and sid != ANONYMOUS]
        for sid in idle:
            del self._states[sid]
        if idle:
            self._states = OrderedDict(self._states)  # give the emptied table back

    # ------------------------------------------------------------------ SessionHost
    def open(
        self, session_id: str | None, feature: str | None, user: str | None, tags: dict[str, str] | None
    ) -> Session:
        parent = self.current.get()
        sid = session_id or new_session_id()
        if parent is not None:
            feature = feature if feature is not None else parent.feature
            user = user if user is not None else parent.user
            tags = {**parent.tags, **(tags or {})}
        state = self.state_for(sid)
        with state.lock:
            state.open += 1
        return Session(self, sid, feature=feature, user=user, tags=tags or {}, parent=parent, state=state)

    def close(self, session: Session, exc: BaseException | None) -> None:
        for stream in stopped_streams(session, enclosing=False):  # read here, unfinished: billed what arrived
            stream.stop()
        state = session.state
        with state.lock:
            state.open -= 1
            state.touched = self.clock()
        try:
            usd, tokens, calls = self.totals(session)
        except Exception as e:  # the ledger being down must not hide the agent's own outcome
            log.warning("could not read session totals at session end: %s", e)
            return
        trip = state.tripped if state.tripped is not None else (exc if isinstance(exc, Tripped) else None)
        message = (
            f"Session {session.id!r} ended: {calls} calls, {tokens:,} tokens, ${usd / NANO:,.4f}"
            + (f"; stopped: {trip.reason}" if trip is not None else "")
            + (f"; outcome {state.outcomes[-1]!r}" if state.outcomes else "")
        )
        self.notifier.emit(
            Event(
                "session_end", message, scope="session", key=session.id, session=session.id,
                feature=session.feature, user=session.user, spent_usd=usd / NANO,
                data={
                    "calls": calls, "tokens": tokens, "cost_usd": usd / NANO,
                    "unpriced_calls": state.unpriced, "outcomes": list(state.outcomes),
                    "tripped": trip.reason if trip is not None else None,
                },
            )
        )

    def totals(self, session: Session) -> tuple[int, int, int]:
        return self.ledger.read([Counter(counter_key("session", session.id))], self.clock())[0].settled

    def remaining_usd(self, session: Session) -> float | None:
        plan = self.plans.of(session)
        lines = [l for l in plan.hard_lines if l.metric == USD]
        if not lines:
            return None
        totals = self.ledger.read(plan.counters, self.clock())
        left = min(l.limit - totals[l.counter].settled[USD] - totals[l.counter].reserved[USD] for l in lines)
        return max(left, 0) / NANO

    def add_outcome(self, session: Session, name: str) -> None:
        self.ledger.add_outcome(session.id, session.feature, session.user, name, self.clock())
