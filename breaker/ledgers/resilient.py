"""What happens when a shared ledger (SQLite, Redis) fails: nothing lost, nothing counted twice.

``Resilient`` wraps a persistent ledger. The engine wraps ``SQLite`` and
``Redis`` in it by itself (``Breaker(on_ledger_error=...)``); build one
yourself only to choose where the journal lives::

    ledger = Resilient(Redis("redis://cache:6379/0"), journal="/var/lib/app/breaker-journal.sqlite")

Every failure of the store is one of three kinds (``ledgers.base``):

**Unavailable** (unreachable, timing out, out of memory, locked, corrupt,
lost its data, or an error nobody classified): an outage.

* ``on_ledger_error="closed"`` (default): ``reserve`` raises
  ``LedgerUnavailable``; the engine refuses the call with a non-sticky
  ``BudgetExceeded(reason="ledger_unavailable")``. No money is spent that the
  shared budget could not see.
* ``"open"``: calls go through; each process enforces the budgets against its
  own spend since the outage began (a local ``Memory``), so one process cannot
  spend more than one whole budget while the store is away, but N processes
  can spend N budgets. Choose it when stopping the agents costs more.

One ``ledger_error`` event fires per outage, not per call.

**Misconfigured** (a wrong password, an eviction policy that can delete
budget keys, a cluster node reached as a plain server): never an outage, in
either mode. The call is refused with the error, which says what to change;
one ``ledger_error`` event fires per distinct error.

**Data error** (text that is not valid Unicode in a scope key, an amount past
the store's range): the call is refused before it is sent.

**A settlement is never lost, whatever the store says.** Every settlement
(and trip marker, outcome, and release of a reservation whose answer was
lost) that the store does not acknowledge, for any reason, goes to a local
append-only journal (``ledgers.journal``) and is replayed when the store
takes it; ``settle`` itself never raises, so a served response always reaches
its caller. Each write carries an idempotency id that the store remembers, so
a replay -- or two processes replaying the same journal, or a write that did
land although its answer was lost -- counts it exactly once. Replays run in a
background thread, in batches, never inside a user's call; reads wait for a
running replay, so a figure shown after an outage includes it.

While a replay runs, admissions do not see the journaled spend yet. In closed
mode that spend belongs to calls whose reservations still hold it (until
their ``hold_ttl``); in open mode it is the outage's spend, which the store
learns of only as the replay proceeds.

Reads (``Breaker.spent``, ``Session.cost_usd``) raise while the store is
down: a figure the library cannot know is never shown as $0.

Reservations of calls in flight are renewed while the call lives
(``ledgers.renewal``), so a call longer than ``hold_ttl`` keeps its hold.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import LedgerError
from ..events import Event
from ..forks import after_fork
from ..redact import scrub
from .base import (Ask, CallRecord, Counter, Grant, GrantRecord, Hold, LedgerDataError, LedgerMisconfigured,
                   LedgerUnavailable, Limit, Totals, TripMark, Vec, new_id)
from .journal import Journal, default_journal
from .memory import Memory
from .renewal import Renewer

# Hold, LedgerUnavailable and new_id live in ``ledgers.base`` (the ledgers share them); still importable from here.
__all__ = ["Hold", "LedgerUnavailable", "Resilient", "default_journal", "new_id", "resilient"]

log = logging.getLogger("breaker")

_BATCH = 200  # journal entries replayed per batch (one disk sync to forget them)
_READ_WAITS_FOR_REPLAY = 60.0  # seconds a read waits at most for a running replay
# Outages in which the store may still answer reads: a read that works does not end them, a write must.
_WRITES_REFUSED = ("out of memory", "read-only", "corrupt")


@dataclass(frozen=True, slots=True)
class _Local:
    """A reservation granted by the local fallback ledger while the store was down (open mode)."""

    handle: Any


class Resilient:
    """A persistent ledger that survives its store failing (see the module docstring).

    Args:
        ledger: a ``SQLite`` or ``Redis`` ledger.
        mode: ``"closed"`` (refuse calls while down) or ``"open"`` (allow, enforce locally, alert).
        journal: path of the local journal file (default: see ``default_journal``).
        on_event: receives the ``ledger_error`` events (the engine passes its alert dispatcher).
        retry_every: while down, seconds between attempts to reach the store
            (calls in between fail fast instead of each waiting for a timeout).
        clock: the engine's clock (``Breaker`` passes its own), for renewing reservations.
    """

    def __init__(
        self,
        ledger: Any,
        *,
        mode: str = "closed",
        journal: str | os.PathLike[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        retry_every: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("closed", "open"):
            raise ValueError(f"mode={mode!r}: use 'closed' or 'open'")
        self.inner = ledger
        self.mode = mode
        self.on_event = on_event
        self.retry_every = float(retry_every)
        store_id = getattr(ledger, "store_id", repr(ledger))
        self.where = scrub(str(getattr(ledger, "store_id", ledger)))  # as shown in messages: no credentials
        self.journal = Journal(Path(journal) if journal is not None else default_journal(store_id))
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._replayer: threading.Thread | None = None
        self._next_kick = 0.0
        self._down = False
        self._state = "unreachable"
        self._error = ""
        self._next_probe = 0.0
        self._pending = self.journal.exists()  # left by an earlier process: replayed before the first read
        self._local = Memory()
        self._reported: set[str] = set()  # misconfigurations and poisoned entries already logged
        self.outages = 0
        self._renewer = Renewer(ledger, clock) if callable(getattr(ledger, "renew", None)) else None
        self._default_ttl = float(getattr(ledger, "hold_ttl", 600.0))
        after_fork(self)

    def __repr__(self) -> str:
        return f"Resilient({self.inner!r}, mode={self.mode!r})"

    def _after_fork(self) -> None:
        """In a forked child: locks a parent thread may have held, and no replay thread (it was the parent's)."""
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._replayer = None
        self._next_kick = 0.0

    @property
    def clock(self) -> Callable[[], float]:
        return self._renewer.clock if self._renewer is not None else time.time

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        if self._renewer is not None:
            self._renewer.clock = clock

    @property
    def blocking(self) -> bool:
        """The wrapped store's answer (a store behind I/O: True)."""
        return bool(getattr(self.inner, "blocking", True))

    @property
    def wants_records(self) -> bool:
        return bool(getattr(self.inner, "wants_records", False))

    @property
    def down(self) -> bool:
        """Whether the store is currently considered unavailable."""
        return self._down

    # ------------------------------------------------------------------ health
    def _usable(self) -> bool:
        """Whether to try the store now (always when up; once per ``retry_every`` when down)."""
        if not self._down:
            if self._pending:
                self._kick()
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + self.retry_every  # this caller probes; the others fail fast
            return True

    def _failed(self, error: LedgerUnavailable) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._state = error.state
            self._error = scrub(str(error))
            self._next_probe = time.monotonic() + self.retry_every
            if first:
                self.outages += 1
        if first:
            what = ("calls are refused until it answers again (on_ledger_error='closed')" if self.mode == "closed"
                    else "calls are allowed, each process enforcing budgets on its own spend since the outage "
                         "(on_ledger_error='open')")
            message = (f"The budget store {self.where!r} is {error.state}: {self._error.rstrip('.')}. "
                       f"{what.capitalize()}; settlements are journaled in {str(self.journal.path)!r} and "
                       f"replayed exactly once when it returns.")
            log.warning(message)
            self._emit(message, {"mode": self.mode, "kind": "unavailable", "state": error.state,
                                 "error": self._error, "journal": str(self.journal.path)})

    def _misconfigured(self, error: LedgerMisconfigured) -> None:
        """Log and announce a misconfiguration once per distinct error (each call still raises it)."""
        message = scrub(str(error))
        if message in self._reported:
            return
        self._reported.add(message)
        log.error("breaker: %s", message)
        self._emit(message, {"mode": self.mode, "kind": "misconfigured", "error": message})

    def _emit(self, message: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(Event("ledger_error", message, data=data))
            except Exception:  # pragma: no cover - a failing sink must not break the call
                log.exception("alert sink failed on a ledger_error event")

    def _unclassified(self, error: Exception, what: str) -> LedgerUnavailable:
        """A store error nobody classified: an outage (journaled, on_ledger_error applies), never a raw
        error in the user's call. Logged with its traceback: it may be a bug worth reporting."""
        log.error("breaker: the budget store %r failed to %s with an unexpected %s", self.where, what,
                  type(error).__name__, exc_info=error)
        return LedgerUnavailable(f"{what} failed: {type(error).__name__}: {scrub(str(error))}", state="failing")

    def _refused(self, error: Exception, what: str) -> None:
        """A write the store did not take, for any reason: classify it (the caller journals the write)."""
        if isinstance(error, LedgerUnavailable):
            self._failed(error)
        elif isinstance(error, LedgerMisconfigured):
            self._misconfigured(error)
        elif isinstance(error, LedgerDataError):
            log.error("breaker: the budget store %r refused %s (%s); it is journaled", self.where, what,
                      scrub(str(error)))
        else:
            self._failed(self._unclassified(error, f"record {what}"))

    def _recovered(self) -> None:
        if self._down:
            self._up()
            self._pending = True
        if self._pending:
            self._kick()

    def _up(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            log.warning("The budget store %r answers again; replaying the journal", self.where)
            self._local = Memory()

    def _unavailable(self) -> LedgerUnavailable:
        return LedgerUnavailable(
            f"The budget store {self.where!r} is {self._state} ({self._error}), so this call's cost could not be "
            f"checked against the shared budgets and it was not sent (on_ledger_error='closed'). It will be "
            f"allowed again once the store answers; use on_ledger_error='open' to let calls through during "
            f"outages.",
            state=self._state,
        )

    # ------------------------------------------------------------------ journal
    def _kick(self) -> None:
        """Start a background replay unless one runs (at most one start per ``retry_every``)."""
        now = time.monotonic()
        if now < self._next_kick or (self._replayer is not None and self._replayer.is_alive()):
            return
        with self._lock:
            if now < self._next_kick or (self._replayer is not None and self._replayer.is_alive()):
                return
            self._next_kick = now + max(self.retry_every, 0.05)
            thread = self._replayer = threading.Thread(target=self._replay_quietly, name="breaker-replay",
                                                       daemon=True)
        thread.start()

    def _replay_quietly(self) -> None:
        try:
            self.replay()
        except Exception:  # pragma: no cover - the thread must report, not die silently
            log.exception("breaker: replaying the ledger journal failed")

    def _await_replay(self) -> None:
        thread = self._replayer
        if thread is not None and thread is not threading.current_thread():
            thread.join(_READ_WAITS_FOR_REPLAY)

    def replay(self) -> int:
        """Send journaled writes to the store, each exactly once, in batches. Returns how many were applied.

        Stops (and marks the store down) when it is unavailable; the rest stay
        journaled. An entry the store refuses for its data is kept in the
        journal, logged once, and skipped.
        """
        if not self._replay_lock.acquire(blocking=False):
            return 0  # another thread is replaying
        applied = 0
        try:
            if not self.journal.exists():
                self._pending = False
                return 0
            skip: set[str] = set()  # applied but the file would not let go, or refused for their data
            while True:
                batch = [e for e in self.journal.pending(limit=_BATCH + len(skip)) if e[0] not in skip]
                if not batch:
                    break
                done: list[str] = []
                for op, kind, p in batch:
                    try:
                        self._apply(op, kind, p)
                    except (LedgerUnavailable, LedgerMisconfigured) as e:
                        self.journal.done(done)
                        self._refused(e, "a journaled write")
                        return applied + len(done)
                    except Exception as e:  # this entry's data: keep it, skip it, go on with the others
                        skip.add(op)
                        if op not in self._reported:
                            self._reported.add(op)
                            log.error("breaker: the budget store %r refuses the journaled %s %s (%s: %s); it "
                                      "stays in %s", self.where, kind, op, type(e).__name__, scrub(str(e)),
                                      self.journal.path)
                        continue
                    done.append(op)
                    time.sleep(0)  # let the callers' threads in between entries (the GIL, the store's lock)
                applied += len(done)
                if not self.journal.done(done):
                    skip.update(done)
            self._pending = bool(skip)  # try them again later (re-applying one is a no-op)
            if applied:
                log.warning("replayed %d journaled ledger writes", applied)
            if self._down:  # it took every write: the outage is over
                self._up()
            return applied
        finally:
            self._replay_lock.release()

    def _apply(self, op: str, kind: str, p: dict[str, Any]) -> None:
        inner = self.inner
        if kind == "settle":
            hold = Hold(p["hold"][0], tuple(p["hold"][1]) if p["hold"][1] is not None else None) if p["hold"] else None
            record = CallRecord(**p["record"]) if p["record"] is not None else None
            inner.settle(hold, tuple(Counter(k, w) for k, w in p["counters"]), (), tuple(p["actual"]), p["now"],
                         record, op=op)
        elif kind == "trip":
            inner.trip(Counter(*p["counter"]), p["metric"], p["needed"], p["now"])
        elif kind == "outcome":
            inner.add_outcome(p["session"], p["feature"], p["user"], p["name"], p["now"], op=op)
        else:  # pragma: no cover - a journal written by a newer version
            raise LedgerError(f"unknown journal entry kind {kind!r} in {self.journal.path}")

    def _journal_settle(self, op: str, hold: Hold | None, counters: tuple[Counter, ...], actual: Vec, now: float,
                        record: CallRecord | None) -> None:
        self.journal.add(op, "settle", {
            "hold": [hold.id, list(hold.amount) if hold.amount is not None else None] if hold is not None else None,
            "counters": [[c.key, c.window] for c in counters], "actual": list(actual), "now": now,
            "record": asdict(record) if record is not None else None,
        })
        self._pending = True

    # ------------------------------------------------------------------ protocol
    def reserve(self, ask: Ask, now: float) -> Grant:
        if self._usable():
            renewer = self._renewer
            if renewer is not None:
                renewer.renew_if_late(now)  # this process's own lapsed holds first: never admit against them
            hold_id = new_id()
            try:
                grant = self.inner.reserve(ask, now, hold_id=hold_id)
            except LedgerMisconfigured as e:
                self._misconfigured(e)
                raise
            except LedgerDataError:
                raise
            except Exception as e:
                error = e if isinstance(e, LedgerUnavailable) else self._unclassified(e, "reserve a budget")
                if error.maybe_applied:  # it may have landed with its answer lost: give it back by id, once
                    self._journal_settle("rel:" + hold_id, Hold(hold_id, None), ask.counters, (0, 0, 0), now, None)
                self._failed(error)
            else:
                self._recovered()
                if renewer is not None and isinstance(grant.handle, Hold):
                    renewer.track(grant.handle, ask.counters, ask.ttl if ask.ttl is not None else self._default_ttl,
                                  now)
                return grant
        if self.mode == "closed":
            raise self._unavailable()
        grant = self._local.reserve(ask, now)
        if grant.handle is not None:
            grant.handle = _Local(grant.handle)
        return grant

    def settle(
        self,
        handle: Any,
        counters: tuple[Counter, ...],
        limits: tuple[Limit, ...],
        actual: Vec,
        now: float,
        record: CallRecord | None = None,
    ) -> tuple[int, ...]:
        """See ``Ledger.settle``. Never raises for the store: what it does not take is journaled."""
        if self._renewer is not None:
            self._renewer.forget(handle)
        local = None
        if isinstance(handle, _Local):
            local = self._local.settle(handle.handle, counters, limits, actual, now)
            handle = None
        op = handle.id if handle is not None else new_id()
        if self._usable():
            try:
                settled = self.inner.settle(handle, counters, limits, actual, now, record, op=op)
            except Exception as e:
                self._refused(e, "a settlement")
            else:
                self._recovered()
                return settled  # type: ignore[no-any-return]
        self._journal_settle(op, handle, counters, actual, now, record)
        # The shared totals are unknown: report what this process knows (thresholds fire after recovery).
        return local if local is not None else tuple(actual[lim.metric] for lim in limits)

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        if self._usable():
            try:
                self.inner.trip(counter, metric, needed, now)
            except Exception as e:
                self._refused(e, "a trip marker")
            else:
                self._recovered()
                return
        self._local.trip(counter, metric, needed, now)
        self.journal.add(new_id(), "trip", {"counter": [counter.key, counter.window], "metric": metric,
                                            "needed": needed, "now": now})
        self._pending = True

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        """Totals from the store, with every journaled write in them, or ``LedgerUnavailable``.

        A read that works while the store refuses writes (out of memory,
        read-only, a corrupt file whose pages read fine) does not end the outage; while journaled writes wait for
        it, the figure would be short, so it is not shown.
        """
        counters = tuple(counters)
        if self._usable():
            self._await_replay()  # a figure shown after an outage includes what the journal held
            try:
                totals = self.inner.read(counters, now)
                if not self._down and not self._pending:
                    return totals  # type: ignore[no-any-return]
                if not (self._down and self._state in _WRITES_REFUSED):
                    self._recovered()  # it answers: up again, the journal going in
                    self._await_replay()
                if self._pending:
                    self.replay()  # here and now (a store still refusing writes fails it: still down)
                if not self._down:
                    return self.inner.read(counters, now)  # type: ignore[no-any-return]
                if not self._pending:
                    return totals  # type: ignore[no-any-return]  # writes refused, but nothing of ours waits
            except (LedgerMisconfigured, LedgerDataError) as e:
                if isinstance(e, LedgerMisconfigured):
                    self._misconfigured(e)
                raise
            except Exception as e:
                self._failed(e if isinstance(e, LedgerUnavailable) else self._unclassified(e, "read budgets"))
        raise LedgerUnavailable(
            f"The budget store {self.where!r} is {self._state} ({self._error}); spend cannot be read until it "
            f"takes the journaled settlements (replayed when it answers).",
            state=self._state,
        )

    def renew(self, now: float | None = None) -> int:
        """Renew the due reservations of this process's calls in flight now (a background thread also
        does it); returns how many the store still held."""
        return self._renewer.renew(now) if self._renewer is not None else 0

    def sweep(self, now: float) -> None:
        sweep = getattr(self.inner, "sweep", None)  # a user's store may predate ``Ledger.sweep``
        if sweep is not None:
            sweep(now)

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float) -> None:
        op = new_id()
        if self._usable():
            try:
                self.inner.add_outcome(session, feature, user, name, now, op=op)
            except Exception as e:
                self._refused(e, "an outcome")
            else:
                self._recovered()
                return
        self.journal.add(op, "outcome", {"session": session, "feature": feature, "user": user, "name": name,
                                         "now": now})
        self._pending = True

    def records(self, since: float | None = None) -> Iterable[CallRecord]:
        return self.inner.records(since)  # type: ignore[no-any-return]

    def grant(self, scope: str, amount: Vec, now: float, by: str) -> GrantRecord:
        """An operator's grant goes to the store or fails loudly (never journaled: the operator must
        know whether the headroom exists, and every process must see it at once)."""
        if not callable(getattr(self.inner, "grant", None)):
            raise LedgerMisconfigured(f"{type(self.inner).__name__} keeps no operator grants; use ledgers.SQLite or Redis")
        return self._direct("record a grant", lambda: self.inner.grant(scope, amount, now, by))  # type: ignore[no-any-return]

    def grants(self, since: float | None = None) -> list[GrantRecord]:
        return list(self.inner.grants(since)) if hasattr(self.inner, "grants") else []

    def trips(self, now: float, counters: Iterable[Counter] | None = None) -> list[TripMark]:
        """Trip markers from the store, or ``LedgerUnavailable`` while it is down (a trip is never
        taken for lifted because the store could not be asked)."""
        if not callable(getattr(self.inner, "trips", None)):
            raise NotImplementedError(f"{type(self.inner).__name__} does not list its trip markers")
        return self._direct("read trip markers", lambda: self.inner.trips(now, counters))  # type: ignore[no-any-return]

    def _direct(self, what: str, fn: Callable[[], Any]) -> Any:
        if self._usable():
            try:
                out = fn()
            except (LedgerMisconfigured, LedgerDataError, NotImplementedError):
                raise
            except LedgerUnavailable as e:
                self._failed(e)
                raise
            except Exception as e:
                error = self._unclassified(e, what)
                self._failed(error)
                raise error from e
            self._recovered()
            return out
        raise LedgerUnavailable(f"The budget store {self.where!r} is {self._state} ({self._error}); could not {what}.",
                                state=self._state)

    def outcomes(self, since: float | None = None) -> Any:
        return self.inner.outcomes(since)

    def close(self) -> None:
        if self._renewer is not None:
            self._renewer.close()
        self._await_replay()
        if self._pending and not self._down:
            self.replay()
        self.inner.close()


def resilient(ledger: Any, *, mode: str, on_event: Callable[[Event], None] | None,
              clock: Callable[[], float] | None = None) -> Any:
    """What ``Breaker`` does with the ledger it is given: wrap a persistent one, configure a wrapped one.

    ``Memory`` and user ledgers without ``journal_ops`` are returned as they are.
    """
    if isinstance(ledger, Resilient):
        ledger.mode = mode
        if ledger.on_event is None:
            ledger.on_event = on_event
        if clock is not None:
            ledger.clock = clock
        return ledger
    if getattr(ledger, "journal_ops", False):
        return Resilient(ledger, mode=mode, on_event=on_event, clock=clock or time.time)
    return ledger
