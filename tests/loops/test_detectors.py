"""Each loop detector through the real engine (``admit`` / ``settle``), time moved by a fake clock."""

from __future__ import annotations

import pytest

from breaker import Breaker, Budget, BudgetExceeded, ConfigError, Degrade, LoopDetected, LoopPolicy, Usage
from breaker.adapter import Call
from breaker.loops import (
    ContextGrowth,
    Detection,
    Detector,
    Detectors,
    ErrorStorm,
    IdenticalRequests,
    NoBackoff,
    SpendSpike,
    StepCap,
    ToolThrash,
)
from tests.conftest import Clock

MINI = "gpt-4o-mini"
OFF = dict(max_identical=None, max_errors=None, max_tool_repeats=None, max_hot_retries=None,
           context_limit=None, spike_factor=None)


class Sink(list):
    def __call__(self, event):
        self.append(event)

    def of(self, kind):
        return [e for e in self if e.kind == kind]


def make(degrade=None, budgets=(), **policy):
    clock, sink = Clock(), Sink()
    guard = Breaker(budgets=list(budgets), loops=LoopPolicy(**{**OFF, **policy}), degrade=degrade,
                    alerts=[sink], clock=clock)
    return guard, clock, sink


_n = iter(range(10**9))


def call(fp=None, *, inp=1000, model=MINI):
    return Call(model, "openai", input_tokens=inp, max_output_tokens=200,
                fingerprint=fp if fp is not None else f"distinct-{next(_n)}")


def ok(guard, c=None, usage=Usage(1000, 200), tools=()):
    ticket = guard.admit(c or call())
    guard.settle(ticket, usage, tool_calls=tools)
    return ticket


def fail(guard, c=None, error=None):
    ticket = guard.admit(c or call())
    guard.settle(ticket, None, error=error or TimeoutError("upstream timed out"))
    return ticket


# ----------------------------------------------------------------- identical requests
def test_identical_n_are_sent_and_the_next_is_refused_for_good():
    guard, clock, sink = make(max_identical=3)
    with guard.session("s") as s:
        for _ in range(3):
            ok(guard, call("same"))
            clock.advance(10)
        with pytest.raises(LoopDetected) as info:
            guard.admit(call("same"))
        assert info.value.reason == "loop:identical"
        with pytest.raises(LoopDetected):  # sticky: even a different request is refused now
            guard.admit(call("other"))
        assert s.calls == 3
    loop = sink.of("loop")
    assert [e.data["signal"] for e in loop] == ["identical"]
    assert loop[0].data["count"] == 4 and loop[0].data["limit"] == 3
    assert len(sink.of("tripped")) == 1


def test_identical_requests_older_than_the_window_do_not_count():
    guard, clock, _ = make(max_identical=2, identical_window="1m")
    with guard.session("s"):
        ok(guard, call("same"))
        ok(guard, call("same"))
        clock.advance(61)
        ok(guard, call("same"))
        ok(guard, call("same"))
        with pytest.raises(LoopDetected):
            guard.admit(call("same"))


def test_identical_memory_follows_the_window_not_the_session():
    guard, clock, _ = make(max_identical=2, identical_window="1m")
    detector = next(d for d in guard.loops.detectors.detectors if isinstance(d, IdenticalRequests))
    with guard.session("s") as s:
        ok(guard, call("repeated"))
        ok(guard, call("repeated"))  # a request seen twice: a deque of times
        for _ in range(500):  # a long session of new requests, 10 s apart
            clock.advance(10)
            ok(guard, call())
        remembered = s.state.loops._memory[detector]
        assert len(remembered) <= 8  # the last minute's (6) and at most two not forgotten yet; was 256
        ok(guard, call("repeated"))  # forgotten with the window: counts as new again
        ok(guard, call("repeated"))
        with pytest.raises(LoopDetected):
            guard.admit(call("repeated"))


def test_identical_fingerprints_differ_by_model():
    guard, _, _ = make(max_identical=1)
    with guard.session("s"):
        ok(guard, call("same", model=MINI))
        ok(guard, call("same", model="gpt-4o"))
        with pytest.raises(LoopDetected):
            guard.admit(call("same", model=MINI))


def test_warn_lets_the_call_through_and_says_so():
    guard, _, sink = make(max_identical=1, on_detect="warn")
    with guard.session("s") as s:
        ok(guard, call("same"))
        ok(guard, call("same"))
        assert s.calls == 2 and s.tripped is None
    assert [e.data["action"] for e in sink.of("loop")] == ["warn"]
    assert not sink.of("tripped")


# ----------------------------------------------------------------- error storms and hot retries
def test_error_storm_refuses_the_call_after_the_kth_failure():
    guard, clock, sink = make(max_errors=3, error_window="1m")
    with guard.session("s") as s:
        for _ in range(3):
            fail(guard)
            clock.advance(5)  # a real backoff: only the storm signal applies
        with pytest.raises(LoopDetected) as info:
            guard.admit(call())
        assert info.value.reason == "loop:errors"
        assert s.calls == 3


def test_errors_outside_the_window_are_forgotten():
    guard, clock, _ = make(max_errors=2, error_window="1m")
    with guard.session("s"):
        fail(guard)
        clock.advance(50)
        fail(guard)
        clock.advance(20)  # the first failure is now 70s old
        ok(guard)
        fail(guard)
        clock.advance(1)
        with pytest.raises(LoopDetected):
            guard.admit(call())


def test_hot_retries_without_backoff_are_cut_off():
    guard, clock, _ = make(max_hot_retries=2, min_backoff=0.5)
    with guard.session("s") as s:
        fail(guard)
        fail(guard)  # hot retry 1
        fail(guard)  # hot retry 2
        with pytest.raises(LoopDetected) as info:
            guard.admit(call())  # hot retry 3
        assert info.value.reason == "loop:no_backoff"
        assert s.calls == 3


def test_retries_with_backoff_or_a_success_reset_the_hot_count():
    guard, clock, _ = make(max_hot_retries=1, min_backoff=0.5)
    with guard.session("s") as s:
        for _ in range(5):
            fail(guard)
            clock.advance(0.5)  # waits the minimum backoff each time
        fail(guard)
        ok(guard)  # hot, but succeeds: the next failure starts afresh
        fail(guard)  # follows a success: not a retry at all
        fail(guard)  # hot retry 1 after that failure
        assert s.calls == 9


# ----------------------------------------------------------------- tool thrash
def test_tool_thrash_same_tool_same_arguments():
    guard, _, sink = make(max_tool_repeats=3)
    with guard.session("s") as s:
        for i in range(3):
            ok(guard, tools=(("search", "args-a"),))
            ok(guard, tools=(("search", f"args-{i}"),))  # other arguments are not thrash
        ok(guard, tools=(("search", "args-a"),))  # the 4th identical ask is answered by the provider...
        with pytest.raises(LoopDetected) as info:
            guard.admit(call())  # ...and the agent's next step is refused
        assert info.value.reason == "loop:tool_repeat"
        assert s.calls == 7
    assert [e.data["signal"] for e in sink.of("loop")] == ["tool_repeat"]  # one event, not two


# ----------------------------------------------------------------- step cap
def test_step_cap():
    guard, _, _ = make(max_calls=4)
    with guard.session("s") as s:
        for _ in range(4):
            ok(guard)
        with pytest.raises(LoopDetected) as info:
            guard.admit(call())
        assert info.value.reason == "loop:max_calls"
        assert s.calls == 4
    with guard.session("t") as t:  # per session
        ok(guard)
        assert t.calls == 1


# ----------------------------------------------------------------- context growth
def test_growing_history_degrades_later_calls_by_trimming():
    degrade = Degrade(keep_last_messages=6, model_map={"gpt-4o": MINI})
    guard, _, sink = make(degrade=degrade, context_limit=10_000, context_rising=3)
    with guard.session("s"):
        tickets = [ok(guard, call(inp=size, model="gpt-4o")) for size in (4_000, 6_000, 8_000, 10_000)]
        assert not any(t.degraded for t in tickets[:3])
        assert tickets[3].degraded  # the call that crossed the line is already degraded
        assert tickets[3].patch.keep_last_messages == 6 and tickets[3].model == MINI
        later = ok(guard, call(inp=3_000, model="gpt-4o"))
        assert later.degraded
    assert [e.data["signal"] for e in sink.of("loop")] == ["context_growth"]  # fires once
    assert len(sink.of("degraded")) == 1


def test_a_large_but_stable_history_is_not_growth():
    guard, _, sink = make(degrade=Degrade(keep_last_messages=4), context_limit=10_000, context_rising=2)
    with guard.session("s"):
        for size in (20_000, 20_000, 19_000, 20_000):
            assert not ok(guard, call(inp=size)).degraded
    assert not sink.of("loop")


def test_growth_as_a_warning_only():
    guard, _, sink = make(context_limit=5_000, context_rising=1, context_action="warn")
    with guard.session("s"):
        ok(guard, call(inp=4_000))
        assert not ok(guard, call(inp=6_000)).degraded
    assert [e.data["action"] for e in sink.of("loop")] == ["warn"]


# ----------------------------------------------------------------- spend spike
def test_spend_spike_warns_and_lets_the_session_go_on():
    guard, _, sink = make(spike_factor=10, spike_min_calls=3)
    with guard.session("s") as s:
        for _ in range(3):
            ok(guard, usage=Usage(1000, 100))
        ok(guard, call(inp=400_000), usage=Usage(400_000, 100))
        ok(guard)
        assert s.tripped is None and s.calls == 5
    spikes = sink.of("loop")
    assert [e.data["signal"] for e in spikes] == ["spend_spike"]
    assert spikes[0].data["action"] == "warn"


def test_no_spike_while_costs_stay_near_the_average():
    guard, _, sink = make(spike_factor=10, spike_min_calls=2)
    with guard.session("s"):
        for n in (1000, 3000, 2000, 8000, 1000):
            ok(guard, call(inp=n), usage=Usage(n, 100))
    assert not sink.of("loop")


# ----------------------------------------------------------------- composition and your own detectors
def test_a_plain_function_is_a_detector():
    def no_gpt4(state, c, now):
        if c.model == "gpt-4o":
            return Detection("no_gpt4", "kill", "this agent may not use gpt-4o", state.calls, 0)
        return None

    guard, _, sink = make(extra=[no_gpt4])
    with guard.session("s"):
        ok(guard)
        with pytest.raises(LoopDetected) as info:
            guard.admit(call(model="gpt-4o"))
    assert info.value.reason == "loop:no_gpt4"


def test_most_severe_verdict_wins_and_detectors_compose_with_or():
    class AlwaysWarn(Detector):
        signal = "always"

        def check(self, state, c, now):
            return Detection("always", "warn", "just saying")

    combined = AlwaysWarn() | StepCap(1)
    assert isinstance(combined, Detectors) and len(combined.detectors) == 2
    guard, _, sink = make(extra=[combined])
    with guard.session("s"):
        ok(guard)  # warn only
        with pytest.raises(LoopDetected) as info:
            guard.admit(call())  # warn and kill: kill wins
    assert info.value.reason == "loop:max_calls"


def test_only_replaces_the_defaults():
    policy = LoopPolicy.only(StepCap(2, action="warn"), IdenticalRequests(max=1))
    assert [type(d) for d in policy.detectors.detectors] == [StepCap, IdenticalRequests]
    guard = Breaker(loops=policy, alerts=[], clock=Clock())
    with guard.session("s") as s:
        for _ in range(3):
            ok(guard)  # the 3rd passes the step cap: a warning only
        with pytest.raises(LoopDetected):
            for _ in range(2):
                ok(guard, call("same"))
        assert s.calls == 4


def test_defaults_match_the_design():
    policy = LoopPolicy()
    kinds = {type(d): d for d in policy.detectors.detectors}
    assert kinds[IdenticalRequests].max == 3 and kinds[IdenticalRequests].window == 300
    assert kinds[ErrorStorm].max == 5 and kinds[ErrorStorm].window == 60
    assert kinds[ToolThrash].max == 4
    assert StepCap not in kinds  # max_calls=None: no cap
    assert kinds[NoBackoff].action == "kill"
    assert kinds[ContextGrowth].action == "degrade" and kinds[SpendSpike].action == "warn"


@pytest.mark.parametrize(
    "build,fragment",
    [
        (lambda: LoopPolicy(max_hot_retries=0), "at least 1"),
        (lambda: LoopPolicy(context_action="explode"), "'kill', 'degrade' or 'warn'"),
        (lambda: LoopPolicy(extra=lambda s, c, n: None), "list of detectors"),
        (lambda: LoopPolicy(extra=[42]), "not a detector"),
        (lambda: IdenticalRequests(window="soon"), "not a window"),
        (lambda: NoBackoff(min_backoff=0), "positive"),
        (lambda: SpendSpike(factor=1), "above 1"),
    ],
)
def test_bad_configuration_says_how_to_fix_it(build, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build()


# ----------------------------------------------------------------- memory stays bounded
def test_memory_per_session_is_bounded():
    guard, clock, _ = make(max_identical=3, max_tool_repeats=3, max_errors=5)
    with guard.session("s") as s:
        for i in range(3_000):
            ok(guard, call(f"fp-{i}"), tools=((f"tool-{i}", "x"),))
            clock.advance(1)
        state = s.state.loops
        sizes = [len(m) for m in state._memory.values()]
        assert sizes and max(sizes) <= 257


# ----------------------------------------------------------------- retries reported by a retry library
def test_a_retry_of_a_settled_failure_is_not_counted_twice():
    guard, clock, _ = make(max_errors=2)
    policy = guard.loops
    with guard.session("s") as s:
        err = TimeoutError("x")
        fail(guard, error=err)
        policy.retried(s.state.loops, err, clock())  # the same failure, reported again by tenacity
        try:
            raise ValueError("bad json from the model") from err
        except ValueError as wrapped:
            policy.retried(s.state.loops, wrapped, clock())  # wraps it: still the same failure
        clock.advance(5)
        ok(guard)  # one failure so far: allowed
        policy.retried(s.state.loops, KeyError("agent's own"), clock())  # a new failure
        clock.advance(5)
        with pytest.raises(LoopDetected):
            guard.admit(call())


# ----------------------------------------------------------------- degrade, then budget
def test_a_degraded_call_that_still_cannot_fit_the_budget_is_killed():
    # the loop detector degrades gpt-4o -> mini, but the budget cannot pay even for mini
    guard, _, sink = make(
        degrade=Degrade(model_map={"gpt-4o": MINI}, max_output_tokens=100),
        budgets=[Budget(usd=0.01)],
        max_identical=1, on_detect="degrade",
    )
    with guard.session("s") as s:
        ok(guard, call("same", inp=100, model="gpt-4o"), usage=Usage(100, 10))
        with pytest.raises(BudgetExceeded):
            guard.admit(call("same", inp=500_000, model="gpt-4o"))
        assert s.calls == 1
    assert sink.of("degraded") and sink.of("tripped")


# ----------------------------------------------------------------- concurrency
def test_concurrent_identical_calls_admit_exactly_the_limit():
    import contextvars
    import threading

    guard, _, _ = make(max_identical=3)
    admitted, refused = [], []
    barrier = threading.Barrier(12)

    def worker():
        barrier.wait()
        try:
            admitted.append(guard.admit(call("same")))
        except LoopDetected:
            refused.append(1)

    with guard.session("s"):
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for ticket in admitted:
            guard.settle(ticket, Usage(1000, 200))
    assert len(admitted) == 3 and len(refused) == 9
