"""Every event kind, as the engine emits it, received by real sinks; dedupe per scope key and window."""

from __future__ import annotations

import itertools

import pytest

import breaker
from breaker import Breaker, Budget, BudgetExceeded, Degrade, Event, LoopPolicy, Usage, alerts
from breaker.adapter import Call
from breaker.events import EVENT_KINDS
from tests.conftest import Clock

MINI = "gpt-4o-mini"  # $0.15 / $0.60 per million tokens: 1000 in + 500 out = $0.00045
_fp = itertools.count()


class Sink(list):
    def __call__(self, event: Event) -> None:
        self.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self if e.kind == kind]


def run(guard: Breaker, n: int = 1, usage: Usage = Usage(1000, 500), model: str = MINI, **kw) -> None:
    for _ in range(n):
        ticket = guard.admit(Call(model, "openai", input_tokens=kw.get("inp", 1000),
                                  max_output_tokens=kw.get("out", 500), fingerprint=next(_fp)))
        guard.settle(ticket, usage)


def test_event_has_the_documented_fields():
    e = Event("threshold", "m")
    for name in ("kind", "scope", "key", "session", "feature", "user", "spent_usd", "limit_usd", "fraction",
                 "message", "at"):
        assert hasattr(e, name)
    assert breaker.Event is Event
    assert set(e.as_dict()) >= {"kind", "scope", "key", "session", "feature", "user", "spent_usd", "limit_usd",
                                "fraction", "message", "at"}


def test_threshold_events_carry_scope_money_and_attribution():
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.4, 0.8))], alerts=[sink], telemetry=False)
    with guard.session("t-1", feature="support", user="acme"):
        run(guard)  # 45%
        run(guard)  # 90%
    first, second = sink.of("threshold")
    assert (first.scope, first.key, first.session, first.feature, first.user) == ("session", "t-1", "t-1", "support", "acme")
    assert first.spent_usd == pytest.approx(0.00045) and first.limit_usd == pytest.approx(0.001)
    assert first.fraction == pytest.approx(0.45)
    assert second.fraction == pytest.approx(0.9)
    assert "90%" in second.message and "$0.001" in second.message


def test_a_threshold_fires_once_per_scope_key():
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.01, warn_at=(0.05,)),
                             Budget(usd=0.01, per="feature", warn_at=(0.05,))], alerts=[sink], telemetry=False)
    for sid in ("a", "b"):
        with guard.session(sid, feature="shared"):
            run(guard, 3)
    keys = sorted((e.scope, e.key) for e in sink.of("threshold"))
    assert keys == [("feature", "shared"), ("session", "a"), ("session", "b")]


def test_a_windowed_budget_fires_again_in_the_next_window():
    clock = Clock()
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001, window="1m", warn_at=(0.5,))], alerts=[sink], telemetry=False,
                    clock=clock)
    with guard.session("w"):
        run(guard, 2)  # 90% of the minute's budget
        run(guard, 1, Usage(10, 1), inp=10, out=1)  # still past 50%: no second event
        assert len(sink.of("threshold")) == 1
        clock.advance(61)  # the window rolls over
        run(guard, 2)
    events = sink.of("threshold")
    assert len(events) == 2
    assert events[1].key == "w" and events[1].fraction == pytest.approx(0.9)


def test_a_trip_fires_once_and_carries_its_reason():
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[sink], telemetry=False)
    with guard.session("k"):
        run(guard, 1)
        for _ in range(5):  # a retry loop that swallows even the kill: refused each time, announced once
            try:
                run(guard, 1, inp=5000)
            except BudgetExceeded:
                continue
    (trip,) = sink.of("tripped")
    assert (trip.scope, trip.key, trip.session) == ("session", "k", "k")
    assert trip.data["reason"] == "budget"
    assert trip.limit_usd == pytest.approx(0.001) and trip.spent_usd == pytest.approx(0.00045)
    assert "stopped" in trip.message
    (end,) = sink.of("session_end")
    assert end.data["tripped"] == "budget"


def test_a_windowed_trip_fires_again_in_the_next_window():
    clock = Clock()
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001, window="1m")], alerts=[sink], telemetry=False, clock=clock)
    with guard.session("wk"):
        for _ in range(2):
            run(guard, 1)
            for _ in range(3):
                with pytest.raises(BudgetExceeded):
                    run(guard, 1, inp=5000)
            clock.advance(61)
    assert len(sink.of("tripped")) == 2


def test_degraded_event():
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.01, degrade_at=0.5)], degrade=Degrade(model_map={"gpt-4o": MINI}),
                    alerts=[sink], telemetry=False)
    with guard.session("d", feature="f"):
        run(guard, 1, model="gpt-4o")  # $0.0075
        run(guard, 2, model="gpt-4o")
    (event,) = sink.of("degraded")
    assert (event.scope, event.key, event.session, event.feature) == ("session", "d", "d", "f")
    assert "degraded" in event.message


def test_loop_event_then_tripped():
    sink = Sink()
    guard = Breaker(loops=LoopPolicy(max_identical=2), alerts=[sink], telemetry=False)
    with pytest.raises(breaker.SessionKilled):
        with guard.session("l"):
            for _ in range(3):
                ticket = guard.admit(Call(MINI, "openai", input_tokens=10, max_output_tokens=10, fingerprint="same"))
                guard.settle(ticket, Usage(10, 10))
    kinds = [e.kind for e in sink]
    assert kinds.index("loop") < kinds.index("tripped")
    (loop,) = sink.of("loop")
    assert loop.data["signal"] == "identical" and loop.session == "l"
    (trip,) = sink.of("tripped")
    assert trip.data["reason"] == "loop:identical"


def test_unknown_price_fires_once_per_model():
    sink = Sink()
    guard = Breaker(unknown_price="warn", alerts=[sink], telemetry=False)
    with guard.session("u") as s:
        run(guard, 3, model="my-finetune")
        assert s.unpriced_calls == 3
    (event,) = sink.of("unknown_price")
    assert event.data["model"] == "my-finetune" and event.session == "u"
    assert "prices=" in event.message


def test_session_end_has_totals_and_outcome():
    sink = Sink()
    guard = Breaker(alerts=[sink], telemetry=False)
    with guard.session("e", feature="f", user="u") as s:
        run(guard, 2)
        s.outcome("resolved")
    (end,) = sink.of("session_end")
    assert (end.scope, end.key, end.feature, end.user) == ("session", "e", "f", "u")
    assert end.spent_usd == pytest.approx(0.0009)
    assert end.data["calls"] == 2 and end.data["tokens"] == 3000 and end.data["outcomes"] == ["resolved"]
    assert end.data["tripped"] is None
    assert "resolved" in end.message


def test_every_kind_is_known():
    assert EVENT_KINDS == ("threshold", "degraded", "tripped", "loop", "unknown_price", "ledger_error", "session_end")


def test_no_event_repeats_text_the_agent_sent():
    """Calls carry no content; nothing an adapter attaches for telemetry leaks into alerts."""
    canary = "PROMPT-CANARY-91b2"
    sink = Sink()
    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.1,))], loops=LoopPolicy(max_identical=1),
                    alerts=[sink], telemetry=False)
    with pytest.raises(breaker.SessionKilled):
        with guard.session("c"):
            for _ in range(3):
                ticket = guard.admit(Call(MINI, "openai", input_tokens=1000, max_output_tokens=500, fingerprint="x",
                                          attrs={"gen_ai.input.messages": canary}))
                guard.settle(ticket, Usage(1000, 500))
    assert {"threshold", "loop", "tripped", "session_end"} <= {e.kind for e in sink}
    assert canary not in repr([e.as_dict() for e in sink])
