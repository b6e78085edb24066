"""``Memory.reserve`` answers the usual call (everything fits) without ``decide``: it must give exactly
what ``decide`` gives for the same state, whatever the state (fits, cut, busy, over, tripped), and
reserve exactly what it granted."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from breaker.ledgers import Memory
from breaker.ledgers.base import Ask, Counter, Limit, decide

NOW = 1_800_000_000.0
COUNTERS = (Counter("session:a"), Counter("global"), Counter("feature:f", 3600))


@st.composite
def cases(draw):
    scale = draw(st.sampled_from([10, 10_000, 10**9]))
    settled = [tuple(draw(st.integers(0, scale)) for _ in range(3)) for _ in COUNTERS]
    reserved = [tuple(draw(st.integers(0, scale)) for _ in range(3)) for _ in COUNTERS]
    trips = [(c, draw(st.integers(0, 2)), draw(st.integers(0, scale)))
             for c in range(len(COUNTERS)) if draw(st.integers(0, 6)) == 0]
    n = draw(st.integers(0, 4))
    limits = tuple(Limit(draw(st.integers(0, len(COUNTERS) - 1)), draw(st.integers(0, 2)),
                         draw(st.integers(0, 3 * scale))) for _ in range(n))
    units_max = draw(st.integers(0, 2**16))
    ask = Ask(
        COUNTERS, limits,
        fixed=tuple(draw(st.integers(0, scale)) for _ in range(3)),  # type: ignore[arg-type]
        per_unit=tuple(draw(st.sampled_from([0, 1, 3, 7, 60_000])) for _ in range(3)),  # type: ignore[arg-type]
        units_max=units_max, units_min=draw(st.integers(0, units_max)), patient=draw(st.booleans()),
    )
    return settled, reserved, trips, ask


def ledger_in(settled, reserved, trips) -> Memory:
    """A Memory ledger brought to that state by its own operations."""
    ledger = Memory()
    for counter, amount in zip(COUNTERS, settled):
        ledger.settle(None, (counter,), (), amount, NOW)
    for counter, amount in zip(COUNTERS, reserved):  # a reservation of exactly `amount`, under no limit
        assert ledger.reserve(Ask((counter,), (), amount, (0, 0, 0), 0, 0), NOW).status == "ok"
    for c, metric, needed in trips:
        ledger.trip(COUNTERS[c], metric, needed, NOW)
    return ledger


@settings(max_examples=400, deadline=None)
@given(case=cases())
@example(case=(  # two limits on a window's tripped metric, room under the first only (was answered "over")
    [(0, 0, 0), (0, 0, 0), (0, 1, 0)], [(0, 0, 0), (0, 0, 0), (0, 0, 0)], [(2, 1, 0)],
    Ask(COUNTERS, (Limit(2, 1, 1), Limit(2, 1, 0)), (0, 0, 0), (0, 0, 0), 0, 0)))
def test_reserve_equals_decide(case):
    settled, reserved, trips, ask = case
    ledger = ledger_in(settled, reserved, trips)
    tripped = {(c, m) for c, m, _ in trips}
    state = []
    for lim in ask.limits:
        s, r = settled[lim.counter][lim.metric], reserved[lim.counter][lim.metric]
        marked = (lim.counter, lim.metric) in tripped
        if marked and COUNTERS[lim.counter].window:  # a window's marker lifts once the window has room again
            needed = next(n for c, m, n in trips if (c, m) == (lim.counter, lim.metric))
            marked = s + needed > lim.limit
        state.append((s, r, marked))
    want = decide(ask, state)
    got = ledger.reserve(ask, NOW)
    assert (got.status, got.units, got.blocked, got.settled, got.reserved) == (
        want.status, want.units, want.blocked, want.settled, want.reserved)
    after = [t.reserved for t in ledger.read(COUNTERS, NOW)]
    if got.status == "ok":
        f, p, u = ask.fixed, ask.per_unit, got.units
        worst = tuple(f[m] + p[m] * u for m in range(3))
        assert after == [tuple(r[m] + worst[m] for m in range(3)) for r in reserved]
    else:
        assert after == [tuple(r) for r in reserved]
