"""The SQLite ledger's file (``ledgers.sqlite``): its tables, the version of their layout and the upgrade
of an older file, and the statements every call runs.

What each call writes is what it costs: a transaction's commit writes every page it changed to the WAL
(about 20 µs a page on a loaded VM), so the tables written by every reservation and settlement are
``WITHOUT ROWID`` (one B-tree each), counters are read by primary key, and a row is updated in place.
``holds`` has no index on its expiry: it holds only the calls in flight, and the ledger looks for lapsed
ones at most once a second (``SQLite._purge_holds``), so keeping an index would write two more pages a
call to save a scan of a small table. ``ops`` keeps one (it is pruned by time, and holds days of ids);
its ids are time-ordered (``base.new_id``), so each insert lands on the B-tree's last page, which is
in the cache, not on a random page of a table of millions.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from typing import Any

from .base import RECORD_FIELDS, CallRecord, record_dict

__all__ = ["RECORD_SQL", "SCHEMA", "STORE_SQL", "VERSION", "load_sql", "missing_columns", "pairs", "record_row",
           "upgrade"]

# Written by every reservation and settlement: WITHOUT ROWID, one B-tree per table (``ops`` beside its index
# on time). {table: (columns, the column of its time index or None)}; ``upgrade`` rebuilds an older file's
# in this form.
_ID_TABLES: dict[str, tuple[str, str | None]] = {
    "holds": ("id TEXT PRIMARY KEY, expires REAL NOT NULL, a0 INTEGER NOT NULL, a1 INTEGER NOT NULL, "
              "a2 INTEGER NOT NULL, ctrs TEXT NOT NULL", None),
    "ops": ("id TEXT PRIMARY KEY, at REAL NOT NULL", "at"),
}

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS records(
    at REAL NOT NULL, session TEXT NOT NULL, feature TEXT, user TEXT, model TEXT NOT NULL, provider TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER, cache_write_tokens INTEGER,
    reasoning_tokens INTEGER, cost_nano INTEGER, outcome TEXT, degraded INTEGER, tripped TEXT, tags TEXT,
    price_variant TEXT);
CREATE INDEX IF NOT EXISTS records_at ON records(at);
CREATE TABLE IF NOT EXISTS outcomes(
    id TEXT PRIMARY KEY, at REAL NOT NULL, session TEXT NOT NULL, feature TEXT, user TEXT, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outcomes_at ON outcomes(at);
CREATE TABLE IF NOT EXISTS granted(
    key TEXT NOT NULL, win INTEGER NOT NULL, g0 INTEGER NOT NULL, g1 INTEGER NOT NULL, g2 INTEGER NOT NULL,
    PRIMARY KEY (key, win)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants(
    at REAL NOT NULL, scope TEXT NOT NULL, usd INTEGER NOT NULL, tokens INTEGER NOT NULL, calls INTEGER NOT NULL,
    by TEXT NOT NULL, counters INTEGER NOT NULL, lifted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trip_log(
    key TEXT NOT NULL, win INTEGER NOT NULL, metric INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (key, win, metric)) WITHOUT ROWID;
""" + "".join(f"CREATE TABLE IF NOT EXISTS {t}({cols}) WITHOUT ROWID;\n"
              + (f"CREATE INDEX IF NOT EXISTS {t}_{at} ON {t}({at});\n" if at else "")
              for t, (cols, at) in _ID_TABLES.items())
# Grants and trip times are tables of their own, not columns of ``counters``: a process of an older
# version sharing the file keeps writing its rows as it always did.

VERSION = 2
"""The file's layout, kept in ``PRAGMA user_version``. 0: ``holds`` and ``ops`` are rowid tables with a
separate index on their id, so each reservation and settlement wrote three B-trees of each; 1: they are
``WITHOUT ROWID`` (two); 2: ``holds`` has no index on its expiry (one). The columns are the same, so
processes of any version share a file (an older one recreates the index it expects, which only costs it
time); an older file is converted the first time this version opens it (``upgrade``)."""




def upgrade(conn: sqlite3.Connection, lock: threading.Lock) -> None:
    """A file written by an older version: ``CallRecord``'s newer fields added as columns, and the tables of
    an older ``VERSION`` rebuilt. Under the write lock (``lock``, then SQLite's), the file read again
    inside it: processes opening it at once upgrade it once. A newer version's file is left as it is (its
    tables keep these columns)."""
    if not missing_columns(conn) and _version(conn) >= VERSION:
        return
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name in missing_columns(conn):
                conn.execute(f"ALTER TABLE records ADD COLUMN {name}")
            if _version(conn) < VERSION:
                for t, (cols, at) in _ID_TABLES.items():
                    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       (t,)).fetchone()[0]
                    if "WITHOUT ROWID" not in sql.upper():  # version 0: rebuilt, its rows kept
                        conn.execute(f"CREATE TABLE {t}_v1({cols}) WITHOUT ROWID")
                        conn.execute(f"INSERT OR IGNORE INTO {t}_v1 SELECT * FROM {t} WHERE id IS NOT NULL")
                        conn.execute(f"DROP TABLE {t}")  # its indexes go with it
                        conn.execute(f"ALTER TABLE {t}_v1 RENAME TO {t}")
                        if at:
                            conn.execute(f"CREATE INDEX {t}_{at} ON {t}({at})")
                conn.execute("DROP INDEX IF EXISTS holds_expires")  # version 1
                conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def missing_columns(conn: sqlite3.Connection) -> list[str]:
    """``CallRecord``'s fields that the file's ``records`` table has no column for (an older version's file)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
    return [name for name in RECORD_FIELDS if name not in columns]


def pairs(n: int, table: str) -> str:
    """``n`` ``(key, win)`` pairs of ``table`` as an OR of primary-key lookups. (``(key, win) IN (VALUES ...)``
    reads the whole table: SQLite does not look row values up in an index.)"""
    return " OR ".join([f"({table}.key = ? AND {table}.win = ?)"] * n)


@functools.lru_cache(maxsize=64)
def load_sql(n: int) -> str:
    return ("SELECT c.key, c.win, s0, s1, s2, r0, r1, r2, t0, t1, t2, coalesce(g0, 0), coalesce(g1, 0), "
            "coalesce(g2, 0) FROM counters AS c LEFT JOIN granted AS g ON g.key = c.key AND g.win = c.win "
            f"WHERE {pairs(n, 'c')}")


STORE_SQL = ("INSERT INTO counters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key, win) DO UPDATE SET "
              + ", ".join(f"{col} = excluded.{col}" for col in
                          ("s0", "s1", "s2", "r0", "r1", "r2", "t0", "t1", "t2", "touched")))
RECORD_SQL = f"INSERT INTO records({', '.join(RECORD_FIELDS)}) VALUES ({', '.join('?' * len(RECORD_FIELDS))})"


def record_row(record: CallRecord) -> tuple[Any, ...]:
    """A record as its row: its fields in ``RECORD_FIELDS`` order, tags as JSON (None when there are none)."""
    row = record_dict(record)
    row["tags"] = json.dumps(row["tags"]) if row["tags"] else None
    return tuple(row.values())
