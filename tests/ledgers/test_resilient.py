"""A shared store going away: calls refused (closed) or allowed (open), one event per outage,
settlements journaled and replayed exactly once, reads that fail loudly instead of showing $0."""

from __future__ import annotations

import sqlite3

import pytest

from breaker import Breaker, BudgetExceeded, Budget, LedgerError, Usage
from breaker.adapter import Call
from breaker.ledgers.base import Counter, Hold, LedgerUnavailable
from breaker.ledgers.redis import Redis
from breaker.ledgers.resilient import Resilient
from breaker.ledgers.sqlite import SQLite
from breaker.pricing import NANO
from tests.conftest import Clock
from tests.ledgers.redis_server import RedisServer

CALL = Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=500)


@pytest.fixture
def server():
    s = RedisServer(keep=True).start()
    yield s
    s.close()


def guard_for(server, tmp_path, mode="closed", usd=1.0):
    events = []
    ledger = Resilient(Redis(server.url, prefix="r:", timeout=0.5), journal=tmp_path / "j.sqlite", retry_every=0)
    guard = Breaker(budgets=[Budget(usd=usd, per="global")], ledger=ledger, alerts=[events.append], loops=None,
                    telemetry=False, on_ledger_error=mode, reservation_wait=0.5)
    return guard, ledger, events


def test_closed_mode_refuses_journals_and_replays_once(server, tmp_path):
    guard, ledger, events = guard_for(server, tmp_path)
    costs = [guard.settle(guard.admit(CALL), Usage(1000, 100))]
    inflight = guard.admit(CALL)
    server.stop()
    for _ in range(3):
        with pytest.raises(BudgetExceeded) as info:
            guard.admit(CALL)
        assert info.value.reason == "ledger_unavailable" and info.value.sticky is False
        assert "unreachable" in str(info.value) and "on_ledger_error='open'" in str(info.value)
    costs.append(guard.settle(inflight, Usage(900, 300)))  # written to the journal, not lost
    assert len(ledger.journal) == 1
    with pytest.raises(LedgerError, match="cannot be read"):  # never a silent $0
        guard.spent("global")
    assert [e.kind for e in events] == ["ledger_error"]  # once per outage, not per call
    assert "journal" in events[0].message and events[0].data["mode"] == "closed"
    server.start()
    costs.append(guard.settle(guard.admit(CALL), Usage(1000, 50)))  # the store is back: replayed in the background
    assert round(guard.spent("global").usd * NANO) == sum(costs)  # a read waits for a running replay
    assert len(ledger.journal) == 0
    assert ledger.replay() == 0  # nothing left to count twice
    totals = ledger.read([Counter("global")], guard.clock())[0]
    assert totals.reserved == (0, 0, 0)  # the in-flight call's reservation was given back by the replay


def test_open_mode_allows_calls_but_enforces_this_process_spend(server, tmp_path):
    guard, ledger, events = guard_for(server, tmp_path, mode="open", usd=0.002)
    server.stop()
    costs = []
    with pytest.raises(BudgetExceeded) as info:
        for _ in range(50):
            ticket = guard.admit(CALL)
            costs.append(guard.settle(ticket, Usage(1000, ticket.patch.max_output_tokens or 500)))
    assert info.value.reason == "budget"
    assert 0 < sum(costs) <= 0.002 * NANO  # the local fallback still stops one process at the limit
    assert [e.kind for e in events if e.kind == "ledger_error"] == ["ledger_error"]  # once per outage
    assert events[0].data["mode"] == "open" and events[-1].kind == "tripped"
    server.start()
    ledger.replay()
    assert len(ledger.journal) == 0
    assert round(guard.spent("global").usd * NANO) == sum(costs)


def test_a_settlement_that_landed_before_its_answer_was_lost_is_not_counted_twice(server, tmp_path):
    inner = Redis(server.url, prefix="x:")
    ledger = Resilient(inner, journal=tmp_path / "j.sqlite")
    c = Counter("global")
    inner.settle(None, (c,), (), (700, 7, 1), 1.0, op="op-1")  # it landed...
    ledger._journal_settle("op-1", None, (c,), (700, 7, 1), 1.0, None)  # ...but the caller saw an error
    ledger._journal_settle("op-2", None, (c,), (5, 0, 0), 1.0, None)
    assert ledger.replay() == 2
    assert inner.read([c], 1.0)[0].settled == (705, 7, 1)


def test_journal_left_by_a_dead_process_is_replayed_by_the_next(tmp_path):
    path = tmp_path / "l.sqlite"
    dead = Resilient(SQLite(path), journal=tmp_path / "j.sqlite")
    dead._journal_settle("gone-1", Hold("h1", None), (Counter("global"),), (42, 1, 1), 1.0, None)
    fresh = Resilient(SQLite(path), journal=tmp_path / "j.sqlite")
    assert fresh.read([Counter("global")], 2.0)[0].settled == (42, 1, 1)  # replayed before the first read
    assert len(fresh.journal) == 0


def test_a_journal_that_cannot_be_written_keeps_settlements_in_memory_and_replays_them(tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = tmp_path / "l.sqlite"
    ledger = Resilient(SQLite(store), journal=blocker / "j.sqlite")  # its directory cannot be made
    c = Counter("global")
    ledger._journal_settle("op-1", None, (c,), (700, 7, 1), 1.0, None)  # as when the store is down
    ledger._journal_settle("op-2", None, (c,), (5, 0, 0), 1.0, None)
    assert len(ledger.journal) == 2  # held, not dropped
    assert "cannot be written" in caplog.text and "kept in this process's memory" in caplog.text
    assert caplog.text.count("cannot be written") == 1  # once per failure streak
    assert ledger.replay() == 2
    assert len(ledger.journal) == 0
    assert SQLite(store).read([c], 1.0)[0].settled == (705, 7, 1)
    assert ledger.replay() == 0  # nothing counted twice


def test_sqlite_lock_held_too_long_is_reported_not_hidden(tmp_path):
    path = tmp_path / "l.sqlite"
    ledger = SQLite(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(LedgerUnavailable, match="busy_timeout"):
            ledger.settle(None, (Counter("global"),), (), (1, 1, 1), 1.0)
    finally:
        other.execute("ROLLBACK")
    assert ledger.read([Counter("global")], 1.0)[0].settled == (0, 0, 0)


def test_engine_wraps_persistent_ledgers_only(tmp_path, redis_server):
    from breaker.ledgers import Memory

    assert isinstance(Breaker(ledger=SQLite(tmp_path / "a.sqlite"), alerts=[]).ledger, Resilient)
    assert isinstance(Breaker(ledger=Redis(redis_server.url, prefix="w:"), alerts=[]).ledger, Resilient)
    assert isinstance(Breaker(ledger=Memory(), alerts=[]).ledger, Memory)
    mine = Resilient(SQLite(tmp_path / "b.sqlite"), journal=tmp_path / "j.sqlite")
    guard = Breaker(ledger=mine, alerts=[], on_ledger_error="open")
    assert guard.ledger is mine and mine.mode == "open" and mine.on_event is not None


def test_rolling_windows_on_a_fake_clock_through_the_engine(make_ledger):
    """The engine's clock drives every ledger's windows the same way (no sleeping)."""
    clock = Clock()
    guard = Breaker(budgets=[Budget(usd=0.001, per="global", window="1m")], ledger=make_ledger(), alerts=[],
                    loops=None, telemetry=False, clock=clock, reservation_wait=0)
    spent = 0
    with pytest.raises(BudgetExceeded):
        for _ in range(20):
            ticket = guard.admit(CALL)
            spent += guard.settle(ticket, Usage(1000, ticket.patch.max_output_tokens or 500))
    assert guard.spent("global", window="1m").usd * NANO == spent
    clock.advance(61)
    assert guard.spent("global", window="1m").usd == 0
    guard.settle(guard.admit(CALL), Usage(1000, 500))  # the window freed: calls resume
