"""Async calls wait for a SQLite or Redis ledger off the event loop.

Each test holds the store's write lock and lets a callback *on the event loop*
give it back shortly after. If breaker waited for the store on the loop, that
callback could not run until the store's busy timeout had passed, and the call
would meet an unavailable store instead: refused (admission) or journaled as
an outage (settlement). No timing is asserted, only which of those happened.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from breaker import Breaker, Budget
from breaker.ledgers.base import Counter
from breaker.ledgers.sqlite import SQLite
from breaker.testing import Reply
from tests.providers.conftest import OPENAI_MODEL, messages


@pytest.fixture
def store(tmp_path):
    """A SQLite ledger whose write lock the test can hold from another connection."""
    path = tmp_path / "ledger.sqlite"
    ledger = SQLite(path, busy_timeout=3.0)  # far longer than the loop needs to give the lock back
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    yield ledger, holder
    holder.close()


def _lock_until_the_loop_runs(holder: sqlite3.Connection) -> None:
    holder.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.05, holder.rollback)


async def test_admission_waits_for_a_locked_store_off_the_event_loop(store, fake):
    ledger, holder = store
    guard = Breaker(budgets=[Budget(usd=1.0)], ledger=ledger, alerts=[], telemetry=False)
    client = guard.wrap(fake.async_openai(max_retries=0))
    async with guard.session("locked-admit") as s:
        _lock_until_the_loop_runs(holder)
        await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("a"))
        assert fake.count == 1 and s.calls == 1  # admitted once the loop gave the lock back
    assert guard.ledger.outages == 0


async def test_a_stream_settles_against_a_locked_store_off_the_event_loop(store, fake):
    ledger, holder = store
    fake.default = Reply(text="one two three four", output_tokens=40, chunks=4)
    guard = Breaker(budgets=[Budget(usd=1.0)], ledger=ledger, alerts=[], telemetry=False)
    client = guard.wrap(fake.async_openai(max_retries=0))
    async with guard.session("locked-stream") as s:
        stream = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("s"), stream=True)
        first = True
        async for _ in stream:
            if first:  # the settlement at the end of the stream meets the lock
                _lock_until_the_loop_runs(holder)
                first = False
        assert s.calls == 1 and s.tokens > 0
    assert guard.ledger.outages == 0 and len(guard.ledger.journal) == 0  # settled in the store, not journaled


async def test_a_response_settles_against_a_locked_store_off_the_event_loop(store, fake):
    ledger, holder = store
    guard = Breaker(budgets=[Budget(usd=1.0)], ledger=ledger, alerts=[], telemetry=False)
    client = guard.wrap(fake.async_openai(max_retries=0))
    resource = client.chat.completions
    original_post = resource._post  # what create() sends with: lock the store once the response is back

    async def post_then_lock(*args, **kwargs):
        response = await original_post(*args, **kwargs)
        _lock_until_the_loop_runs(holder)
        return response

    resource._post = post_then_lock
    async with guard.session("locked-settle") as s:
        await client.chat.completions.create(model=OPENAI_MODEL, messages=messages("r"))
        assert s.calls == 1 and s.tokens > 0
    assert guard.ledger.outages == 0 and len(guard.ledger.journal) == 0


async def test_a_cancelled_admission_gives_its_reservation_back(store, fake):
    ledger, holder = store
    guard = Breaker(budgets=[Budget(usd=1.0, per="global")], ledger=ledger, alerts=[], telemetry=False)
    client = guard.wrap(fake.async_openai(max_retries=0))

    def reserved() -> tuple[int, int, int]:
        return guard.ledger.read([Counter("global")], guard.clock())[0].reserved

    async with guard.session("cancelled"):
        holder.execute("BEGIN IMMEDIATE")  # the admission waits for the store in a worker thread...
        task = asyncio.create_task(client.chat.completions.create(model=OPENAI_MODEL, messages=messages("c")))
        await asyncio.sleep(0.05)
        task.cancel()  # ...its caller goes away...
        with pytest.raises(asyncio.CancelledError):
            await task
        holder.rollback()  # ...and the reservation it is then granted is given back
        await asyncio.sleep(0.2)  # the grant lands in the worker thread, then its release
        for _ in range(500):
            if reserved() == (0, 0, 0):
                break
            await asyncio.sleep(0.01)
    assert reserved() == (0, 0, 0) and fake.count == 0  # nothing held, nothing sent
