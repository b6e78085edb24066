"""Fork safety (issue 19): a child forked from a process that made async calls on SQLite or Redis
makes its own (they hung: the engine's worker pools were inherited without their threads), even
when another parent thread held the ledger's lock at the instant of the fork. Real ``os.fork``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid

import pytest

from breaker import Breaker, Budget, Usage
from breaker.adapter import Call
from breaker.ledgers.base import Counter
from breaker.ledgers.redis import Redis
from breaker.ledgers.sqlite import SQLite
from tests.ledgers.conftest import journaled

CALL = Call("gpt-4o-mini", "openai", input_tokens=100, max_output_tokens=50)


def run_child(child) -> int:
    """Fork; the child runs ``child()`` and exits 0 if it returned within 10 s. The parent's exit code of it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9  # hung


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_forked_child_makes_its_own_async_calls(kind, tmp_path, redis_server):
    inner = (SQLite(tmp_path / "l.sqlite") if kind == "sqlite"
             else Redis(redis_server.url, prefix=f"fk{uuid.uuid4().hex[:8]}:", timeout=2))
    guard = Breaker(budgets=[Budget(usd=1.0, per="global")], ledger=journaled(inner, tmp_path), alerts=[],
                    loops=None, telemetry=False)

    async def calls(n: int) -> None:
        for _ in range(n):
            ticket = await guard.admit_async(CALL)
            await guard.settle_async(ticket, Usage(100, 10))

    asyncio.run(calls(3))  # the parent's worker pools and connections exist now
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:  # another parent thread is inside the ledger at the instant of the fork
        lock = inner._write if kind == "sqlite" else inner._verify_lock
        with lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    try:
        code = run_child(lambda: asyncio.run(asyncio.wait_for(calls(3), 10)))
    finally:
        release.set()
        holder.join()
    assert code == 0, "the forked child's async calls failed or hung"
    asyncio.run(calls(1))  # the parent is unaffected
    assert guard.ledger.read([Counter("global")], time.time())[0].settled[2] == 7  # 3 + 3 (child) + 1
