"""Stores written by an older version (issue 22 trimmed what each call writes): a SQLite file of layout 0
or 1 is upgraded in place with its reservations and settlement ids kept, and a Redis counter written without
the holds hint still gives its expired reservations back."""

from __future__ import annotations

import sqlite3
import time

from breaker.ledgers.base import Ask, Counter, Limit
from breaker.ledgers.redis import Redis
from breaker.ledgers.sqlite import VERSION, SQLite

T0 = 1_800_000_000.0
GLOBAL = (Counter("global"),)
LIMITS = (Limit(0, 0, 10**12),)

# ``holds`` and ``ops`` as layout 0 wrote them: rowid tables, with their ids in a separate index.
_LAYOUT_0 = {
    "holds": "CREATE TABLE holds(id TEXT PRIMARY KEY, expires REAL NOT NULL, a0 INTEGER NOT NULL, "
             "a1 INTEGER NOT NULL, a2 INTEGER NOT NULL, ctrs TEXT NOT NULL)",
    "ops": "CREATE TABLE ops(id TEXT PRIMARY KEY, at REAL NOT NULL)",
}


def ask(usd: int) -> Ask:
    return Ask(GLOBAL, LIMITS, (usd, 10, 1), (0, 0, 0), 1, 1)


def to_layout_0(path) -> None:
    """Rewrite a ledger file's ``holds`` and ``ops`` as layout 0 had them, rows kept."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for table, create in _LAYOUT_0.items():
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        conn.execute(f"DROP TABLE {table}")
        conn.execute(create)
        column = "expires" if table == "holds" else "at"
        conn.execute(f"CREATE INDEX {table}_{column} ON {table}({column})")
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.execute("PRAGMA user_version = 0")
    conn.execute("COMMIT")
    conn.close()


def layout(path) -> tuple[int, dict[str, str]]:
    """The file's layout version and its ``holds`` and ``ops`` tables' SQL; checks their indexes are
    the ones that version has (layout 2 dropped the one on the holds' expiry)."""
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name IN ('holds', 'ops')").fetchall())
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "ops_at" in indexes and ("holds_expires" in indexes) == (version < 2)
    return version, sql


def to_layout_1(path) -> None:
    """A ledger file as layout 1 had it: the holds' expiry indexed."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE INDEX holds_expires ON holds(expires)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_a_new_sqlite_file_has_the_current_layout(tmp_path):
    SQLite(tmp_path / "l.sqlite").close()
    version, sql = layout(tmp_path / "l.sqlite")
    assert version == VERSION and all("WITHOUT ROWID" in text for text in sql.values())


def test_a_sqlite_file_of_layout_0_is_upgraded_with_its_holds_and_settlement_ids(tmp_path):
    path = tmp_path / "l.sqlite"
    old = SQLite(path)
    held = old.reserve(ask(500), T0).handle  # in flight across the upgrade
    old.settle(None, GLOBAL, LIMITS, (70, 7, 1), T0, op="settled-before")
    old.close()
    to_layout_0(path)
    assert layout(path)[0] == 0

    ledger = SQLite(path)
    version, sql = layout(path)
    assert version == VERSION and all("WITHOUT ROWID" in text for text in sql.values())
    assert ledger.read(GLOBAL, T0 + 1)[0].reserved == (500, 10, 1)
    ledger.settle(None, GLOBAL, LIMITS, (70, 7, 1), T0 + 2, op="settled-before")  # a replay: counted once
    assert ledger.settle(held, GLOBAL, LIMITS, (300, 5, 1), T0 + 3) == (370,)
    totals = ledger.read(GLOBAL, T0 + 4)[0]
    assert totals.settled == (370, 12, 2) and totals.reserved == (0, 0, 0)
    ledger.close()
    SQLite(path).close()  # opened again: nothing left to upgrade
    assert layout(path)[0] == VERSION


def test_a_sqlite_file_of_layout_1_loses_the_holds_index_and_keeps_its_holds(tmp_path):
    path = tmp_path / "l.sqlite"
    old = SQLite(path)
    held = old.reserve(ask(500), T0).handle
    lapsing = old.reserve(Ask(GLOBAL, LIMITS, (40, 4, 1), (0, 0, 0), 1, 1, ttl=5.0), T0).handle
    old.close()
    to_layout_1(path)
    assert layout(path)[0] == 1

    ledger = SQLite(path)
    assert layout(path)[0] == VERSION == 2
    assert ledger.read(GLOBAL, T0 + 1)[0].reserved == (540, 14, 2)
    assert ledger.read(GLOBAL, T0 + 6)[0].reserved == (500, 10, 1)  # the lapsed hold given back, found by a scan
    assert lapsing is not None and ledger.settle(held, GLOBAL, LIMITS, (300, 5, 1), T0 + 7) == (300,)
    assert ledger.read(GLOBAL, T0 + 8)[0].reserved == (0, 0, 0)
    ledger.close()


def test_a_sqlite_file_of_layout_0_still_used_by_an_older_process_keeps_working(tmp_path):
    """A process of the older version writes the same columns: its rows land in the rebuilt tables."""
    path = tmp_path / "l.sqlite"
    SQLite(path).close()
    side = sqlite3.connect(path, isolation_level=None)  # what layout 0's settle wrote
    side.execute("INSERT INTO ops VALUES (?, ?)", ("from-an-older-process", T0))
    side.close()
    ledger = SQLite(path)
    ledger.settle(None, GLOBAL, LIMITS, (5, 5, 1), T0, op="from-an-older-process")
    assert ledger.read(GLOBAL, T0)[0].settled == (0, 0, 0)  # already applied by the older process
    ledger.close()


def test_a_redis_counter_without_the_holds_hint_gives_back_its_expired_reservations(redis_server):
    """Counters written before the hint (field ``x``), or by an older process that does not keep it:
    a missing hint means "look", and a hint never defers a look by more than a minute."""
    name = f"fmt{time.monotonic_ns()}"
    ledger = Redis(redis_server.url, prefix=f"{name}:", hold_ttl=10)
    key, holds = f"{name}:{{{name}}}:c:0:global", f"{name}:{{{name}}}:h:0:global"  # the documented layout
    ledger.reserve(ask(500), T0)
    assert ledger.client.hexists(key, "x")
    ledger.client.hdel(key, "x")  # as an older version left it
    assert ledger.read(GLOBAL, T0 + 11)[0].reserved == (0, 0, 0)

    ledger.reserve(ask(500), T0 + 20)
    member = ledger.client.zrange(holds, 0, 0)[0]
    ledger.client.zadd(holds, {member: T0 + 25})  # an expiry the hint does not know of
    assert ledger.read(GLOBAL, T0 + 26)[0].reserved == (500, 10, 1)  # the hint still says "not before T0+30"
    assert ledger.read(GLOBAL, T0 + 30)[0].reserved == (0, 0, 0)
    ledger.close()
