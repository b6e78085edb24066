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

sqlite3 connection objects are not thread-safe, so each thread gets its own.

Reservations carry an expiry (``Ask.ttl``): a worker that crashes between
``reserve`` and ``settle`` holds the budget for at most that long. Settled
spend never expires. Each settlement has an idempotency id that the file
remembers (``keep_ops``), so a journaled settlement replayed after an
outage (``ledgers.resilient``) is counted once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import Any, Iterable, Iterator

from ..budgets import bucket_seconds, parse_window
from .base import (Ask, CallRecord, Counter, Grant, Hold, LedgerBase, LedgerUnavailable, Limit, OutcomeRow, Totals,
                   Vec, decide, new_id)

__all__ = ["SQLite"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters(
    key TEXT NOT NULL, win INTEGER NOT NULL,
    s0 INTEGER NOT NULL, s1 INTEGER NOT NULL, s2 INTEGER NOT NULL,
    r0 INTEGER NOT NULL, r1 INTEGER NOT NULL, r2 INTEGER NOT NULL,
    t0 INTEGER, t1 INTEGER, t2 INTEGER,
    touched REAL NOT NULL,
    PRIMARY KEY (key, win)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets(
    key TEXT NOT NULL, win INTEGER NOT NULL, start INTEGER NOT NULL,
    v0 INTEGER NOT NULL, v1 INTEGER NOT NULL, v2 INTEGER NOT NULL,
    PRIMARY KEY (key, win, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds(
    id TEXT PRIMARY KEY, expires REAL NOT NULL,
    a0 INTEGER NOT NULL, a1 INTEGER NOT NULL, a2 INTEGER NOT NULL, ctrs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS holds_expires ON holds(expires);
CREATE TABLE IF NOT EXISTS ops(id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS ops_at ON ops(at);
CREATE TABLE IF NOT EXISTS records(
    at REAL NOT NULL, session TEXT NOT NULL, feature TEXT, user TEXT, model TEXT NOT NULL, provider TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_tokens INTEGER,
    reasoning_tokens INTEGER, cost_nano INTEGER, outcome TEXT, degraded INTEGER, tripped TEXT, tags TEXT);
CREATE INDEX IF NOT EXISTS records_at ON records(at);
CREATE TABLE IF NOT EXISTS outcomes(
    id TEXT PRIMARY KEY, at REAL NOT NULL, session TEXT NOT NULL, feature TEXT, user TEXT, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes(at);
"""

_RECORD_FIELDS = tuple(CallRecord.__dataclass_fields__)


class SQLite(LedgerBase):
    """Counters, call records and outcomes in a SQLite file (WAL mode).

    Args:
        path: the database file (created if missing). Every process that
            opens the same file shares the same budgets.
        busy_timeout: seconds a writer waits for the write lock before the
            ledger reports itself unavailable.
        keep_ops: how long settlement ids are remembered for exactly-once replay.
    """

    blocking = True  # every call is a transaction on the file
    wants_records = True
    journal_ops = True  # settle/add_outcome take ``op=``, reserve takes ``hold_id=`` (see resilient.py)

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0,
                 keep_ops: str | timedelta | int = "7d") -> None:
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        self.keep_ops = parse_window(keep_ops, what="SQLite(keep_ops)")
        self.store_id = f"sqlite:{os.path.abspath(self.path)}"
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._next_prune = 0.0
        # SQLite has one writer at a time anyway: threads of this process queue on a
        # mutex (microseconds) rather than in SQLite's busy handler (sleeps of 1-100 ms).
        self._write = threading.Lock()
        with self._errors("open"):
            conn = self._conn()
            conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLite({self.path!r})"

    # ------------------------------------------------------------------ plumbing
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            raise LedgerUnavailable(
                f"The SQLite ledger {self.path!r} could not {what}: {e}. Check that the file's directory is "
                f"writable and not full, and that no process holds its write lock for longer than "
                f"busy_timeout={self.busy_timeout:g}s.",
                maybe_applied=False,  # a failed transaction is rolled back whole
            ) from e

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._write, self._errors(what):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT: never leave the connection mid-transaction
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _purge_holds(conn: sqlite3.Connection, now: float) -> None:
        """Give back reservations whose worker never settled them (crashed)."""
        for a0, a1, a2, ctrs in conn.execute(
            "DELETE FROM holds WHERE expires <= ? RETURNING a0, a1, a2, ctrs", (now,)
        ).fetchall():
            _unhold(conn, json.loads(ctrs), (a0, a1, a2))

    @staticmethod
    def _load(conn: sqlite3.Connection, counters: tuple[Counter, ...], now: float) -> list[list[Any]]:
        """Each counter's row as ``[s0, s1, s2, r0, r1, r2, t0, t1, t2]`` (one query), expired buckets dropped."""
        found = {
            (row[0], row[1]): list(row[2:])
            for row in conn.execute(
                "SELECT key, win, s0, s1, s2, r0, r1, r2, t0, t1, t2 FROM counters WHERE (key, win) IN "
                f"(VALUES {', '.join(['(?, ?)'] * len(counters))})",
                [x for c in counters for x in (c.key, c.window)],
            )
        } if counters else {}
        rows = []
        for c in counters:
            vals = found.get((c.key, c.window))
            if vals is None:
                vals = [0, 0, 0, 0, 0, 0, None, None, None]
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
        conn.executemany(
            "INSERT OR REPLACE INTO counters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.key, c.window, *vals, now) for c, vals in zip(counters, rows)],
        )

    # ------------------------------------------------------------------ protocol
    def reserve(self, ask: Ask, now: float, *, hold_id: str | None = None) -> Grant:
        with self._tx("reserve a budget") as conn:
            self._purge_holds(conn, now)
            rows = self._load(conn, ask.counters, now)
            state = []
            for lim in ask.limits:
                vals = rows[lim.counter]
                m = lim.metric
                s = vals[m]
                blocked = False
                needed = vals[6 + m]
                if needed is not None:
                    if ask.counters[lim.counter].window and s + needed <= lim.limit:
                        vals[6 + m] = None
                    else:
                        blocked = True
                state.append((s, vals[3 + m], blocked))
            grant = decide(ask, state)
            if grant.status == "ok":
                u = grant.units
                f, p = ask.fixed, ask.per_unit
                amount = (f[0] + p[0] * u, f[1] + p[1] * u, f[2] + p[2] * u)
                for vals in rows:
                    vals[3] += amount[0]
                    vals[4] += amount[1]
                    vals[5] += amount[2]
                hid = hold_id or new_id()
                conn.execute(
                    "INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?)",
                    (hid, now + ask.ttl, *amount, json.dumps([[c.key, c.window] for c in ask.counters])),
                )
                grant.handle = Hold(hid, amount)
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
        with self._tx("record a settlement") as conn:
            fresh = conn.execute("INSERT OR IGNORE INTO ops VALUES (?, ?)", (op, now)).rowcount == 1
            if fresh and handle is not None:
                held = conn.execute("DELETE FROM holds WHERE id = ? RETURNING a0, a1, a2, ctrs", (handle.id,)).fetchone()
                if held is not None:  # None: it expired (and was given back) or was never made
                    _unhold(conn, json.loads(held[3]), held[:3])
            rows = self._load(conn, counters, now)
            if fresh:
                for c, vals in zip(counters, rows):
                    vals[0] += actual[0]
                    vals[1] += actual[1]
                    vals[2] += actual[2]
                    if c.window and any(actual):
                        b = bucket_seconds(c.window)
                        conn.execute(
                            "INSERT INTO buckets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, win, start) DO UPDATE "
                            "SET v0 = v0 + excluded.v0, v1 = v1 + excluded.v1, v2 = v2 + excluded.v2",
                            (c.key, c.window, int(now // b) * b, *actual),
                        )
                if record is not None:
                    r = asdict(record)
                    r["tags"] = json.dumps(r["tags"]) if r["tags"] else None
                    conn.execute(f"INSERT INTO records VALUES ({', '.join('?' * len(_RECORD_FIELDS))})",
                                 tuple(r[f] for f in _RECORD_FIELDS))
                if now >= self._next_prune:
                    self._next_prune = now + 600
                    conn.execute("DELETE FROM ops WHERE at < ?", (now - self.keep_ops,))
            self._store(conn, counters, rows, now)
            return tuple([rows[lim.counter][lim.metric] for lim in limits])

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        with self._tx("set a trip marker") as conn:
            rows = self._load(conn, (counter,), now)
            rows[0][6 + metric] = needed
            self._store(conn, (counter,), rows, now)

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        out = []
        # A write transaction: dropping expired buckets and holds is part of reading correctly.
        with self._tx("read budgets") as conn:
            self._purge_holds(conn, now)
            counters = tuple(counters)
            for c, vals in zip(counters, self._load(conn, counters, now)):
                if c.window:
                    self._store_if_present(conn, c, vals, now)
                out.append(Totals((vals[0], vals[1], vals[2]), (vals[3], vals[4], vals[5])))
        return out

    def _store_if_present(self, conn: sqlite3.Connection, c: Counter, vals: list[Any], now: float) -> None:
        conn.execute(
            "UPDATE counters SET s0 = ?, s1 = ?, s2 = ? WHERE key = ? AND win = ?",
            (vals[0], vals[1], vals[2], c.key, c.window),
        )

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float,
                    *, op: str | None = None) -> None:
        with self._tx("record an outcome") as conn:
            conn.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
                         (op or new_id(), now, session, feature, user, name))

    def outcomes(self, since: float | None = None) -> list[OutcomeRow]:
        with self._errors("read outcomes"):
            return [tuple(r) for r in self._conn().execute(  # type: ignore[misc]
                "SELECT at, session, feature, user, name FROM outcomes WHERE at >= ? ORDER BY at",
                (since if since is not None else float("-inf"),))]

    def records(self, since: float | None = None) -> list[CallRecord]:
        with self._errors("read call records"):
            rows = self._conn().execute(
                f"SELECT {', '.join(_RECORD_FIELDS)} FROM records WHERE at >= ? ORDER BY at, rowid",
                (since if since is not None else float("-inf"),)).fetchall()
        out = []
        for row in rows:
            d = dict(zip(_RECORD_FIELDS, row))
            d["degraded"] = bool(d["degraded"])
            d["tags"] = json.loads(d["tags"]) if d["tags"] else {}
            out.append(CallRecord(**d))
        return out

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
