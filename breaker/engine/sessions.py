"""Sessions: the in-process registry of session state, and their figures.

One ``State`` per session id holds what the ledger does not: loop-detector
memory, the sticky trip, degrade hints, outcomes. ``with guard.session(id)``
blocks using the same id share it. A closed session's state is forgotten once
it has been idle for ``session_ttl``, so a long-running server does not grow.

Why forgetting costs O(1) a session: the states are kept in the order they
were last used (opened or closed: each moves its state to the end, stamped with
the guard's clock), so the idle ones are at the front. Each new session looks
at a few states from the front (``_SWEEP_STEP``) and stops at the first one
used within ``session_ttl``, under the registry lock for a few dict operations,
never a scan of every session; a state still open there is moved to the back.
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

_SWEEP_STEP = 4
"""States looked at from the front for each new session: more than one, so that forgetting keeps
ahead of a burst of new sessions, and a handful, so that a new session never waits for a scan."""


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

    def state_for(self, session_id: str, opening: int = 0) -> State:
        """The state of ``session_id`` (made on first use), stamped with the guard's clock and moved
        to the end; ``opening=1`` counts a ``with`` block entering it (under the same lock as the
        sweep, which never forgets an open state)."""
        with self._lock:
            states = self._states
            state = states.get(session_id)
            now = self.clock()
            if state is None:
                state = states[session_id] = State(
                    session_id, self.loops.new_state() if self.loops is not None else None, now
                )
                self._expire(now, _SWEEP_STEP)
            else:
                states.move_to_end(session_id)
                state.touched = now
            state.open += opening
            return state

    def sweep(self, now: float) -> None:
        """Forget closed sessions idle past ``session_ttl`` (all of them: those at the front, up to
        the first used since, with the open ones moved out of the way)."""
        with self._lock:
            states = self._states
            before = len(states)
            self._expire(now, before)
            if before > 1024 and len(states) < before // 2:
                self._states = OrderedDict(states)  # give the emptied table back

    def _expire(self, now: float, step: int) -> None:
        """Look at up to ``step`` states from the front (the least recently used): forget the idle
        ones, move the open ones (and the anonymous scope's) to the back, stop at the first one used
        within ``session_ttl``: every state after it was used later."""
        states = self._states
        horizon = now - self.session_ttl
        for _ in range(step):
            if not states:
                return
            sid = next(iter(states))
            state = states[sid]
            if state.open or sid == ANONYMOUS:
                states.move_to_end(sid)
            elif state.touched < horizon:
                del states[sid]
            else:
                return

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
        state = self.state_for(sid, opening=1)
        return Session(self, sid, feature=feature, user=user, tags=tags or {}, parent=parent, state=state)

    def close(self, session: Session, exc: BaseException | None) -> None:
        for stream in stopped_streams(session, enclosing=False):  # read here, unfinished: billed what arrived
            stream.stop()
        state = session.state
        with self._lock:  # stamped and moved last: the registry stays in last-used order
            state.open -= 1
            state.touched = self.clock()
            if self._states.get(session.id) is state:
                self._states.move_to_end(session.id)
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
        # as a reservation counts it: settled less an operator's grants, plus what calls in flight hold
        left = min(l.limit - (totals[l.counter].settled[USD] - totals[l.counter].granted[USD])
                   - totals[l.counter].reserved[USD] for l in lines)
        return max(left, 0) / NANO

    def add_outcome(self, session: Session, name: str) -> None:
        self.ledger.add_outcome(session.id, session.feature, session.user, name, self.clock())
