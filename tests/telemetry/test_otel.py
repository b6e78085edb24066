"""OpenTelemetry spans, span events and metrics, driven through the real engine and the real SDK."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

import breaker
from breaker import Breaker, Budget, BudgetExceeded, ConfigError, Degrade, LoopDetected, LoopPolicy, Usage
from breaker.adapter import Call
from breaker import semconv as sc
from breaker.telemetry import NoTelemetry, OTel, make_telemetry

MINI = "gpt-4o-mini"  # $0.15 / $0.60 per million tokens
CANARY = "PROMPT-CANARY-7f3a"
_fp = itertools.count()


def call(model: str = MINI, inp: int = 1000, out: int | None = 500, **kw) -> Call:
    return Call(model, "openai", input_tokens=inp, max_output_tokens=out, fingerprint=next(_fp), **kw)


def run(guard: Breaker, usage: Usage = Usage(1000, 500), **kw) -> int | None:
    ticket = guard.admit(call(**kw))
    return guard.settle(ticket, usage)


def everything(otel) -> str:
    """All exported telemetry as one string, to look for text that must not be there."""
    parts = []
    for s in otel.spans():
        parts.append(s.to_json())
    data = otel.reader.get_metrics_data()
    parts.append(data.to_json() if data is not None else "")
    return "\n".join(parts)


def test_a_client_span_per_call_follows_the_genai_conventions(otel):
    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[], telemetry=otel.telemetry())
    with guard.session("t-1", feature="support", user="acme", tags={"team": "cx"}) as s:
        cost = run(guard, Usage(1200, 300, cache_read_tokens=200, cache_write_tokens=100, reasoning_tokens=50),
                   inp=1200, out=400)
        remaining = s.remaining_usd
    (span,) = otel.spans()
    a = dict(span.attributes)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == MINI
    assert a[sc.GEN_AI_RESPONSE_MODEL] == MINI
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 400
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert a["gen_ai.usage.reasoning.output_tokens"] == 50
    assert a["breaker.session"] == "t-1"
    assert a["breaker.feature"] == "support"
    assert a["breaker.user"] == "acme"
    assert a["breaker.tag.team"] == "cx"
    assert cost is not None and cost > 0
    assert a["breaker.cost_usd"] == pytest.approx(cost / 1e9)
    assert a["gen_ai.usage.cost.amount"] == pytest.approx(cost / 1e9)
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert a["breaker.budget.remaining_usd"] == pytest.approx(remaining)
    assert a["breaker.degraded"] is False
    assert "breaker.tripped" not in a


def test_a_failed_call_has_error_status_without_its_message(otel, caplog):
    guard = Breaker(alerts=[], telemetry=otel.telemetry())
    with guard.session("t-err"):
        ticket = guard.admit(call())
        guard.settle(ticket, None, error=TimeoutError(f"request said {CANARY}"))
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "TimeoutError"
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    (duration,) = otel.points(sc.GEN_AI_CLIENT_OPERATION_DURATION)
    assert duration.attributes["error.type"] == "TimeoutError"
    assert otel.points(sc.GEN_AI_CLIENT_TOKEN_USAGE) == []  # no usage, no token points
    assert CANARY not in everything(otel)
    assert CANARY not in caplog.text


def test_content_is_recorded_only_when_the_user_opts_in(otel):
    attrs = {"gen_ai.input.messages": json.dumps([{"role": "user", "content": CANARY}]),
             "gen_ai.response.id": "resp-1"}
    for capture in (False, True):
        otel.exporter.clear()
        guard = Breaker(alerts=[], telemetry=otel.telemetry(capture_content=capture))
        with guard.session(f"c-{capture}"):
            ticket = guard.admit(call(attrs=dict(attrs)))
            guard.settle(ticket, None, error=ValueError(CANARY))
        (span,) = otel.spans()
        assert span.attributes["gen_ai.response.id"] == "resp-1"  # non-content passthrough
        assert (CANARY in everything(otel)) is capture
        assert ("gen_ai.input.messages" in span.attributes) is capture
        assert bool(span.events) is capture  # the exception event, with its message, only on opt-in


def test_the_content_opt_in_follows_the_conventional_environment_variable(monkeypatch, otel):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert otel.telemetry().capture_content is True
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    assert otel.telemetry().capture_content is False
    assert otel.telemetry(capture_content=True).capture_content is True


def test_a_degraded_call_names_the_model_sent_and_keeps_the_one_asked_for(otel):
    guard = Breaker(
        budgets=[Budget(usd=0.01, degrade_at=0.5)], degrade=Degrade(model_map={"gpt-4o": MINI}),
        alerts=[], telemetry=otel.telemetry(),
    )
    with guard.session("t-deg"):
        run(guard, model="gpt-4o")  # $0.0075: past degrade_at
        run(guard, model="gpt-4o")
    first, second = otel.spans()
    assert first.name == "chat gpt-4o" and first.attributes["breaker.degraded"] is False
    assert second.name == "chat gpt-4o-mini"
    assert second.attributes[sc.GEN_AI_REQUEST_MODEL] == MINI
    assert second.attributes[sc.GEN_AI_RESPONSE_MODEL] == MINI
    assert second.attributes["breaker.requested_model"] == "gpt-4o"
    assert second.attributes["breaker.degraded"] is True
    (event,) = [e for e in second.events if e.name == "breaker.degraded"]
    assert event.attributes["breaker.requested_model"] == "gpt-4o"
    # The session became degraded while the first call settled: that call's span says so.
    assert "breaker.degraded" in [e.name for e in first.events]


def test_a_trip_at_admission_lands_on_the_current_span_and_in_the_trips_counter(otel):
    guard = Breaker(budgets=[Budget(usd=0.001)], alerts=[], telemetry=otel.telemetry())
    tracer = otel.tracer_provider.get_tracer("agent")
    with tracer.start_as_current_span("agent run"):
        with pytest.raises(breaker.SessionKilled):
            with guard.session("t-trip"):
                run(guard, inp=1000, out=500)  # $0.00045 worst case: admitted
                run(guard, inp=5000, out=1000)  # input alone, $0.00075, would pass $0.001
    spans = {s.name: s for s in otel.spans()}
    assert set(spans) == {"chat gpt-4o-mini", "agent run"}  # the refused call has no span
    agent = spans["agent run"]
    (trip,) = [e for e in agent.events if e.name == "breaker.tripped"]
    assert trip.attributes["breaker.trip.reason"] == "budget"
    assert trip.attributes["breaker.scope"] == "session"
    assert trip.attributes["breaker.limit_usd"] == pytest.approx(0.001)
    assert agent.attributes["breaker.tripped"] is True
    assert "breaker.session_end" in [e.name for e in agent.events]
    (point,) = otel.points(sc.BREAKER_TRIPS)
    assert point.value == 1
    assert dict(point.attributes) == {"breaker.trip.reason": "budget", "breaker.scope": "session"}


def test_loop_trips_are_counted_by_reason(otel):
    guard = Breaker(loops=LoopPolicy(max_identical=2), alerts=[], telemetry=otel.telemetry())
    with pytest.raises(breaker.SessionKilled):
        with guard.session("t-loop"):
            for _ in range(3):
                ticket = guard.admit(Call(MINI, "openai", input_tokens=10, max_output_tokens=10, fingerprint="same"))
                guard.settle(ticket, Usage(10, 10))
    (point,) = otel.points(sc.BREAKER_TRIPS)
    assert point.value == 1
    assert point.attributes["breaker.trip.reason"] == "loop:identical"
    assert len(otel.spans()) == 2  # the third, identical request was never sent


def test_events_raised_while_settling_land_on_that_calls_span(otel):
    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.5,))], alerts=[], telemetry=otel.telemetry())
    with guard.session("t-settle"):
        ticket = guard.admit(call(inp=100, out=10))
        guard.settle(ticket, Usage(100, 5000))  # far more output than the cap: passes the limit
        with pytest.raises(BudgetExceeded):
            guard.admit(call(inp=100, out=10))
    (span,) = otel.spans()
    names = [e.name for e in span.events]
    assert "breaker.threshold" in names and "breaker.tripped" in names
    threshold = next(e for e in span.events if e.name == "breaker.threshold")
    assert threshold.attributes["breaker.fraction"] > 1
    assert span.attributes["breaker.tripped"] is True
    assert span.attributes["breaker.trip.reason"] == "budget"


def test_token_duration_and_cost_metrics(otel):
    guard = Breaker(alerts=[], telemetry=otel.telemetry())
    costs = []
    with guard.session("m-1", feature="search"):
        costs.append(run(guard, Usage(1000, 500)))
        costs.append(run(guard, Usage(3000, 100)))
    with guard.session("m-2", feature="chat"):
        costs.append(run(guard, Usage(10, 1)))
    metrics = otel.metrics()
    tokens = metrics[sc.GEN_AI_CLIENT_TOKEN_USAGE]
    assert tokens.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens.data.data_points}
    assert set(by_type) == {"input", "output"}
    assert (by_type["input"].sum, by_type["input"].count) == (4010, 3)
    assert (by_type["output"].sum, by_type["output"].count) == (601, 3)
    assert tuple(by_type["input"].explicit_bounds) == tuple(4**i for i in range(14))
    assert by_type["input"].explicit_bounds[-1] == 67108864
    assert by_type["input"].attributes[sc.GEN_AI_REQUEST_MODEL] == MINI
    assert by_type["input"].attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    duration = metrics[sc.GEN_AI_CLIENT_OPERATION_DURATION]
    assert duration.unit == "s"
    (d,) = duration.data.data_points
    assert d.count == 3 and d.sum >= 0
    assert tuple(d.explicit_bounds) == (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
    cost = metrics[sc.BREAKER_COST]
    assert cost.unit == "USD"
    by_feature = {p.attributes["breaker.feature"]: p.value for p in cost.data.data_points}
    assert by_feature["search"] == pytest.approx((costs[0] + costs[1]) / 1e9)
    assert by_feature["chat"] == pytest.approx(costs[2] / 1e9)
    assert all(p.attributes[sc.GEN_AI_REQUEST_MODEL] == MINI for p in cost.data.data_points)


def test_annotate_mode_writes_on_the_current_span_and_starts_none(otel):
    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[], telemetry=otel.telemetry(mode="annotate"))
    tracer = otel.tracer_provider.get_tracer("other-instrumentation")
    with guard.session("t-ann", feature="support", user="acme"):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT):
            cost = run(guard)
    (span,) = otel.spans()  # only the other instrumentation's span
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["breaker.session"] == "t-ann"
    assert span.attributes["breaker.feature"] == "support"
    assert span.attributes["gen_ai.usage.cost.amount"] == pytest.approx(cost / 1e9)
    assert "breaker.budget.remaining_usd" in span.attributes
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes  # the other instrumentation's job
    metrics = otel.metrics()
    assert sc.GEN_AI_CLIENT_TOKEN_USAGE not in metrics  # not counted twice
    assert sc.GEN_AI_CLIENT_OPERATION_DURATION not in metrics
    (point,) = metrics[sc.BREAKER_COST].data.data_points
    assert point.value == pytest.approx(cost / 1e9)


def test_annotate_mode_without_a_current_span_still_counts_cost(otel):
    guard = Breaker(alerts=[], telemetry=otel.telemetry(mode="annotate"))
    cost = run(guard)
    assert otel.spans() == []
    (point,) = otel.points(sc.BREAKER_COST)
    assert point.value == pytest.approx(cost / 1e9)


class _Exploding(SpanProcessor):
    def on_start(self, span, parent_context=None):
        raise RuntimeError("exporter pipeline is broken")

    def on_end(self, span):
        raise RuntimeError("exporter pipeline is broken")


def test_broken_telemetry_never_breaks_a_call(otel, caplog):
    otel.tracer_provider.add_span_processor(_Exploding())
    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[], telemetry=otel.telemetry())
    with caplog.at_level(logging.ERROR, logger="breaker"), guard.session("t-broken") as s:
        cost = run(guard)
        assert s.calls == 1 and s.cost_usd == pytest.approx(cost / 1e9)
        run(guard)
        assert s.calls == 2
    assert "breaker telemetry failed to start a span" in caplog.text  # caught, logged, and the call went on


def test_make_telemetry_options():
    assert isinstance(make_telemetry(False), NoTelemetry)
    assert isinstance(make_telemetry(None), NoTelemetry)
    default = make_telemetry(True)
    assert isinstance(default, OTel) and default.mode == "span" and default.capture_content is False
    assert make_telemetry("annotate").mode == "annotate"
    custom = OTel(mode="annotate")
    assert make_telemetry(custom) is custom
    assert isinstance(Breaker(alerts=[]).telemetry, OTel)
    with pytest.raises(ConfigError, match="annotate"):
        OTel(mode="spans")
    with pytest.raises(ConfigError, match="start/end/event"):
        Breaker(telemetry=42)


def test_sampled_out_calls_cost_no_span_but_still_count(otel):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    guard = Breaker(alerts=[], telemetry=OTel(tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
                                              meter_provider=otel.meter_provider))
    with guard.session("t-sampled"):
        ticket = guard.admit(call())
        assert isinstance(ticket.span, float)  # just the start time: nothing records
        guard.settle(ticket, Usage(1000, 500))
    assert otel.points(sc.BREAKER_COST)[0].value > 0


async def test_concurrent_tasks_each_get_their_own_spans_and_events(otel):
    import asyncio

    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.4,))], alerts=[], telemetry=otel.telemetry())

    async def agent(name: str) -> None:
        async with guard.session(name):
            for _ in range(2):
                ticket = await guard.admit_async(call())
                await asyncio.sleep(0)  # interleave with the other agent while in flight
                guard.settle(ticket, Usage(1000, 500))

    await asyncio.gather(agent("a"), agent("b"))
    spans = otel.spans()
    assert sorted(s.attributes["breaker.session"] for s in spans) == ["a", "a", "b", "b"]
    for s in spans:
        for e in s.events:
            if e.name == "breaker.threshold":
                assert e.attributes["breaker.session"] == s.attributes["breaker.session"]
    assert sum(e.name == "breaker.threshold" for s in spans for e in s.events) == 2


def test_activate_makes_the_call_span_the_parent_of_spans_inside(otel):
    guard = Breaker(alerts=[], telemetry=otel.telemetry())
    http = otel.tracer_provider.get_tracer("http-client")
    with guard.session("t-act"):
        ticket = guard.admit(call())
        with guard.telemetry.activate(ticket):
            with http.start_as_current_span("POST /v1/chat/completions"):
                pass
        guard.settle(ticket, Usage(1000, 500))
    inner, outer = otel.spans()
    assert outer.name == "chat gpt-4o-mini"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    with NoTelemetry().activate(ticket):  # the no-op interface has it too
        pass
