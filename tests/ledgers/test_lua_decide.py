"""The Lua copy of ``decide()`` (it must run inside Redis) agrees with the Python one on every input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker.ledgers.base import Ask, Counter, Limit, decide

BIG = 2**52  # amounts stay exact in Lua's doubles below 2**53


@st.composite
def cases(draw):
    scale = draw(st.sampled_from([10, 10_000, 10**9, BIG // 4]))
    n = draw(st.integers(0, 5))
    limits = tuple(Limit(0, draw(st.integers(0, 2)), draw(st.integers(0, scale))) for _ in range(n))
    state = [(draw(st.integers(0, scale)), draw(st.integers(0, scale)), draw(st.booleans() if draw(st.integers(0, 5)) == 0
              else st.just(False))) for _ in range(n)]
    units_max = draw(st.integers(1, 2**20))
    ask = Ask(
        (Counter("global"),), limits,
        fixed=tuple(draw(st.integers(0, scale)) for _ in range(3)),  # type: ignore[arg-type]
        per_unit=tuple(draw(st.sampled_from([0, 1, 3, 7, 60_000, 2**20 + 1])) for _ in range(3)),  # type: ignore[arg-type]
        units_max=units_max, units_min=draw(st.integers(1, units_max)), patient=draw(st.booleans()),
    )
    return ask, state


@pytest.fixture(scope="module")
def lua(redis_server):
    from breaker.ledgers.redis import Redis

    ledger = Redis(redis_server.url, prefix="decide:")
    yield ledger
    ledger.close()


@settings(max_examples=150)
@given(case=cases())
def test_lua_decide_equals_python_decide(lua, case):
    ask, state = case
    want = decide(ask, state)
    got = lua.lua_decide(ask, state)
    assert (got.status, got.units, got.blocked, got.reserved) == (want.status, want.units, want.blocked, want.reserved)


def test_floor_division_is_exact_near_the_edge(lua):
    # avail // per_unit with a remainder of 1 just below 2**53: a naive math.floor(a / b) rounds up.
    pu = 3
    limit = 2**53 - 2  # avail = limit, divisible by pu? (2**53 - 2) % 3 == 0 -> use limit - 1
    ask = Ask((Counter("global"),), (Limit(0, 0, limit - 1),), (0, 0, 0), (pu, 0, 0), 2**62, 1, patient=False)
    want = decide(ask, [(0, 0, False)])
    got = lua.lua_decide(ask, [(0, 0, False)])
    assert got.units == want.units == (limit - 1) // pu
