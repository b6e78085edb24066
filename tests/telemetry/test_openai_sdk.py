"""End to end through a real OpenAI SDK client against FakeLLM: spans, metrics and alerts, no content."""

from __future__ import annotations

import logging

import pytest

openai = pytest.importorskip("openai")

import breaker  # noqa: E402
from breaker import Breaker, Budget, alerts  # noqa: E402
from breaker import semconv as sc  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from tests.alerts.receiver import Receiver  # noqa: E402

PROMPT = "PROMPT-CANARY-c0ffee: summarise the customer's private notes"
ANSWER = "ANSWER-CANARY-beef: here is the private summary"


def test_wrapped_openai_client_spans_metrics_and_alerts_carry_no_content(otel, caplog):
    receiver = Receiver()
    webhook = alerts.Webhook(receiver.url, headers={"Authorization": "Bearer sk-S3CRET"}, backoff=0.01)
    seen: list[breaker.Event] = []
    guard = Breaker(
        budgets=[Budget(usd=0.002, warn_at=(0.3,))],
        alerts=[alerts.Log(), alerts.Callback(seen.append), webhook],
        telemetry=otel.telemetry(),
    )
    reply = Reply(text=ANSWER, input_tokens=1200, cached_tokens=200, output_tokens=300, reasoning_tokens=100)
    try:
        with FakeLLM(default=reply) as fake, caplog.at_level(logging.DEBUG):
            client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0))
            with pytest.raises(breaker.SessionKilled):
                with guard.session("t-e2e", feature="support", user="acme") as s:
                    for _ in range(20):  # a runaway agent: the budget stops it
                        client.chat.completions.create(
                            model="gpt-4o-mini", max_tokens=400,
                            messages=[{"role": "user", "content": PROMPT}],
                        )
            sent = fake.count
        assert webhook.flush(10)
    finally:
        webhook.close(2)
        receiver.close()

    spans = otel.spans()
    assert len(spans) == sent == s.calls >= 2
    first = spans[0]
    assert first.name == "chat gpt-4o-mini"
    a = first.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1200, 300)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 200
    assert a["gen_ai.usage.reasoning.output_tokens"] == 100
    assert a["gen_ai.request.max_tokens"] == 400
    assert a["breaker.session"] == "t-e2e" and a["breaker.user"] == "acme"
    assert sum(sp.attributes["breaker.cost_usd"] for sp in spans) == pytest.approx(s.cost_usd)
    (tokens_in,) = [p for p in otel.points(sc.GEN_AI_CLIENT_TOKEN_USAGE) if p.attributes["gen_ai.token.type"] == "input"]
    assert tokens_in.count == sent and tokens_in.sum == 1200 * sent
    (trips,) = otel.points(sc.BREAKER_TRIPS)
    assert trips.value == 1

    kinds = [e.kind for e in seen]
    assert "threshold" in kinds and "tripped" in kinds and kinds[-1] == "session_end"
    assert [r["json"]["kind"] for r in receiver.requests] == kinds

    exported = "\n".join(sp.to_json() for sp in spans) + otel.reader.get_metrics_data().to_json()
    delivered = repr([r["json"] for r in receiver.requests])
    for canary in ("PROMPT-CANARY", "ANSWER-CANARY"):
        assert canary not in exported
        assert canary not in repr([e.as_dict() for e in seen])
        assert canary not in delivered
    assert "sk-S3CRET" not in caplog.text and "sk-test" not in caplog.text


def test_a_streamed_call_is_one_span_ended_when_the_stream_is(otel):
    guard = Breaker(alerts=[], telemetry=otel.telemetry())
    with FakeLLM(default=Reply(text="one two three", input_tokens=50)) as fake:
        client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0))
        with guard.session("t-stream"):
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True,
            )
            assert otel.spans() == []  # still open while the stream is read
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.split() == ["one", "two", "three"]
    (span,) = otel.spans()
    assert span.attributes["gen_ai.usage.input_tokens"] == 50
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert PROMPT not in span.to_json() and "three" not in span.to_json()


def test_a_provider_error_marks_the_span_without_its_message(otel):
    guard = Breaker(alerts=[], telemetry=otel.telemetry())
    with FakeLLM(default=Reply(status=500, error=f"upstream failed on: {PROMPT}")) as fake:
        client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0))
        with guard.session("t-500"), pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    (span,) = otel.spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "openai.InternalServerError"
    assert "PROMPT-CANARY" not in span.to_json()


def test_annotate_mode_under_the_official_openai_instrumentation(otel):
    """With opentelemetry-instrumentation-openai-v2 making the GenAI spans, breaker adds to them."""
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[], telemetry=otel.telemetry(mode="annotate"))
    instrumentor = instrumentation.OpenAIInstrumentor()
    guard.instrument()  # breaker first, so the other instrumentation's span is current when breaker admits
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        with FakeLLM(default=Reply(text="fine", input_tokens=80, output_tokens=5)) as fake:
            client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
            with guard.session("t-annotate", feature="support"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
        guard.uninstrument()
    (span,) = otel.spans()  # one GenAI span, not two
    assert span.attributes["gen_ai.usage.input_tokens"] == 80  # set by the official instrumentation
    assert span.attributes["breaker.session"] == "t-annotate"  # set by breaker
    assert span.attributes["gen_ai.usage.cost.amount"] > 0
    assert "breaker.cost" in otel.metrics()
