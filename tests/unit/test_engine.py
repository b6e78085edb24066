"""The engine with the real Memory ledger: sessions, budgets, trips, degradation."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading

import pytest

from breaker import (
    Breaker,
    Budget,
    BudgetExceeded,
    ConfigError,
    Degrade,
    LoopDetected,
    LoopPolicy,
    SessionKilled,
    Tripped,
    Usage,
)
from breaker.adapter import Call
from breaker.ledgers import Memory
from tests.conftest import Clock

MINI = "gpt-4o-mini"  # $0.15 / $0.60 per million tokens


_fingerprints = itertools.count()


def call(n: int | None = None, *, model: str = MINI, inp: int = 1000, out: int | None = 500) -> Call:
    """A distinct request each time (so loop detection stays out of budget tests)."""
    return Call(model, "openai", input_tokens=inp, max_output_tokens=out, fingerprint=next(_fingerprints))


def run(guard: Breaker, n: int = 1, usage: Usage = Usage(1000, 500), **kw) -> None:
    for _ in range(n):
        ticket = guard.admit(call(**kw))
        guard.settle(ticket, usage)


class Sink(list):
    def __call__(self, event):
        self.append(event)

    def kinds(self):
        return [e.kind for e in self]


def test_session_figures_and_attribution():
    guard = Breaker(alerts=[])
    with guard.session("t-1", feature="support", user="acme", tags={"team": "cx"}) as s:
        run(guard, 3)
        assert s.calls == 3
        assert s.tokens == 4500
        assert s.cost_usd == pytest.approx(3 * (1000 * 0.15 + 500 * 0.6) / 1e6)
        assert s.remaining_usd is None  # no USD budget applies
    assert guard.spent("feature", "support").calls == 3
    assert guard.spent("user", "acme").tokens == 4500
    assert guard.spent("global").calls == 3


def test_calls_outside_a_session_count_against_global_budgets():
    guard = Breaker(budgets=[Budget(calls=2, per="global")], alerts=[])
    run(guard, 2)
    with pytest.raises(BudgetExceeded):
        run(guard, 1)
    assert guard.spent("session", "anonymous").calls == 2


def test_nested_sessions_inherit_and_count_for_both():
    guard = Breaker(alerts=[])
    with guard.session("outer", feature="f", user="u") as outer:
        run(guard, 1)
        with guard.session("inner") as inner:
            assert (inner.feature, inner.user, inner.parent) == ("f", "u", outer)
            run(guard, 2)
        assert inner.calls == 2
        assert outer.calls == 3


def test_sessions_propagate_into_tasks_and_copied_threads():
    guard = Breaker(alerts=[])
    seen: list[str] = []

    async def task():
        seen.append(guard.current_session().id)
        run(guard, 1)

    async def main():
        async with guard.session("async-s") as s:
            await asyncio.gather(task(), task())
            return s.calls

    assert asyncio.run(main()) == 2
    with guard.session("thread-s") as s:
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(lambda: (seen.append(guard.current_session().id), run(guard, 1)),))
        t.start()
        t.join()
        assert s.calls == 1
    assert seen == ["async-s", "async-s", "thread-s"]


def test_decorator_gives_each_call_a_fresh_session():
    guard = Breaker(alerts=[])
    ids = []

    @guard.session(feature="triage")
    def handle():
        s = guard.current_session()
        ids.append(s.id)
        run(guard, 1)
        return s.feature

    @guard.session(feature="triage")
    async def ahandle():
        ids.append(guard.current_session().id)

    assert handle() == "triage" and handle() == "triage"
    asyncio.run(ahandle())
    assert len(set(ids)) == 3
    assert guard.spent("feature", "triage").calls == 2


def test_kill_is_not_swallowed_by_except_exception_and_becomes_session_killed():
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[sink])
    attempts = 0
    with pytest.raises(SessionKilled) as info:
        with guard.session("ticket-42"):
            while attempts < 100:
                attempts += 1
                try:
                    run(guard, 1)
                except Exception:  # what agent code does: it must not catch the kill
                    pass
    killed = info.value
    assert isinstance(killed.__cause__, BudgetExceeded) and isinstance(killed.__cause__, Tripped)
    assert not isinstance(killed.__cause__, Exception)
    assert killed.scope == "session" and killed.key == "ticket-42"
    message = str(killed)
    assert "Session 'ticket-42'" in message and "$0.0010" in message and "refused" in message
    assert killed.limit_usd == pytest.approx(0.001)
    assert killed.spent_usd <= 0.001
    assert guard.spent("session", "ticket-42").usd <= 0.001
    assert sink.kinds().count("tripped") == 1


def test_trip_is_sticky_and_nothing_reaches_the_ledger_afterwards():
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[])
    with pytest.raises(SessionKilled):
        with guard.session("s"):
            while True:
                run(guard, 1)
    calls_before = guard.spent("session", "s").calls
    for _ in range(5):  # a retry loop that catches everything still spends nothing
        with pytest.raises(SessionKilled):
            with guard.session("s"):
                run(guard, 1, usage=Usage(1, 1))
    assert guard.spent("session", "s").calls == calls_before


def test_output_cap_is_lowered_to_what_the_budget_can_pay():
    guard = Breaker(budgets=[Budget(usd=0.0010)], alerts=[])
    with guard.session("s"):
        # input 1000 tokens worst case = $0.00015; remaining $0.00085 pays 1416 output tokens at $0.6/M
        ticket = guard.admit(call(out=100_000))
        assert ticket.patch.max_output_tokens == 1416
        guard.settle(ticket, Usage(1000, 1416))
        assert guard.spent("session", "s").usd <= 0.001
        # a cap the caller chose is never raised
        guard2 = Breaker(alerts=[])
        assert guard2.admit(call(out=50)).patch.max_output_tokens is None


def test_no_cap_is_injected_when_the_budget_does_not_bind():
    guard = Breaker(budgets=[Budget(usd=100)], alerts=[])
    ticket = guard.admit(call(out=None))
    assert ticket.patch.max_output_tokens is None
    tight = Breaker(budgets=[Budget(usd=0.005)], alerts=[])  # less than gpt-4o-mini's 16,384-token ceiling
    assert tight.admit(call(out=None)).patch.max_output_tokens is not None


def test_token_and_call_budgets():
    guard = Breaker(budgets=[Budget(tokens=5000), Budget(calls=3, per="user")], alerts=[])
    with guard.session("a", user="u"):
        run(guard, 1, usage=Usage(1000, 500), inp=1000, out=500)
        ticket = guard.admit(call(1, inp=1000, out=5000))  # 5000 - 1500 - 1000 = 2500 output tokens left
        assert ticket.patch.max_output_tokens == 2500
        guard.settle(ticket, Usage(1000, 100))
    with pytest.raises(SessionKilled, match="3 calls"):
        with guard.session("b", user="u"):
            run(guard, 2)


def test_windowed_budget_reopens_when_the_window_frees():
    clock = Clock()
    sink = Sink()
    guard = Breaker(budgets=[Budget(calls=2, window="1m")], alerts=[sink], clock=clock)
    with guard.session("s") as s:
        run(guard, 2)
        with pytest.raises(BudgetExceeded, match="window frees"):
            run(guard, 1)
        clock.advance(30)
        with pytest.raises(BudgetExceeded):
            run(guard, 1)
        clock.advance(32)  # one minute and one bucket after the spend
        run(guard, 1)
        assert s.calls == 3
    assert sink.kinds().count("tripped") == 1


def test_feature_budget_with_key_and_tag_budget():
    guard = Breaker(
        budgets=[Budget(calls=1, per="feature", key="summarize"), Budget(calls=2, per="team")], alerts=[]
    )
    with guard.session(feature="chat", tags={"team": "a"}):
        run(guard, 2)  # the summarize budget does not apply; team a has 2
    with pytest.raises(SessionKilled, match="summarize"):
        with guard.session(feature="summarize", tags={"team": "b"}):
            run(guard, 2)
    with pytest.raises(SessionKilled, match="team='a'"):
        with guard.session(feature="chat", tags={"team": "a"}):
            run(guard, 1)


def test_a_global_trip_passes_inner_sessions_and_stops_at_the_outermost():
    guard = Breaker(budgets=[Budget(calls=1, per="global")], alerts=[])
    with pytest.raises(SessionKilled):
        with guard.session("outer"):
            with guard.session("inner"):
                run(guard, 2)


def test_thresholds_fire_once_each():
    sink = Sink()
    guard = Breaker(budgets=[Budget(calls=10, warn_at=(0.5, 0.8))], alerts=[sink])
    with guard.session("s"):
        run(guard, 9)
    fractions = [e.fraction for e in sink if e.kind == "threshold"]
    assert fractions == [0.5, 0.8]


def test_warn_budget_never_refuses_but_alerts_at_100_percent():
    sink = Sink()
    guard = Breaker(budgets=[Budget(calls=2, on_exceed="warn", warn_at=())], alerts=[sink])
    with guard.session("s") as s:
        run(guard, 4)
        assert s.calls == 4
    assert [e.fraction for e in sink if e.kind == "threshold"] == [1.0]


def test_degrade_at_switches_to_the_cheaper_model():
    sink = Sink()
    guard = Breaker(
        budgets=[Budget(usd=0.01, degrade_at=0.5)],
        degrade=Degrade(model_map={"gpt-4o": MINI}, max_output_tokens=256),
        alerts=[sink],
    )
    with guard.session("s"):
        t = guard.admit(call(model="gpt-4o", inp=1000, out=500))
        assert not t.degraded
        guard.settle(t, Usage(1000, 500))  # $0.0075: past 50%
        t = guard.admit(call(1, model="gpt-4o", inp=1000, out=500))
        assert t.degraded and t.model == MINI and t.patch.model == MINI
        assert t.patch.max_output_tokens == 256
        guard.settle(t, Usage(1000, 200))
    assert "degraded" in sink.kinds()


def test_on_exceed_degrade_tries_the_degraded_call_before_killing():
    guard = Breaker(
        budgets=[Budget(usd=0.002, on_exceed="degrade")],
        degrade=Degrade(model_map={"gpt-4o": MINI}),
        alerts=[],
    )
    with guard.session("s"):
        # gpt-4o: 1000 in ($0.0025) does not fit; gpt-4o-mini does
        t = guard.admit(call(model="gpt-4o", inp=1000, out=100))
        assert t.model == MINI and t.degraded


def test_waits_for_in_flight_reservations_instead_of_tripping():
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[], reservation_wait=5)
    with guard.session("s"):
        first = guard.admit(call(inp=1000, out=1000))  # reserves $0.00075 of $0.001
        released = threading.Timer(0.1, lambda: guard.settle(first, Usage(1000, 10)))
        released.start()
        second = guard.admit(call(1, inp=1000, out=1000))  # waits for `first`, then fits
        assert second.patch.max_output_tokens is None
        guard.settle(second, Usage(1000, 10))
        released.join()


def test_busy_refusal_does_not_trip():
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[], reservation_wait=0.05)
    with guard.session("s"):
        held = guard.admit(call(inp=1000, out=1300))  # holds $0.00093 of $0.001
        with pytest.raises(BudgetExceeded) as info:
            guard.admit(call(1, inp=1000, out=1000))
        assert info.value.reason == "busy" and not info.value.sticky
        guard.settle(held, Usage(10, 10))
        guard.settle(guard.admit(call(2)), Usage(10, 10))  # not tripped


def test_unknown_price_warn_enforces_tokens_and_counts_unpriced():
    sink = Sink()
    guard = Breaker(budgets=[Budget(tokens=3000)], unknown_price="warn", alerts=[sink])
    with pytest.raises(SessionKilled):
        with guard.session("s") as s:
            run(guard, 5, model="my-private-model", usage=Usage(1000, 400), inp=1000, out=400)
    assert s.unpriced_calls == 2 and s.cost_usd == 0 and s.tokens == 2800
    assert sink.kinds().count("unknown_price") == 1


def test_record_accounts_and_trips_the_next_call():
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[])
    with pytest.raises(SessionKilled):
        with guard.session("s"):
            cost = guard.record("gpt-4o", Usage(1000, 100))
            assert cost == pytest.approx(0.0035)  # already past the limit: spent, so recorded
            run(guard, 1)
    assert guard.spent("session", "s").calls == 1


def test_failed_call_counts_a_call_and_release_counts_nothing():
    guard = Breaker(alerts=[])
    with guard.session("s") as s:
        guard.settle(guard.admit(call(1)), None, error=RuntimeError("500"))
        guard.release(guard.admit(call(2)))
        t = guard.admit(call(3))
        guard.settle(t, Usage(10, 10))
        guard.settle(t, Usage(10, 10))  # idempotent
        assert (s.calls, s.tokens) == (2, 20)


def test_loop_detection_runs_before_budgets():
    guard = Breaker(budgets=[Budget(calls=3)], loops=LoopPolicy(max_identical=2), alerts=[])
    with pytest.raises(SessionKilled) as info:
        with guard.session("s"):
            for _ in range(3):
                guard.settle(guard.admit(Call(MINI, "openai", 10, 10, fingerprint="same")), Usage(10, 10))
    assert isinstance(info.value.__cause__, LoopDetected)
    assert guard.spent("session", "s").calls == 2


def test_memory_ledger_forgets_idle_counters_but_not_active_ones():
    clock = Clock()
    ledger = Memory(idle_ttl="1h")
    guard = Breaker(ledger=ledger, alerts=[], clock=clock)
    for i in range(50):
        with guard.session(f"s{i}"):
            run(guard, 1)
    with guard.session("active"):
        run(guard, 1)
    before = len(ledger)
    clock.advance(1800)
    with guard.session("active"):
        run(guard, 1)
    clock.advance(1900)
    ledger.sweep(clock())
    assert len(ledger) < before
    assert guard.spent("session", "active").calls == 2
    assert guard.spent("session", "s0").calls == 0


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Budget(), "needs a limit"),
        (lambda: Budget(usd=-1), "more than 0"),
        (lambda: Budget(usd="2"), "number of dollars"),
        (lambda: Budget(tokens=1.5), "whole number"),
        (lambda: Budget(usd=1, window="fortnight"), "'30s', '10m'"),
        (lambda: Budget(usd=1, on_exceed="explode"), "'kill', 'degrade' or 'warn'"),
        (lambda: Budget(usd=1, warn_at=(80,)), "fractions between 0 and 1"),
        (lambda: Budget(usd=1, per="global", key="x"), "takes no key"),
        (lambda: Breaker(budgets=[Budget(usd=1, degrade_at=0.8)]), "degrade=Degrade"),
        (lambda: Breaker(budgets=["$5"]), "Budget objects"),
        (lambda: Breaker(unknown_price="ignore"), "'error' or 'warn'"),
        (lambda: Breaker(alerts=["slack"]), "callables"),
        (lambda: Breaker(ledger=object()), "lacks reserve"),
        (lambda: Degrade(reasoning_effort="max"), "use one of"),
        (lambda: LoopPolicy(max_identical=0), "at least 1"),
    ],
)
def test_bad_configuration_says_what_to_write(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


def test_a_trip_inside_a_task_group_still_becomes_session_killed():
    if not hasattr(asyncio, "TaskGroup"):
        pytest.skip("asyncio.TaskGroup needs Python 3.11")
    guard = Breaker(budgets=[Budget(calls=1)], alerts=[])

    async def subagent():
        run(guard, 2)

    async def main():
        async with guard.session("tg"):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(subagent())

    with pytest.raises(SessionKilled) as info:
        asyncio.run(main())
    assert isinstance(info.value.tripped, BudgetExceeded)


def test_a_caught_kill_ends_the_block_but_stays_sticky():
    guard = Breaker(budgets=[Budget(calls=1)], alerts=[])
    with guard.session("caught") as s:
        try:
            run(guard, 2)
        except BaseException:  # a plugin's graceful stop, or agent code catching everything
            pass
    assert s.tripped is not None and s.calls == 1
    with pytest.raises(SessionKilled):  # every later call in the session is refused
        with guard.session("caught"):
            run(guard, 1)
    assert s.calls == 1


def test_input_estimate_option_is_validated():
    assert Breaker(alerts=[], input_estimate="loose").input_estimate == "loose"
    with pytest.raises(ConfigError, match="'strict'"):
        Breaker(input_estimate="exact")


def test_a_trimming_degrade_reserves_the_trimmed_request():
    guard = Breaker(
        budgets=[Budget(usd=0.01, degrade_at=0.01)],
        degrade=Degrade(keep_last_messages=4),
        alerts=[],
    )
    asked = []

    def trimmed(n: int) -> int:
        asked.append(n)
        return 500

    with guard.session("trim"):
        guard.settle(guard.admit(call()), Usage(1000, 500))  # past 1%: later calls are degraded
        big = Call(MINI, "openai", input_tokens=60_000, max_output_tokens=100, fingerprint="big", trimmed_input=trimmed)
        ticket = guard.admit(big)
        assert ticket.degraded and ticket.patch.keep_last_messages == 4
        assert asked == [4] and ticket.call.input_tokens == 500
        assert ticket.reserved[1] == 500 + 100  # tokens reserved: the trimmed input and the output cap


def test_require_unpatched_refuses_a_call_that_only_fits_changed_and_gives_the_money_back():
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[])
    with guard.session("hooks") as s:
        fits = guard.admit(call(inp=100, out=100))
        guard.require_unpatched(fits, layer="a hook", model_fix="-", cap_fix="-")  # no patch: nothing to do
        guard.settle(fits, Usage(100, 100))
        needs_cap = guard.admit(call(inp=1000, out=100_000))
        assert needs_cap.patch.max_output_tokens is not None
        with pytest.raises(BudgetExceeded, match="a hook cannot lower that; set max_tokens") as info:
            guard.require_unpatched(needs_cap, layer="a hook", model_fix="-", cap_fix="set max_tokens")
        assert not info.value.sticky and s.tripped is None
        assert s.remaining_usd == pytest.approx(0.001 - (100 * 0.15 + 100 * 0.6) / 1e6)  # reservation returned
        assert s.calls == 1


def test_a_call_abandoned_mid_request_bills_its_input_bound_and_is_no_failure():
    """``settle(ticket, error=<CancelledError or KeyboardInterrupt>)``: the provider may have read the
    input, so the input bound is billed; the loop detector does not count it as a failed call."""
    guard = Breaker(alerts=[], telemetry=False, loops=LoopPolicy(max_errors=1))
    with guard.session("abandoned") as s:
        for exc in (asyncio.CancelledError(), KeyboardInterrupt()):
            guard.settle(guard.admit(call(inp=1000)), error=exc)
        assert s.calls == 2 and s.tokens == 2000  # input only, once per call
        assert s.cost_usd == pytest.approx(2 * 1000 * 0.15 / 1e6)
        guard.settle(guard.admit(call()), Usage(1000, 10))  # max_errors=1 would refuse it after a failure
        guard.settle(guard.admit(call()), error=RuntimeError("http 500"))  # an Exception: failed, no tokens
        assert s.calls == 4 and s.tokens == 3010
        with pytest.raises(LoopDetected):  # ...and that failure does count
            guard.admit(call())


def test_outside_a_session_loop_detection_does_not_run_and_nothing_is_sticky(caplog):
    """Calls outside any session are no agent run (an SDK's own tests, a web worker's unrelated
    requests): loop detection neither refuses them nor warns about them."""
    sink = Sink()
    guard = Breaker(alerts=[sink], loops=LoopPolicy(max_identical=2, max_errors=2))
    same = Call(MINI, "openai", input_tokens=100, max_output_tokens=10, fingerprint="same-request")
    with caplog.at_level("WARNING", logger="breaker"):
        for _ in range(6):
            guard.settle(guard.admit(same), Usage(100, 10))
        for _ in range(4):
            guard.settle(guard.admit(same), None, error=ValueError("HTTP 400"))
    assert guard.spent("session", "anonymous").calls == 10  # all ten were admitted
    assert guard.current_session().tripped is None
    assert not [e for e in sink if e.kind in ("loop", "tripped")]
    assert sum("outside any guard.session()" in r.getMessage() for r in caplog.records) == 1  # warned once
    with guard.session("run"):  # inside a session the same loop is still a kill
        with pytest.raises(LoopDetected):
            for _ in range(3):
                guard.settle(guard.admit(same), Usage(100, 10))


def test_outside_a_session_a_session_budget_rolls_over_session_ttl():
    clock = Clock()
    guard = Breaker(budgets=[Budget(calls=2)], alerts=[], session_ttl="10m", clock=clock)
    run(guard, 2)
    with pytest.raises(BudgetExceeded, match="Calls outside any session") as refused:
        run(guard, 1)
    assert "window" in str(refused.value) and guard.current_session().tripped is None  # not sticky
    clock.advance(620)  # the window and its last bucket (windows never forget early)
    run(guard, 2)  # the window freed: session-less calls go on
    assert guard.spent("session", "anonymous").calls == 4
    with guard.session("lifetime"):  # a real session keeps the lifetime budget
        run(guard, 2)
        with pytest.raises(BudgetExceeded, match="Every later call"):
            run(guard, 1)


def test_a_failing_learn_hook_never_loses_the_charge(caplog):
    def broken(fingerprint, tokens):
        raise RuntimeError("learner down")

    guard = Breaker(alerts=[])
    with guard.session("learn") as s:
        c = Call(MINI, "openai", input_tokens=1000, max_output_tokens=10, fingerprint=1, input_bytes=1000, learn=broken)
        guard.settle(guard.admit(c), Usage(800, 10))
        assert s.calls == 1 and s.tokens == 810
    assert any("learning a request's reported input failed" in r.getMessage() for r in caplog.records)


def test_a_learned_bound_is_not_used_for_a_model_of_another_tokenizer():
    guard = Breaker(alerts=[], degrade=Degrade(model_map={"gpt-4o": "gpt-3.5-turbo", "gpt-4.1": "gpt-4o-mini"}),
                    loops=LoopPolicy(max_identical=1, on_detect="degrade"))
    with guard.session("tokenizers"):
        for _ in range(2):  # a repeat: the loop detector degrades the session's later calls
            guard.settle(guard.admit(Call("gpt-4o", "openai", input_tokens=10, max_output_tokens=1, fingerprint=0)),
                         Usage(10, 1))
        other = guard.admit(Call("gpt-4o", "openai", input_tokens=100, max_output_tokens=10, fingerprint=1,
                                 input_bytes=4000))
        same = guard.admit(Call("gpt-4.1", "openai", input_tokens=100, max_output_tokens=10, fingerprint=2,
                                input_bytes=4000))
    assert other.model == "gpt-3.5-turbo" and other.call.input_tokens == 4000  # cl100k may count more: bytes
    assert same.model == "gpt-4o-mini" and same.call.input_tokens == 100  # o200k both: the learned bound holds
