"""What happens when a shared ledger (SQLite, Redis) is down: nothing lost, nothing counted twice.

``Resilient`` wraps a persistent ledger. The engine wraps ``SQLite`` and
``Redis`` in it by itself (``Breaker(on_ledger_error=...)``); build one
yourself only to choose where the journal lives::

    ledger = Resilient(Redis("redis://cache:6379/0"), journal="/var/lib/app/breaker-journal.sqlite")

While the store is unreachable:

* ``on_ledger_error="closed"`` (default): ``reserve`` raises
  ``LedgerUnavailable``; the engine refuses the call with a non-sticky
  ``BudgetExceeded(reason="ledger_unavailable")``. No money is spent that the
  shared budget could not see.
* ``"open"``: calls go through; each process enforces the budgets against its
  own spend since the outage began (a local ``Memory``), so one process cannot
  spend more than one whole budget while the store is away, but N processes
  can spend N budgets. Choose it when stopping the agents costs more.

In both modes every settlement (and trip marker, outcome, and release of a
reservation whose answer was lost) that cannot be written goes to a local
append-only SQLite journal, and is replayed when the store answers again.
Each carries an idempotency id that the store remembers, so a replay -- or two
processes replaying the same journal, or a write that did land although its
answer was lost -- counts it exactly once. One ``ledger_error`` event fires
per outage, not per call.

Reads (``Breaker.spent``, ``Session.cost_usd``) raise ``LedgerUnavailable``
while the store is down: a figure the library cannot know is never shown as $0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import LedgerError
from ..events import Event
from .base import Ask, CallRecord, Counter, Grant, Hold, LedgerUnavailable, Limit, Totals, Vec, new_id
from .memory import Memory

# Hold, LedgerUnavailable and new_id live in ``ledgers.base`` (the ledgers share them); still importable from here.
__all__ = ["Hold", "LedgerUnavailable", "Resilient", "new_id", "resilient"]

log = logging.getLogger("breaker")


@dataclass(frozen=True, slots=True)
class _Local:
    """A reservation granted by the local fallback ledger while the store was down (open mode)."""

    handle: Any


def default_journal(store_id: str) -> Path:
    """Where a store's journal lives unless told: ``$XDG_STATE_HOME/breaker`` (or ``~/.local/state/breaker``).

    Not a temporary directory: unreplayed settlements are money and must survive a reboot.
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(store_id.encode()).hexdigest()[:16]
    return Path(base) / "breaker" / f"journal-{digest}.sqlite"


class _Journal:
    """An append-only list of writes the store has not acknowledged, in a SQLite file.

    Shared by every process on the host that uses the same store, so a process
    that dies with entries pending has them replayed by the next one.

    An entry the file cannot take (it stays locked past the timeout, the disk
    is full, the directory is read-only) is held in this process's memory and
    replayed from there, and written to the file when it can take writes
    again: a settlement is never dropped because its journal failed. An error
    is logged once per such failure streak.
    """

    _SETUP_TRIES = 60  # x 0.05..0.5 s: several processes may open a new journal at once

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._held: dict[str, tuple[str, str]] = {}  # op -> (kind, payload as JSON): not in the file yet
        self._held_lock = threading.Lock()
        self._failing = False

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                self._setup(conn)
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the table, retried while another connection holds the lock.

        Switching a new file to WAL takes an exclusive lock and SQLite answers
        "database is locked" at once, without waiting out the busy timeout,
        when another process or thread is opening the same journal: seen when
        many workers journal their first settlement in the same outage.
        """
        delay = 0.05
        for attempt in range(self._SETUP_TRIES):
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # a journaled settlement is money: make it durable
                conn.execute("CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "op TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL)")
                return
            except sqlite3.OperationalError as e:
                busy = "locked" in str(e) or "busy" in str(e)
                if not busy or attempt == self._SETUP_TRIES - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def exists(self) -> bool:
        return bool(self._held) or self.path.exists()

    def add(self, op: str, kind: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        with self._held_lock:
            self._held[op] = (kind, text)
        self._flush()

    def _flush(self) -> None:
        """Move held entries into the file; on failure they stay held (and are replayed from memory)."""
        with self._held_lock:
            held = list(self._held.items())
        if not held:
            return
        try:
            conn = self._conn()
            for op, (kind, text) in held:
                conn.execute("INSERT OR IGNORE INTO journal(op, kind, payload) VALUES (?, ?, ?)", (op, kind, text))
        except (sqlite3.Error, OSError) as e:  # OSError: its directory cannot be made
            if not self._failing:
                self._failing = True
                log.error(
                    "The ledger journal %s cannot be written (%s): %d unacknowledged ledger write(s) are kept in "
                    "this process's memory and replayed from there when the budget store answers, but would "
                    "be lost if the process exits first. Check the file's directory, permissions and free space.",
                    self.path, e, len(held),
                )
            return
        self._failing = False
        with self._held_lock:
            for op, _ in held:
                self._held.pop(op, None)

    def pending(self, limit: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
        self._flush()
        with self._held_lock:
            entries = dict(self._held)
        if self.path.exists():
            try:
                rows = self._conn().execute("SELECT op, kind, payload FROM journal ORDER BY seq LIMIT ?", (limit,))
                for op, kind, text in rows:
                    entries.setdefault(op, (kind, text))
            except sqlite3.Error as e:
                log.error("The ledger journal %s cannot be read (%s); its entries are replayed once it can", self.path, e)
        return [(op, kind, json.loads(text)) for op, (kind, text) in entries.items()]

    def done(self, op: str) -> bool:
        """Forget an applied entry; ``False`` if the file would not let go of it (it is replayed again
        later, which the store's idempotency id makes harmless)."""
        with self._held_lock:
            self._held.pop(op, None)
        if not self.path.exists():
            return True
        try:
            self._conn().execute("DELETE FROM journal WHERE op = ?", (op,))
        except sqlite3.Error as e:
            log.error("The ledger journal %s cannot be written (%s); an applied entry stays in it", self.path, e)
            return False
        return True

    def __len__(self) -> int:
        held = len(self._held)
        if not self.path.exists():
            return held
        return held + self._conn().execute("SELECT count(*) FROM journal").fetchone()[0]


class Resilient:
    """A persistent ledger that survives its store going away (see the module docstring).

    Args:
        ledger: a ``SQLite`` or ``Redis`` ledger.
        mode: ``"closed"`` (refuse calls while down) or ``"open"`` (allow, enforce locally, alert).
        journal: path of the local journal file (default: see ``default_journal``).
        on_event: receives the ``ledger_error`` event (the engine passes its alert dispatcher).
        retry_every: while down, seconds between attempts to reach the store
            (calls in between fail fast instead of each waiting for a timeout).
    """

    def __init__(
        self,
        ledger: Any,
        *,
        mode: str = "closed",
        journal: str | os.PathLike[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        retry_every: float = 1.0,
    ) -> None:
        if mode not in ("closed", "open"):
            raise ValueError(f"mode={mode!r}: use 'closed' or 'open'")
        self.inner = ledger
        self.mode = mode
        self.on_event = on_event
        self.retry_every = float(retry_every)
        store_id = getattr(ledger, "store_id", repr(ledger))
        self.journal = _Journal(Path(journal) if journal is not None else default_journal(store_id))
        self._lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._down = False
        self._error = ""
        self._next_probe = 0.0
        self._pending = self.journal.exists()  # left by an earlier process: replay before the first call
        self._local = Memory()
        self.outages = 0

    def __repr__(self) -> str:
        return f"Resilient({self.inner!r}, mode={self.mode!r})"

    @property
    def blocking(self) -> bool:
        """The wrapped store's answer (a store behind I/O: True)."""
        return bool(getattr(self.inner, "blocking", True))

    @property
    def wants_records(self) -> bool:
        return bool(getattr(self.inner, "wants_records", False))

    @property
    def down(self) -> bool:
        """Whether the store is currently considered unreachable."""
        return self._down

    # ------------------------------------------------------------------ health
    def _usable(self) -> bool:
        """Whether to try the store now (always when up; once per ``retry_every`` when down)."""
        if not self._down:
            if self._pending:
                self.replay()
            return not self._down
        with self._lock:
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + self.retry_every  # this caller probes; the others fail fast
            return True

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down = True
            self._error = str(error)
            self._next_probe = time.monotonic() + self.retry_every
            if first:
                self.outages += 1
        if first:
            what = ("calls are refused until it answers again (on_ledger_error='closed')" if self.mode == "closed"
                    else "calls are allowed, each process enforcing budgets on its own spend since the outage "
                         "(on_ledger_error='open')")
            message = (f"The budget store {getattr(self.inner, 'store_id', self.inner)!r} is unreachable: "
                       f"{str(error).rstrip('.')}. "
                       f"{what.capitalize()}; settlements are journaled in {str(self.journal.path)!r} and "
                       f"replayed exactly once when it returns.")
            log.warning(message)
            if self.on_event is not None:
                try:
                    self.on_event(Event("ledger_error", message, data={"mode": self.mode, "error": str(error),
                                                                       "journal": str(self.journal.path)}))
                except Exception:  # pragma: no cover - a failing sink must not break the call
                    log.exception("alert sink failed on a ledger_error event")

    def _recovered(self) -> None:
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                log.warning("The budget store %r answers again; replaying the journal",
                            getattr(self.inner, "store_id", self.inner))
                self._local = Memory()
                self._pending = True
        if self._pending:
            self.replay()

    def _unavailable(self) -> LedgerUnavailable:
        return LedgerUnavailable(
            f"The budget store {getattr(self.inner, 'store_id', self.inner)!r} is unreachable ({self._error}), "
            f"so this call's cost could not be checked against the shared budgets and it was not sent "
            f"(on_ledger_error='closed'). It will be allowed again once the store answers; use "
            f"on_ledger_error='open' to let calls through during outages."
        )

    # ------------------------------------------------------------------ journal
    def replay(self) -> int:
        """Send journaled writes to the store, each exactly once. Returns how many were applied.

        Stops (and marks the store down) at the first failure; the rest stay journaled.
        """
        if not self._replay_lock.acquire(blocking=False):
            return 0  # another thread is replaying
        applied = 0
        try:
            if not self.journal.exists():
                self._pending = False
                return 0
            stuck: set[str] = set()  # applied, but the journal file would not let go of them
            while True:
                batch = [entry for entry in self.journal.pending() if entry[0] not in stuck]
                if not batch:
                    break
                for op, kind, p in batch:
                    try:
                        self._apply(op, kind, p)
                    except LedgerUnavailable as e:
                        self._failed(e)
                        return applied
                    if not self.journal.done(op):
                        stuck.add(op)
                    applied += 1
            self._pending = bool(stuck)  # try to clear them again later (re-applying one is a no-op)
            if applied:
                log.warning("replayed %d journaled ledger writes", applied)
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
            hold_id = new_id()
            try:
                grant = self.inner.reserve(ask, now, hold_id=hold_id)
            except LedgerUnavailable as e:
                if e.maybe_applied:  # it may have landed with its answer lost: give it back by id, once
                    self._journal_settle("rel:" + hold_id, Hold(hold_id, None), ask.counters, (0, 0, 0), now, None)
                self._failed(e)
            else:
                self._recovered()
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
        local = None
        if isinstance(handle, _Local):
            local = self._local.settle(handle.handle, counters, limits, actual, now)
            handle = None
        op = handle.id if handle is not None else new_id()
        if self._usable():
            try:
                settled = self.inner.settle(handle, counters, limits, actual, now, record, op=op)
            except LedgerUnavailable as e:
                self._failed(e)
            else:
                self._recovered()
                return settled
        self._journal_settle(op, handle, counters, actual, now, record)
        # The shared totals are unknown: report what this process knows (thresholds fire after recovery).
        return local if local is not None else tuple(actual[lim.metric] for lim in limits)

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        if self._usable():
            try:
                self.inner.trip(counter, metric, needed, now)
            except LedgerUnavailable as e:
                self._failed(e)
            else:
                self._recovered()
                return
        self._local.trip(counter, metric, needed, now)
        self.journal.add(new_id(), "trip", {"counter": [counter.key, counter.window], "metric": metric,
                                            "needed": needed, "now": now})
        self._pending = True

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        if self._usable():
            try:
                totals = self.inner.read(counters, now)
            except LedgerUnavailable as e:
                self._failed(e)
            else:
                self._recovered()
                return totals
        raise LedgerUnavailable(
            f"The budget store {getattr(self.inner, 'store_id', self.inner)!r} is unreachable ({self._error}); "
            f"spend cannot be read until it answers (journaled settlements are replayed then)."
        )

    def sweep(self, now: float) -> None:
        sweep = getattr(self.inner, "sweep", None)  # a user's store may predate ``Ledger.sweep``
        if sweep is not None:
            sweep(now)

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float) -> None:
        op = new_id()
        if self._usable():
            try:
                self.inner.add_outcome(session, feature, user, name, now, op=op)
            except LedgerUnavailable as e:
                self._failed(e)
            else:
                self._recovered()
                return
        self.journal.add(op, "outcome", {"session": session, "feature": feature, "user": user, "name": name,
                                         "now": now})
        self._pending = True

    def records(self, since: float | None = None) -> Iterable[CallRecord]:
        return self.inner.records(since)

    def outcomes(self, since: float | None = None) -> Any:
        return self.inner.outcomes(since)

    def close(self) -> None:
        if self._pending and not self._down:
            self.replay()
        self.inner.close()


def resilient(ledger: Any, *, mode: str, on_event: Callable[[Event], None] | None) -> Any:
    """What ``Breaker`` does with the ledger it is given: wrap a persistent one, configure a wrapped one.

    ``Memory`` and user ledgers without ``journal_ops`` are returned as they are.
    """
    if isinstance(ledger, Resilient):
        ledger.mode = mode
        if ledger.on_event is None:
            ledger.on_event = on_event
        return ledger
    if getattr(ledger, "journal_ops", False):
        return Resilient(ledger, mode=mode, on_event=on_event)
    return ledger
