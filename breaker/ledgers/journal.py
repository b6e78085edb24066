"""The journal: ledger writes a store has not acknowledged, kept on this host until it does.

``Resilient`` writes here every settlement, trip marker, outcome and
release of a lost reservation that its store could not take, and replays them
when the store answers again, each exactly once (the store remembers their
ids). One SQLite file per store, shared by every process on the host that
uses the same store, so entries a process leaves when it dies are replayed by
the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

from ..forks import after_fork
from .sqlite import abandon, connect

__all__ = ["Journal", "default_journal"]

log = logging.getLogger("breaker")

_SCHEMA = ("CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, "
           "op TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL)")


def default_journal(store_id: str) -> Path:
    """Where a store's journal lives unless told: ``$XDG_STATE_HOME/breaker`` (or ``~/.local/state/breaker``).

    Not a temporary directory: unreplayed settlements are money and must survive a reboot.
    """
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(store_id.encode()).hexdigest()[:16]
    return Path(base) / "breaker" / f"journal-{digest}.sqlite"


class Journal:
    """An append-only list of writes the store has not acknowledged, in a SQLite file.

    An entry the file cannot take (it stays locked past the timeout, the disk
    is full, the directory is read-only) is held in this process's memory and
    replayed from there, and written to the file when it can take writes
    again: a settlement is never dropped because its journal failed. An error
    is logged once per such failure streak.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._held: dict[str, tuple[str, str]] = {}  # op -> (kind, payload as JSON): not in the file yet
        self._held_lock = threading.Lock()
        self._failing = False
        after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's connection is not used here. Entries held in memory are kept
        (the child may outlive the parent; replaying one twice is harmless: the store knows its id)."""
        abandon(getattr(self._local, "conn", None))
        self._local = threading.local()
        self._held = dict(self._held)
        self._held_lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # synchronous=FULL: a journaled settlement is money, make it durable
            conn = connect(self.path, timeout=30.0, synchronous="FULL", schema=_SCHEMA)
            self._local.conn = conn
        return conn

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
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR IGNORE INTO journal(op, kind, payload) VALUES (?, ?, ?)",
                                 [(op, kind, text) for op, (kind, text) in held])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
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
        """Up to ``limit`` entries (plus any held in memory), oldest first."""
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

    def done(self, ops: Sequence[str]) -> bool:
        """Forget applied entries (one transaction: one disk sync for a whole batch); ``False`` if the file
        would not let go of them (they are replayed again later, which the store's ids make harmless)."""
        with self._held_lock:
            for op in ops:
                self._held.pop(op, None)
        if not ops or not self.path.exists():
            return True
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM journal WHERE op = ?", [(op,) for op in ops])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            log.error("The ledger journal %s cannot be written (%s); %d applied entries stay in it", self.path, e,
                      len(ops))
            return False
        return True

    def __len__(self) -> int:
        held = len(self._held)
        if not self.path.exists():
            return held
        return held + self._conn().execute("SELECT count(*) FROM journal").fetchone()[0]
