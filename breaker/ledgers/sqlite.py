"""A ledger in one SQLite file: budgets shared by every process on one host.

Why SQLite: it is in the standard library, survives restarts, and its write
lock is a real cross-process mutex. Every ``reserve`` and ``settle`` is one
``BEGIN IMMEDIATE`` transaction, which takes the database's write lock
*before* reading, so reading the counters, running ``decide()`` (the same
arithmetic as every other ledger) and writing the reservation happen as one
step for all processes and threads: parallel calls cannot all pass a budget.

WAL mode lets readers (``breaker report``) run while writers write; a busy
timeout makes waiting writers queue instead of failing. ``synchronous=NORMAL``
survives a crashed process (not a power cut of the last transactions).

sqlite3 connection objects are not thread-safe, so each thread gets its own,
and none is used across a ``fork()`` (``breaker.forks``): the child opens its own.

Reservations carry an expiry (``hold_ttl``, renewed by ``Resilient`` while
the call is alive): a worker that crashes between ``reserve`` and ``settle``
holds the budget for at most that long. Settled spend never expires. Each
settlement has an idempotency id that the file remembers (``keep_ops``), so a
journaled settlement replayed after an outage (``ledgers.resilient``) is
counted once.

Failures (``ledgers.base``): a lock held past ``busy_timeout``, a full disk,
an I/O error or a corrupt file make the ledger *unavailable* (an outage; the
journal keeps every settlement); a file that is not a SQLite database is
*misconfigured* (a clear error at construction). Text that is not valid
Unicode in a scope key is refused before the call; amounts saturate at the
largest integer SQLite holds (2**63 - 1) rather than fail a settlement.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterable, Iterator, Sequence

from ..budgets import bucket_seconds, parse_window
from ..checks import seconds as checked_seconds
from ..forks import after_fork
from .base import (Ask, CallRecord, Counter, Grant, GrantRecord, Hold, LedgerBase, LedgerDataError,
                   LedgerMisconfigured, LedgerUnavailable, Limit, OutcomeRow, Totals, TripMark, Vec, RECORD_FIELDS,
                   decide, fit, new_id, seconds, storable, storable_counters, storable_record, unstorable,
                   unstorable_key)
from .sqlite_schema import RECORD_SQL, SCHEMA, STORE_SQL, VERSION, load_sql, pairs, record_row, upgrade

__all__ = ["MAX_INT", "SQLite", "VERSION", "abandon", "connect"]

log = logging.getLogger("breaker")

MAX_INT = 2**63 - 1
"""The largest integer SQLite stores: counters saturate there instead of failing a settlement."""

_ABANDONED: list[Any] = []  # connections a forked child inherited: never used, never closed


def abandon(*conns: Any) -> None:
    """Keep connections a forked child inherited from being used or closed (a close may checkpoint or
    delete the parent's WAL files): they are held here, untouched, for the life of the child."""
    _ABANDONED.extend(c for c in conns if c is not None)


def connect(path: str | os.PathLike[str], *, timeout: float, synchronous: str, schema: str | None = None
            ) -> sqlite3.Connection:
    """A connection in WAL mode (with ``schema`` created), retried while another connection holds the lock.

    Switching a new file to WAL takes an exclusive lock, and SQLite answers
    "database is locked" at once (its busy timeout does not apply) when
    another process or thread is opening the same file: seen when many
    workers open a new ledger or journal at the same moment. So the setup is
    retried, with backoff, for up to ``timeout`` seconds.
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            if schema is not None:
                conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as e:
            if not _busy(e) or time.monotonic() + delay > deadline:
                conn.close()
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        except BaseException:
            conn.close()
            raise


def _busy(e: sqlite3.Error) -> bool:
    text = str(e)
    return "locked" in text or "busy" in text


def _corrupt(e: sqlite3.Error) -> bool:
    text = str(e)
    return "malformed" in text or "not a database" in text or "corrupt" in text

class SQLite(LedgerBase):
    """Counters, call records and outcomes in a SQLite file (WAL mode).

    Args:
        path: the database file (created if missing). Every process that
            opens the same file shares the same budgets.
        busy_timeout: seconds a writer waits for the write lock before the
            ledger reports itself unavailable.
        keep_ops: how long settlement ids are remembered for exactly-once replay.
        hold_ttl: seconds (or ``"10m"``) an unsettled reservation holds the
            budget unless renewed. ``Resilient`` (which ``Breaker`` wraps this
            ledger in) renews the reservations of calls still in flight every
            third of it, so it bounds how long a *crashed* worker's
            reservation blocks others, not how long a call may take.
    """

    blocking = True  # every call is a transaction on the file
    wants_records = True
    journal_ops = True  # settle/add_outcome take ``op=``, reserve takes ``hold_id=`` (see resilient.py)

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0,
                 keep_ops: str | timedelta | int = "7d", hold_ttl: str | timedelta | float = 600.0) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = checked_seconds("busy_timeout", busy_timeout, owner="SQLite", high=3600, example="30.0")
        self.keep_ops = parse_window(keep_ops, what="SQLite(keep_ops)")
        self.hold_ttl = seconds(hold_ttl, what="SQLite(hold_ttl)")
        self.store_id = f"sqlite:{os.path.abspath(self.path)}"
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._next_prune = 0.0
        self._next_purge = 0.0  # when _purge_holds next looks for lapsed holds
        # SQLite has one writer at a time anyway: threads of this process queue on a
        # mutex (microseconds) rather than in SQLite's busy handler (sleeps of 1-100 ms).
        self._write = threading.Lock()
        self._saturated = False
        self._corrupt = False  # corruption was seen: every transaction first checks the whole file
        after_fork(self)
        try:
            with self._errors("open"):
                conn = self._conn(SCHEMA)
                upgrade(conn, self._write)
        except LedgerUnavailable as e:
            if e.state != "corrupt" or not isinstance(e.__cause__, sqlite3.DatabaseError) or \
                    "not a database" not in str(e.__cause__):
                raise
            raise LedgerMisconfigured(
                f"SQLite({self.path!r}): the file is not a SQLite database ({e.__cause__}). It may be another "
                f"program's file, or a ledger damaged beyond SQLite's reading. Pass the path of a ledger file "
                f"(a missing file is created), or move this one away if it was a ledger and start a new one."
            ) from e.__cause__

    def __repr__(self) -> str:
        return f"SQLite({self.path!r})"

    def _after_fork(self) -> None:
        """In a forked child: never touch the parent's connections (not even to close them); open new ones."""
        abandon(*self._conns)
        self._conns = []
        self._conns_lock = threading.Lock()
        self._write = threading.Lock()
        self._local = threading.local()

    # ------------------------------------------------------------------ plumbing
    def _conn(self, schema: str | None = None) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, timeout=self.busy_timeout, synchronous="NORMAL", schema=schema)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        elif schema is not None:
            conn.executescript(schema)
        return conn

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Every failure of the file as one of the three kinds (``ledgers.base``)."""
        try:
            yield
        except sqlite3.DatabaseError as e:  # OperationalError included
            if _corrupt(e):
                self._corrupt = True
                raise LedgerUnavailable(
                    f"The SQLite ledger {self.path!r} could not {what}: the file is corrupt ({e}). Budgets "
                    f"cannot be checked against it; settlements are journaled meanwhile. Restore it from a "
                    f"backup, or recover what SQLite can read (sqlite3 {self.path!r} .recover), and put the "
                    f"result in its place.",
                    maybe_applied=False, state="corrupt",
                ) from e
            if isinstance(e, sqlite3.OperationalError):
                raise LedgerUnavailable(
                    f"The SQLite ledger {self.path!r} could not {what}: {e}. Check that the file's directory is "
                    f"writable and not full, and that no process holds its write lock for longer than "
                    f"busy_timeout={self.busy_timeout:g}s.",
                    maybe_applied=False,  # a failed transaction is rolled back whole
                    state="busy" if _busy(e) else "unwritable",
                ) from e
            raise LedgerUnavailable(
                f"The SQLite ledger {self.path!r} could not {what}: {type(e).__name__}: {e}.",
                maybe_applied=False, state="failing",
            ) from e
        except (OverflowError, UnicodeError) as e:  # found before the write (checks below): a bug if here
            raise LedgerDataError(f"The SQLite ledger {self.path!r} could not {what}: {e}") from e

    @staticmethod
    def _check(ask: Ask) -> Ask:
        """Refuse, before the call, what this file cannot hold: text that is not valid Unicode in a scope
        key; and keep the worst case within its integers (``fit``)."""
        for c in ask.counters:
            if unstorable(c.key):
                raise unstorable_key(c.key)
        return fit(ask, MAX_INT, "a SQLite ledger counts (2**63 - 1)")

    def _saturate(self, value: int) -> int:
        if value <= MAX_INT:
            return value
        if not self._saturated:
            self._saturated = True
            log.error("breaker: a counter of the SQLite ledger %r reached 2**63 - 1, the largest integer SQLite "
                      "holds; it stays there (every limit on it is passed)", self.path)
        return MAX_INT

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._write, self._errors(what):
            conn = self._conn()
            if self._corrupt:  # some pages may still read fine: no transaction until the whole file checks
                problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")
                self._corrupt = False
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT: never leave the connection mid-transaction
                    conn.execute("ROLLBACK")
                raise

    def _purge_holds(self, conn: sqlite3.Connection, now: float, *, force: bool = False) -> None:
        """Give back reservations whose worker never settled them (crashed). ``holds`` has no index on
        its expiry (see ``sqlite_schema``): the look is a scan of the calls in flight, made at most once
        a second (a quarter of ``hold_ttl`` if that is shorter), so a lapsed hold is given back at most
        that much later, which only errs on the side of refusing. Looked for first: a ``DELETE ...
        RETURNING`` that finds nothing costs four times the ``SELECT``. ``force``: look now (``read``,
        which reports what is held, and is not on a call's path)."""
        if now < self._next_purge and not force:
            return
        self._next_purge = now + min(1.0, self.hold_ttl / 4)
        if conn.execute("SELECT 1 FROM holds WHERE expires <= ? LIMIT 1", (now,)).fetchone() is None:
            return
        for a0, a1, a2, ctrs in conn.execute(
            "DELETE FROM holds WHERE expires <= ? RETURNING a0, a1, a2, ctrs", (now,)
        ).fetchall():
            _unhold(conn, json.loads(ctrs), (a0, a1, a2))

    @staticmethod
    def _load(conn: sqlite3.Connection, counters: tuple[Counter, ...], now: float) -> list[list[Any]]:
        """Each counter's row as ``[s0, s1, s2, r0, r1, r2, t0, t1, t2, g0, g1, g2]`` (one query; ``g``:
        granted), expired buckets dropped."""
        found = {
            (row[0], row[1]): list(row[2:])
            for row in conn.execute(load_sql(len(counters)), [x for c in counters for x in (c.key, c.window)])
        } if counters else {}
        rows = []
        for c in counters:
            vals = found.get((c.key, c.window))
            if vals is None:
                vals = [0, 0, 0, 0, 0, 0, None, None, None, 0, 0, 0]
            elif c.window:
                for v0, v1, v2 in conn.execute(
                    "DELETE FROM buckets WHERE key = ? AND win = ? AND start <= ? RETURNING v0, v1, v2",
                    (c.key, c.window, now - c.window - bucket_seconds(c.window)),
                ).fetchall():
                    vals[0] -= v0
                    vals[1] -= v1
                    vals[2] -= v2
            rows.append(vals)
        return rows

    @staticmethod
    def _store(conn: sqlite3.Connection, counters: tuple[Counter, ...], rows: list[list[Any]], now: float) -> None:
        """Write the rows ``_load`` read (and the caller changed) back: one prepared statement, run per counter.
        An update in place, not ``INSERT OR REPLACE`` (a delete and an insert)."""
        conn.executemany(STORE_SQL, [(c.key, c.window, *vals[:9], now) for c, vals in zip(counters, rows)])

    # ------------------------------------------------------------------ protocol
    def reserve(self, ask: Ask, now: float, *, hold_id: str | None = None) -> Grant:
        ask = self._check(ask)
        ttl = ask.ttl if ask.ttl is not None else self.hold_ttl
        with self._tx("reserve a budget") as conn:
            self._purge_holds(conn, now)
            rows = self._load(conn, ask.counters, now)
            state = []
            changed = False  # a refusal writes the rows back only if reading them changed them
            kept = set()  # (counter, metric) of trip markers that still block a limit
            for lim in ask.limits:
                vals = rows[lim.counter]
                m = lim.metric
                s = vals[m] - vals[9 + m]  # what counts against a limit: settled minus granted
                blocked = False
                needed = vals[6 + m]
                if needed is not None:
                    blocked = not ask.counters[lim.counter].window or s + needed > lim.limit
                    if blocked:
                        kept.add((lim.counter, m))
                state.append((s, vals[3 + m], blocked))
            for lim in ask.limits:  # a window's marker is lifted once every limit on it has room (as Memory)
                vals = rows[lim.counter]
                if vals[6 + lim.metric] is not None and (lim.counter, lim.metric) not in kept:
                    vals[6 + lim.metric] = None
                    changed = True
            grant = decide(ask, state)
            if grant.status == "ok":
                u = grant.units
                f, p = ask.fixed, ask.per_unit
                amount = (f[0] + p[0] * u, f[1] + p[1] * u, f[2] + p[2] * u)
                for vals in rows:
                    vals[3] += amount[0]
                    vals[4] += amount[1]
                    vals[5] += amount[2]
                    if max(vals[3], vals[4], vals[5]) > MAX_INT:
                        raise LedgerDataError(
                            f"The calls in flight on {ask.counters[0].key!r} would reserve more than a SQLite "
                            f"ledger counts (2**63 - 1); this call was not sent.")
                hid = hold_id or new_id()
                conn.execute(
                    "INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?)",
                    (hid, now + ttl, *amount, json.dumps([[c.key, c.window] for c in ask.counters])),
                )
                grant.handle = Hold(hid, amount)
                changed = True
            if changed or any(c.window for c in ask.counters):  # a window's expired buckets were dropped
                self._store(conn, ask.counters, rows, now)
            return grant

    def settle(
        self,
        handle: Any,
        counters: tuple[Counter, ...],
        limits: tuple[Limit, ...],
        actual: Vec,
        now: float,
        record: CallRecord | None = None,
        *,
        op: str | None = None,
    ) -> tuple[int, ...]:
        """See ``Ledger.settle``. ``op`` is the settlement's idempotency id
        (default: the reservation's id): a second settle with the same id
        changes nothing and returns the current figures."""
        op = op or (handle.id if handle is not None else new_id())
        counters = storable_counters(counters)  # a served call's charge is never refused for its text
        actual = (min(actual[0], MAX_INT), min(actual[1], MAX_INT), min(actual[2], MAX_INT))
        with self._tx("record a settlement") as conn:
            fresh = conn.execute("INSERT OR IGNORE INTO ops VALUES (?, ?)", (op, now)).rowcount == 1
            held = None
            if fresh and handle is not None:  # None: it expired (and was given back) or was never made
                held = conn.execute("DELETE FROM holds WHERE id = ? RETURNING a0, a1, a2, ctrs", (handle.id,)
                                    ).fetchone()
            rows = self._load(conn, counters, now)
            if held is not None:  # given back on the rows read here; on any other counter it held, in place
                at = {(c.key, c.window): vals for c, vals in zip(counters, rows)}
                others = []
                for key, win in json.loads(held[3]):
                    vals = at.get((key, win))
                    if vals is None:
                        others.append([key, win])
                    else:
                        vals[3] -= held[0]
                        vals[4] -= held[1]
                        vals[5] -= held[2]
                if others:
                    _unhold(conn, others, held[:3])
            if fresh:
                sat = self._saturate
                for c, vals in zip(counters, rows):
                    vals[0] = sat(vals[0] + actual[0])
                    vals[1] = sat(vals[1] + actual[1])
                    vals[2] = sat(vals[2] + actual[2])
                    if c.window and any(actual):
                        b = bucket_seconds(c.window)
                        conn.execute(  # min(): an integer sum past 2**63 - 1 becomes a REAL in SQLite
                            "INSERT INTO buckets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, win, start) DO UPDATE "
                            f"SET v0 = min(v0 + excluded.v0, {MAX_INT}), v1 = min(v1 + excluded.v1, {MAX_INT}), "
                            f"v2 = min(v2 + excluded.v2, {MAX_INT})",
                            (c.key, c.window, int(now // b) * b, *actual),
                        )
                if record is not None:
                    conn.execute(RECORD_SQL, record_row(storable_record(record)))
                if now >= self._next_prune:
                    self._next_prune = now + 600
                    conn.execute("DELETE FROM ops WHERE at < ?", (now - self.keep_ops,))
            self._store(conn, counters, rows, now)
            return tuple([rows[lim.counter][lim.metric] - rows[lim.counter][9 + lim.metric] for lim in limits])

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        (counter,) = storable_counters((counter,))
        needed = min(needed, MAX_INT)
        with self._tx("set a trip marker") as conn:
            rows = self._load(conn, (counter,), now)
            rows[0][6 + metric] = needed
            self._store(conn, (counter,), rows, now)
            conn.execute("INSERT OR REPLACE INTO trip_log VALUES (?, ?, ?, ?)", (counter.key, counter.window, metric, now))

    def grant(self, scope: str, amount: Vec, now: float, by: str) -> GrantRecord:
        """See ``LedgerBase.grant``: one transaction, so every process sees the headroom and the lifted trip at once."""
        if unstorable(scope) or unstorable(by):
            raise unstorable_key(scope if unstorable(scope) else by)
        with self._tx("record a grant") as conn:
            found = conn.execute(  # the scope's whole-life counters, its periods' (scope@...), its windows'
                "SELECT key, win, t0 IS NOT NULL, t1 IS NOT NULL, t2 IS NOT NULL FROM counters WHERE key = ? OR "
                "(key > ? AND key < ?)", (scope, scope + "@", scope + "A")).fetchall()
            lifetime = {(key, win) for key, win, *_ in found if win == 0} | {(scope, 0)}
            lifted = sum(a + b + c for _k, _w, a, b, c in found)
            conn.execute("UPDATE counters SET t0 = NULL, t1 = NULL, t2 = NULL WHERE key = ? OR (key > ? AND key < ?)",
                         (scope, scope + "@", scope + "A"))
            conn.executemany(
                "INSERT INTO granted VALUES (?, ?, ?, ?, ?) ON CONFLICT (key, win) DO UPDATE SET "
                f"g0 = min(g0 + excluded.g0, {MAX_INT}), g1 = min(g1 + excluded.g1, {MAX_INT}), "
                f"g2 = min(g2 + excluded.g2, {MAX_INT})", [(key, win, *amount) for key, win in sorted(lifetime)])
            record = GrantRecord(now, scope, *amount, by, len(lifetime), lifted)
            conn.execute("INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (now, scope, *amount, by, record.counters, lifted))
        return record

    def grants(self, since: float | None = None) -> list[GrantRecord]:
        with self._errors("read grants"):
            rows = self._conn().execute("SELECT * FROM grants WHERE at >= ? ORDER BY at, rowid",
                                        (since if since is not None else float("-inf"),)).fetchall()
        return [GrantRecord(*row) for row in rows]

    def trips(self, now: float, counters: Iterable[Counter] | None = None) -> list[TripMark]:
        where, args = "t0 IS NOT NULL OR t1 IS NOT NULL OR t2 IS NOT NULL", []
        if counters is not None:
            wanted = list(storable_counters(tuple(counters)))
            if not wanted:
                return []
            where = pairs(len(wanted), "c")
            args = [x for c in wanted for x in (c.key, c.window)]
        with self._errors("read trip markers"):
            conn = self._conn()
            rows = conn.execute(
                "SELECT c.key, c.win, s0, s1, s2, t0, t1, t2, coalesce(g0, 0), coalesce(g1, 0), coalesce(g2, 0) "
                f"FROM counters AS c LEFT JOIN granted AS g ON g.key = c.key AND g.win = c.win WHERE {where}",
                args).fetchall()
            only = f" WHERE {pairs(len(rows), 'trip_log')}" if counters is not None else ""
            at = {(k, w, m): t for k, w, m, t in conn.execute(
                "SELECT key, win, metric, at FROM trip_log" + only, [x for r in rows for x in r[:2]] if only else [])
                  } if rows else {}
        return [TripMark(Counter(key, win), m, r[3 + m], at.get((key, win, m)), r[m], r[6 + m])
                for key, win, *r in rows for m in range(3) if r[3 + m] is not None]

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        out = []
        # A write transaction: dropping expired buckets and holds is part of reading correctly.
        with self._tx("read budgets") as conn:
            self._purge_holds(conn, now, force=True)
            counters = storable_counters(tuple(counters))
            for c, vals in zip(counters, self._load(conn, counters, now)):
                if c.window:
                    self._store_if_present(conn, c, vals, now)
                out.append(Totals((vals[0], vals[1], vals[2]), (vals[3], vals[4], vals[5]), (vals[9], vals[10], vals[11])))
        return out

    def _store_if_present(self, conn: sqlite3.Connection, c: Counter, vals: list[Any], now: float) -> None:
        conn.execute(
            "UPDATE counters SET s0 = ?, s1 = ?, s2 = ? WHERE key = ? AND win = ?",
            (vals[0], vals[1], vals[2], c.key, c.window),
        )

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float,
                    *, op: str | None = None) -> None:
        text = [storable(t) if t is not None else None for t in (session, feature, user, name)]
        with self._tx("record an outcome") as conn:
            conn.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)", (op or new_id(), now, *text))

    def outcomes(self, since: float | None = None) -> list[OutcomeRow]:
        with self._errors("read outcomes"):
            return [tuple(r) for r in self._conn().execute(  # type: ignore[misc]
                "SELECT at, session, feature, user, name FROM outcomes WHERE at >= ? ORDER BY at",
                (since if since is not None else float("-inf"),))]

    def records(self, since: float | None = None) -> list[CallRecord]:
        with self._errors("read call records"):
            rows = self._conn().execute(
                f"SELECT {', '.join(RECORD_FIELDS)} FROM records WHERE at >= ? ORDER BY at, rowid",
                (since if since is not None else float("-inf"),)).fetchall()
        out = []
        for row in rows:
            d = dict(zip(RECORD_FIELDS, row))
            d["degraded"] = bool(d["degraded"])
            d["tags"] = json.loads(d["tags"]) if d["tags"] else {}
            out.append(CallRecord(**d))
        return out

    def renew(self, holds: Sequence[tuple[Hold, tuple[Counter, ...], float]], now: float) -> set[str]:
        """Push back the expiry of live calls' reservations to ``now + ttl`` each (``ledgers.renewal``).

        Returns the ids still held: one missing was given back already (it
        expired while its process could not renew it) and stays given back.
        """
        found: set[str] = set()
        with self._tx("renew reservations") as conn:
            for hold, _counters, ttl in holds:
                if conn.execute("UPDATE holds SET expires = ? WHERE id = ?", (now + ttl, hold.id)).rowcount:
                    found.add(hold.id)
        return found

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing from another thread
                pass
        self._local = threading.local()


def _unhold(conn: sqlite3.Connection, ctrs: list[list[Any]], amount: Any) -> None:
    conn.executemany(
        "UPDATE counters SET r0 = r0 - ?, r1 = r1 - ?, r2 = r2 - ? WHERE key = ? AND win = ?",
        [(amount[0], amount[1], amount[2], key, win) for key, win in ctrs],
    )

