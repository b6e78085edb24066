"""Holds that last as long as the call (issue 19): a reservation is renewed while its call or
stream is alive, so a call longer than the hold's TTL is never joined by another against the
same money (+78% over a kill limit before, reproduced with ``clock=``); a call abandoned
without settling stops being renewed and expires like a crashed worker's."""

from __future__ import annotations

import gc
import time
import uuid

import pytest

from breaker import Breaker, BudgetExceeded, Budget, Usage
from breaker.adapter import Call
from breaker.ledgers import Memory
from breaker.ledgers.base import Ask, Counter, Limit
from breaker.ledgers.redis import Redis
from breaker.ledgers.sqlite import SQLite
from breaker.testing import Reply
from tests.conftest import Clock, genai_nano
from tests.ledgers.conftest import MODEL

CALL = Call(MODEL, "openai", input_tokens=1000, max_output_tokens=500)
WORST = 1000 * 150 + 500 * 600  # gpt-4o-mini: $0.15 / $0.60 per million tokens, in nano-USD
ONE_CALL_USD = (WORST + WORST // 3) / 1e9  # one call's worst case fits, two do not


def guard_for(ledger, clock) -> Breaker:
    return Breaker(budgets=[Budget(usd=ONE_CALL_USD, per="global")], ledger=ledger, alerts=[], loops=None,
                   telemetry=False, clock=clock, reservation_wait=0)


def test_a_call_in_flight_past_its_hold_ttl_keeps_its_hold(make_ledger):
    clock = Clock()
    guard = guard_for(make_ledger(), clock)
    long_call = guard.admit(CALL)
    clock.advance(2_000)  # far past the 600 s hold: the call is still waiting for its answer
    with pytest.raises(BudgetExceeded) as info:
        guard.admit(CALL)  # the money is still held by the call in flight
    assert info.value.reason == "busy" and info.value.sticky is False
    cost = guard.settle(long_call, Usage(1000, 500))
    guard.settle(guard.admit(Call(MODEL, "openai", input_tokens=10, max_output_tokens=10)), Usage(10, 10))
    assert round(guard.spent("global").usd * 1e9) <= round(ONE_CALL_USD * 1e9)  # the kill limit held
    assert cost == WORST
    totals = guard.ledger.read([Counter("global")], clock())[0]
    assert totals.reserved == (0, 0, 0)


def test_an_abandoned_call_is_not_renewed_and_expires_like_a_crashed_workers(make_ledger):
    inner = make_ledger()
    if isinstance(inner, Memory):
        pytest.skip("Memory has no reservation expiry (one process: an abandoned call is its own)")
    clock = Clock()
    guard = guard_for(inner, clock)
    guard.admit(CALL)  # dropped: no reference, never settled
    gc.collect()
    clock.advance(601)
    guard.settle(guard.admit(CALL), Usage(1000, 100))  # admitted: the abandoned hold lapsed


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_the_background_thread_renews_on_a_real_clock(kind, tmp_path, redis_server):
    """Nothing else happens in this process while the call runs: the renewal thread keeps the hold,
    as seen from another process's view of the store (a ledger object of its own)."""
    if kind == "sqlite":
        inner, other = SQLite(tmp_path / "l.sqlite", hold_ttl=0.3), SQLite(tmp_path / "l.sqlite")
    else:
        prefix = f"rn{uuid.uuid4().hex[:8]}:"
        inner, other = Redis(redis_server.url, prefix=prefix, hold_ttl=0.3), Redis(redis_server.url, prefix=prefix)
    guard = guard_for(inner, time.time)
    call = guard.admit(CALL)
    time.sleep(1.0)  # three hold TTLs
    big = Ask((Counter("global"),), (Limit(0, 0, round(ONE_CALL_USD * 1e9)),), (150_000, 1000, 1), (600, 1, 0), 500,
              16)
    assert other.reserve(big, time.time()).status == "busy"  # still held
    assert other.read([Counter("global")], time.time())[0].reserved[0] == WORST
    guard.settle(call, Usage(1000, 100))
    assert other.read([Counter("global")], time.time())[0].reserved == (0, 0, 0)
    assert guard.ledger.renew() == 0  # nothing left to renew


def test_a_stream_read_past_its_hold_ttl_keeps_its_hold(make_ledger, fake):
    clock = Clock()
    guard = guard_for(make_ledger(), clock)
    client = guard.wrap(fake.openai(max_retries=0))
    fake.push(Reply(text=" ".join(["w"] * 20), input_tokens=300, output_tokens=20))
    with guard.session("streaming"):
        stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 1000}],
                                                max_tokens=500, stream=True)  # holds about one CALL's worst case
        next(stream)
        clock.advance(2_000)  # the agent keeps reading for half an hour
        with guard.session("another"), pytest.raises(BudgetExceeded):
            guard.admit(CALL)
        rest = list(stream)
    assert rest and fake.count == 1
    assert round(guard.spent("global").usd * 1e9) == genai_nano(Usage(300, 20), MODEL, "openai")


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_hold_ttl_is_configurable(kind, tmp_path, redis_server):
    inner = (SQLite(tmp_path / "l.sqlite", hold_ttl="30s") if kind == "sqlite"
             else Redis(redis_server.url, prefix=f"ttl{uuid.uuid4().hex[:8]}:", hold_ttl=30))
    c = Counter("global")
    t0 = 1_800_000_000.0
    assert inner.reserve(Ask((c,), (Limit(0, 0, 10**9),), (10, 1, 1), (0, 0, 0), 1, 1), t0).status == "ok"
    assert inner.read([c], t0 + 29)[0].reserved == (10, 1, 1)
    assert inner.read([c], t0 + 30)[0].reserved == (0, 0, 0)
