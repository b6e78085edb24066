"""Property: whatever the interleaving of reserve / settle / release from 32
threads, settled spend never passes a kill limit and equals the sum of the
costs settled."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from breaker import Breaker, Budget, Tripped, Usage
from breaker.adapter import Call

THREADS = 32

# one op: (input bound, output cap, fraction of input used, output used, what happens)
op = st.tuples(
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.floats(0, 1),
    st.integers(0, 4000),
    st.sampled_from(["settle", "settle", "settle", "fail", "release"]),
)
plans = st.lists(st.lists(op, min_size=1, max_size=6), min_size=THREADS, max_size=THREADS)


@given(plans=plans, limit_usd=st.sampled_from([0.0005, 0.002, 0.01]))
def test_settled_spend_never_passes_a_kill_limit(make_ledger, plans, limit_usd):
    ledger = make_ledger()
    guard = Breaker(budgets=[Budget(usd=limit_usd, per="global")], ledger=ledger, alerts=[], loops=None,
                    reservation_wait=0.2)
    costs: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(ops):
        start.wait()
        for inp, cap, used, out, what in ops:
            try:
                ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=inp, max_output_tokens=cap))
            except Tripped:
                continue
            if what == "release":
                guard.release(ticket)
                continue
            if what == "fail":
                guard.settle(ticket, None, error=RuntimeError("boom"))
                continue
            granted = ticket.patch.max_output_tokens or cap
            usage = Usage(int(inp * used), min(out, granted))
            cost = guard.settle(ticket, usage)
            with lock:
                costs.append(cost)

    threads = [threading.Thread(target=worker, args=(ops,)) for ops in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = guard.spent("global")
    assert spent.usd <= limit_usd
    assert round(spent.usd * 1e9) == sum(costs)
    totals = ledger.read([guard._plans.of(guard.current_session()).counters[-1]], guard.clock())[0]
    assert totals.reserved == (0, 0, 0)
