"""The smaller store items of issue 19: concurrent first opens of a new SQLite ledger, a Redis that
stops answering never stalls a call, and a journal replay runs off the caller's path; and (issue 22) the
Redis scripts' string answers read the same through a client that decodes replies."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import time
import uuid

import pytest
import redis

from breaker import BudgetExceeded, Usage
from breaker.adapter import Call
from breaker.ledgers.base import Ask, Counter, LedgerMisconfigured, Limit
from breaker.ledgers.redis import Redis
from breaker.ledgers.sqlite import SQLite
from tests.ledgers.conftest import guard_on, journaled

CALL = Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=100)
PROCS = 6


def _open_at_once(path: str, barrier, out: str) -> None:
    barrier.wait(30)
    try:
        SQLite(path).settle(None, (Counter("global"),), (), (1, 1, 1), 1.0)
        result = "ok"
    except Exception as e:  # noqa: BLE001 - reported to the parent
        result = f"{type(e).__name__}: {e}"
    with open(out, "w") as f:
        json.dump(result, f)


def test_processes_opening_a_new_sqlite_ledger_at_once_all_succeed(tmp_path):
    """1.5% of concurrent first opens failed "database is locked": the switch of a new file to WAL
    does not wait out the busy timeout. Forked processes released at one barrier, 8 new files."""
    ctx = mp.get_context("fork")
    for trial in range(8):
        path = str(tmp_path / f"new-{trial}.sqlite")
        barrier = ctx.Barrier(PROCS)
        outs = [str(tmp_path / f"out-{trial}-{i}.json") for i in range(PROCS)]
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier, outs[i])) for i in range(PROCS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [json.load(open(o)) for o in outs] == ["ok"] * PROCS
        assert SQLite(path).read([Counter("global")], 1.0)[0].settled == (PROCS, PROCS, PROCS)


def test_a_redis_that_stops_answering_never_stalls_a_call(own_redis, tmp_path):
    """A stopped (SIGSTOP) server accepts connections but never answers: every call waits for the
    socket timeout once, then the store is an outage and calls fail fast until it answers."""
    guard = guard_on(journaled(Redis(own_redis.url, prefix="stop:", timeout=0.3), tmp_path))
    guard.ledger.retry_every = 5.0
    ticket = guard.admit(CALL)
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        guard.settle(ticket, Usage(1000, 10))  # journaled after one timeout
        for _ in range(5):
            with pytest.raises(BudgetExceeded) as info:
                guard.admit(CALL)
            assert info.value.reason == "ledger_unavailable"
        assert time.monotonic() - started < 2.0  # one 0.3 s timeout, not one per call, never forever
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert len(guard.ledger.journal) == 1


def test_a_users_redis_client_without_a_deadline_is_refused_at_construction():
    with pytest.raises(LedgerMisconfigured, match="socket_timeout"):
        Redis(redis.Redis(host="127.0.0.1", port=1, socket_timeout=None))
    Redis(redis.Redis(host="127.0.0.1", port=1, socket_timeout=2))  # with one: fine


def test_a_users_redis_client_that_decodes_replies_works_as_a_bytes_one(redis_server):
    """The scripts answer in strings (``reserve``'s status and figures, ``settle``'s figures): a client made
    with ``decode_responses=True`` hands them over as ``str``, and every figure reads the same."""
    c = Counter("global")
    for decode in (False, True):
        client = redis.Redis.from_url(redis_server.url, socket_timeout=5, decode_responses=decode)
        ledger = Redis(client, prefix=f"dec{uuid.uuid4().hex[:8]}:")
        grant = ledger.reserve(Ask((c,), (Limit(0, 0, 1000),), (100, 10, 1), (1, 1, 0), 50, 1), 1.0)
        assert (grant.status, grant.units, grant.settled, grant.reserved) == ("ok", 50, (0,), 0)
        assert ledger.settle(grant.handle, (c,), (Limit(0, 0, 1000),), (120, 60, 1), 2.0) == (120,)
        assert ledger.settle(None, (c,), (), (1, 1, 1), 3.0) == ()
        refused = ledger.reserve(Ask((c,), (Limit(0, 0, 1000),), (900, 10, 1), (1, 1, 0), 50, 1), 4.0)
        assert (refused.status, refused.blocked, refused.settled) == ("over", 0, (121,))
        assert ledger.read([c], 4.0)[0].settled == (121, 61, 2)
        ledger.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_long_journal_is_replayed_off_the_callers_path(kind, tmp_path, redis_server):
    """A 1,457-entry replay made one user's call take 12.8 s. Now it runs in the background, in
    batches: the call returns while entries are still waiting, and a read waits for all of them."""
    inner = SQLite(tmp_path / "l.sqlite") if kind == "sqlite" else Redis(redis_server.url, prefix=f"rp{os.getpid()}:")
    ledger = journaled(inner, tmp_path)
    ledger._journal_settle(f"op-{kind}-0", None, (Counter("global"),), (1000, 10, 1), 1.0, None)
    with sqlite3.connect(ledger.journal.path) as dead:  # the rest left by a process that died in an outage
        (kind_, payload), = dead.execute("SELECT kind, payload FROM journal").fetchall()
        dead.executemany("INSERT INTO journal(op, kind, payload) VALUES (?, ?, ?)",
                         [(f"op-{kind}-{n}", kind_, payload) for n in range(1, 1457)])
    guard = guard_on(ledger, usd=100.0)
    guard.settle(guard.admit(CALL), Usage(1000, 10))
    assert len(ledger.journal) > 0  # the call did not wait for the replay
    assert guard.spent("global").calls == 1458 and len(ledger.journal) == 0
    assert ledger.replay() == 0
