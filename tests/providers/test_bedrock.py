"""AWS Bedrock Runtime through the real boto3 client, pointed at FakeLLM: priced, enforced, metered.

No AWS account and no network: every client gets dummy credentials and a region
explicitly (``fake.bedrock()``), the AWS config files and instance metadata are
switched off, and a resolver that answers only for loopback addresses checks that
nothing else was looked up.
"""

from __future__ import annotations

import gc
import json
import logging
import socket

import boto3
import botocore.exceptions
import botocore.session
import pytest
import urllib3
from botocore.eventstream import EventStream
from botocore.response import StreamingBody

from breaker import Budget, BudgetExceeded, ConfigError, Degrade, LoopDetected, LoopPolicy, SessionKilled, Usage
from breaker import semconv as sc
from breaker.estimate import estimate
from breaker.providers.bedrock import model_name
from breaker.providers.trim import trim_messages
from breaker.testing import Reply
from tests.providers.conftest import genai_nano, killed_session, nano
from tests.telemetry.conftest import otel  # noqa: F401  (the in-memory OpenTelemetry SDK fixture)

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
SONNET_US = "us.anthropic.claude-sonnet-4-20250514-v1:0"
NOVA_EU = "eu.amazon.nova-pro-v1:0"
HAIKU_US = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
CROSS_REGION = (
    CLAUDE, SONNET_US, NOVA_EU, "apac.anthropic.claude-sonnet-4-20250514-v1:0",
    "global.anthropic.claude-sonnet-4-20250514-v1:0", "apac.amazon.nova-pro-v1:0", "us.amazon.nova-lite-v1:0",
)
CACHED = Reply(text="cached answer here", input_tokens=1200, cached_tokens=700, cache_write_tokens=300,
               cache_write_1h_tokens=100, output_tokens=3)
CACHED_USAGE = Usage(1200, 3, cache_read_tokens=700, cache_write_tokens=300, cache_write_1h_tokens=100)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No AWS configuration, no instance metadata, and no host but loopback resolved."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/breaker-test/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/breaker-test/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh default session under this environment
    outside: list[str] = []
    resolve = socket.getaddrinfo

    def loopback_only(host, *args, **kw):
        if host not in ("127.0.0.1", "localhost", "::1"):
            outside.append(str(host))
            raise OSError(f"the Bedrock tests resolve loopback only, not {host!r}")
        return resolve(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    yield
    assert outside == [], f"something tried to reach {outside}"


def conversation(tag: str, n: int = 1) -> list[dict]:
    return [{"role": "user", "content": [{"text": f"{tag} message {i}"}]} for i in range(n)]


def anthropic_body(tag: str, max_tokens: int = 1000, **extra) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": f"{tag} message"}], **extra})


def drain(response) -> list[dict]:
    return list(response["stream"] if "stream" in response else response["body"])


# ------------------------------------------------------------------ prices
@pytest.mark.parametrize("model", CROSS_REGION)
def test_converse_is_priced_as_genai_prices_prices_it(guard, fake, model):
    fake.push(Reply(text="a b c d", input_tokens=900, output_tokens=4))
    with guard.session(f"price-{model}") as s:
        response = fake.bedrock().converse(modelId=model, messages=conversation("price"))
    assert response["output"]["message"]["content"] == [{"text": "a b c d"}]
    assert s.calls == 1 and s.tokens == 904
    assert nano(s.cost_usd) == genai_nano(Usage(900, 4), model, "aws") > 0


@pytest.mark.parametrize("api", ["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"])
def test_cached_calls_are_priced_with_their_cache_reads_and_writes(guard, fake, api):
    fake.push(CACHED)
    client = fake.bedrock()
    with guard.session(f"cache-{api}") as s:
        if api.startswith("converse"):
            response = getattr(client, api)(modelId=SONNET_US, messages=conversation("cache"))
        else:
            response = getattr(client, api)(modelId=SONNET_US, body=anthropic_body("cache"))
        if api == "converse":
            usage = response["usage"]  # Bedrock's own convention, which breaker converts
            assert (usage["inputTokens"], usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"]) == (200, 700, 300)
        elif api == "invoke_model":
            assert json.loads(response["body"].read())["usage"]["input_tokens"] == 200  # still readable
        else:
            assert len(drain(response)) > 3
    assert s.calls == 1 and s.tokens == 1203
    assert nano(s.cost_usd) == genai_nano(CACHED_USAGE, SONNET_US, "aws")
    # The cache discount is real: the same tokens uncached cost more.
    assert nano(s.cost_usd) < genai_nano(Usage(1200, 3), SONNET_US, "aws")


def test_converse_stream_is_metered_and_looks_like_botocores_own(guard, fake):
    fake.push(Reply(text="one two three", input_tokens=50, output_tokens=3))
    with guard.session("stream") as s:
        response = fake.bedrock().converse_stream(modelId=NOVA_EU, messages=conversation("stream"))
        assert set(response) == {"ResponseMetadata", "stream"}
        assert isinstance(response["stream"], EventStream)
        assert s.calls == 0  # settled when the stream ends
        events = drain(response)
    assert [next(iter(e)) for e in events] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
        "messageStop", "metadata",
    ]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == "one two three"
    assert s.calls == 1 and s.tokens == 53
    assert nano(s.cost_usd) == genai_nano(Usage(50, 3), NOVA_EU, "aws")


def test_an_arn_is_priced_by_the_model_id_it_ends_with(guard, fake):
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{SONNET_US}"
    assert model_name(arn) == SONNET_US
    assert model_name("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc") .endswith("/abc")
    fake.push(Reply(text="x", input_tokens=10, output_tokens=1))
    with guard.session("arn") as s:
        fake.bedrock().converse(modelId=arn, messages=conversation("arn"))
    assert fake.requests[0].model == arn  # sent as the caller wrote it
    assert nano(s.cost_usd) == genai_nano(Usage(10, 1), SONNET_US, "aws")


# ------------------------------------------------------------------ enforcement
@pytest.mark.parametrize("api", ["converse", "converse_stream", "invoke_model"])
def test_an_unaffordable_call_never_reaches_the_provider(make_guard, fake, api):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    client = fake.bedrock()
    with killed_session(guard, f"poor-{api}"):
        with pytest.raises(BudgetExceeded):
            if api == "invoke_model":
                client.invoke_model(modelId=CLAUDE, body=anthropic_body("poor " * 200))
            else:
                getattr(client, api)(modelId=CLAUDE, messages=conversation("poor", 50))
    assert fake.count == 0


def test_a_kill_passes_through_except_exception_and_ends_the_session(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.000001)]).instrument()
    client = fake.bedrock()
    attempts = 0
    with pytest.raises(SessionKilled) as info:
        with guard.session("swallow"):
            for _ in range(3):
                attempts += 1
                try:
                    client.converse(modelId=SONNET_US, messages=conversation("s", 50),
                                    inferenceConfig={"maxTokens": 1000})
                except Exception:  # agent code that swallows errors does not swallow the kill
                    pass
    assert isinstance(info.value.__cause__, BudgetExceeded)
    assert attempts == 1 and fake.count == 0


def test_a_tripped_session_refuses_every_later_call_before_sending(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=0.002)]).instrument()
    fake.default = Reply(text="w " * 50, input_tokens=400, output_tokens=50)
    client = fake.bedrock()
    with killed_session(guard, "sticky") as s:
        with pytest.raises(BudgetExceeded):
            for i in range(50):
                client.converse(modelId=SONNET_US, messages=conversation(f"sticky{i}"), inferenceConfig={"maxTokens": 64})
        sent = fake.count
        assert 0 < sent < 50 and s.tripped is not None
        with pytest.raises(BudgetExceeded):
            client.converse_stream(modelId=SONNET_US, messages=conversation("after"))
        assert fake.count == sent
    assert nano(s.cost_usd) <= nano(0.002)  # never past the limit


def test_max_tokens_is_lowered_to_what_the_budget_affords(make_guard, fake):
    guard = make_guard(budgets=[Budget(tokens=600)]).instrument()
    client = fake.bedrock()
    with guard.session("cap"):
        client.converse(modelId=SONNET_US, messages=conversation("cap"),
                        inferenceConfig={"maxTokens": 5000, "temperature": 0.2})
        client.converse(modelId=SONNET_US, messages=conversation("nocap"))
        client.invoke_model(modelId=CLAUDE, body=anthropic_body("invoke", max_tokens=5000))
    capped, uncapped, invoked = (r.body for r in fake.requests)
    assert 16 <= capped["inferenceConfig"]["maxTokens"] < 600 and capped["inferenceConfig"]["temperature"] == 0.2
    assert 0 < uncapped["inferenceConfig"]["maxTokens"] < 600  # the usual field set when the request had none
    assert 16 <= invoked["max_tokens"] < 600 and invoked["anthropic_version"] == "bedrock-2023-05-31"


def test_a_cap_the_caller_chose_is_never_raised(make_guard, fake):
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=Degrade(max_output_tokens=500)).instrument()
    client = fake.bedrock()
    with guard.session("low"):
        for i, cap in enumerate((50, 50, 4000)):
            client.converse(modelId=SONNET_US, messages=conversation(f"l{i}"), inferenceConfig={"maxTokens": cap})
    assert [r.body["inferenceConfig"]["maxTokens"] for r in fake.requests] == [50, 50, 500]


def test_extended_thinking_stays_under_a_lowered_max_tokens(make_guard, fake):
    guard = make_guard(budgets=[Budget(tokens=3000)]).instrument()
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 16000}}
    with guard.session("think"):
        fake.bedrock().converse(modelId=SONNET_US, messages=conversation("think"),
                                inferenceConfig={"maxTokens": 20000}, additionalModelRequestFields=thinking)
    body = fake.requests[0].body
    cap = body["inferenceConfig"]["maxTokens"]
    assert cap < 3000 and 1024 <= body["additionalModelRequestFields"]["thinking"]["budget_tokens"] < cap


def test_degrade_switches_the_model_id_and_trims_converse_history(make_guard, fake):
    degrade = Degrade(model_map={SONNET_US: HAIKU_US}, keep_last_messages=2)
    guard = make_guard(budgets=[Budget(usd=10, degrade_at=0.0000001)], degrade=degrade).instrument()
    history = [
        {"role": "user", "content": [{"text": "task"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "search", "input": {"q": "x"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "found"}]}}]},
        {"role": "assistant", "content": [{"text": "thinking it over"}]},
        {"role": "user", "content": [{"text": "go on"}]},
    ]
    with guard.session("deg") as s:
        fake.bedrock().converse(modelId=SONNET_US, messages=history[:1])
        fake.bedrock().converse(modelId=SONNET_US, messages=history)
    first, second = fake.requests
    assert (first.model, second.model) == (SONNET_US, HAIKU_US)
    assert [m["content"][0] for m in second.body["messages"]] == [
        {"text": "task"}, {"text": "thinking it over"}, {"text": "go on"},
    ]
    assert s.calls == 2


def test_converse_tool_pairs_are_kept_together_when_trimmed():
    history = [
        {"role": "user", "content": [{"text": "task"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "search", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "found"}]}}]},
        {"role": "assistant", "content": [{"text": "done"}]},
    ]
    kept = trim_messages(history, 2, style="anthropic")
    # The last two would start on the tool result: the window reaches back to its toolUse.
    assert kept == history


def test_identical_calls_are_stopped_before_sending(guard, fake):
    client = fake.bedrock()
    msgs = conversation("same")
    with killed_session(guard, "loop"):
        with pytest.raises(LoopDetected):
            for _ in range(10):
                client.converse(modelId=NOVA_EU, messages=msgs)
    assert fake.count == 3


@pytest.mark.parametrize("api", ["converse", "converse_stream"])
def test_tool_thrash_is_detected_from_the_models_tool_calls(make_guard, fake, api):
    guard = make_guard(loops=LoopPolicy(max_tool_repeats=2)).instrument()
    fake.default = Reply(tool_calls=[("search", {"q": "same"})])
    client = fake.bedrock()
    with killed_session(guard, f"thrash-{api}"):
        with pytest.raises(LoopDetected) as info:
            for i in range(10):
                response = getattr(client, api)(modelId=SONNET_US, messages=conversation(f"t{i}"))
                if api == "converse_stream":
                    drain(response)
    assert "search" in str(info.value)
    assert fake.count == 3


# ------------------------------------------------------------------ streams
def test_a_stream_past_its_reservation_is_cut_and_billed_what_arrived(make_guard, fake):
    # A provider that ignores the lowered maxTokens: 400 words while the budget pays for far fewer.
    guard = make_guard(budgets=[Budget(tokens=400)]).instrument()
    fake.push(Reply(text=" ".join(["w"] * 400), input_tokens=20, ignore_cap=True))
    msgs = conversation("cut")
    bound = estimate(SONNET_US, msgs)[0]
    received = 0
    try:
        with guard.session("cut") as s:
            with pytest.raises(BudgetExceeded) as info:
                for event in fake.bedrock().converse_stream(modelId=SONNET_US, messages=msgs)["stream"]:
                    received += "contentBlockDelta" in event
            cap = fake.requests[0].output_cap
            assert cap is not None and cap < 400  # the request carried the lowered cap
            assert info.value.reason == "stream_cut" and received == cap
            # What arrived is billed: the input bound (Bedrock reports none before the end) and one chunk
            # past the cap (each a token at least), the one that showed the overshoot.
            assert s.calls == 1 and s.tokens == bound + cap + 1
            assert nano(s.cost_usd) == genai_nano(Usage(bound, cap + 1), SONNET_US, "aws")
    except SessionKilled:  # that one token past the reservation passed the hard limit: the session stops too
        pass
    assert fake.count == 1


def test_an_abandoned_stream_is_billed_for_what_arrived(guard, fake):
    fake.push(Reply(text=" ".join(f"w{i}" for i in range(40)), input_tokens=30))
    msgs = conversation("abandon")
    with guard.session("abandon") as s:
        response = fake.bedrock().converse_stream(modelId=NOVA_EU, messages=msgs)
        for _ in zip(range(5), response["stream"]):  # messageStart + 4 deltas, then walk away
            pass
        assert s.calls == 0
        del response, _
        gc.collect()
        assert s.calls == 1
        # Input at the request's bound (no usage arrived); output the conservative count: "w0 w1 w2 w3 ".
        bound = estimate(NOVA_EU, msgs)[0]
        assert s.tokens == bound + 12
        assert nano(s.cost_usd) == genai_nano(Usage(bound, 12), NOVA_EU, "aws")


def test_a_stream_closed_early_is_billed_once(guard, fake):
    fake.push(Reply(text=" ".join(f"w{i}" for i in range(40)), input_tokens=30))
    msgs = conversation("close")
    with guard.session("close") as s:
        stream = fake.bedrock().converse_stream(modelId=NOVA_EU, messages=msgs)["stream"]
        next(stream), next(stream), next(stream)  # messageStart + "w0 " + "w1 "
        stream.close()
        stream.close()
        gc.collect()
        assert s.calls == 1 and s.tokens == estimate(NOVA_EU, msgs)[0] + 6


def test_a_broken_stream_is_billed_and_counted_as_an_error(make_guard, fake):
    guard = make_guard(loops=LoopPolicy(max_errors=1)).instrument()
    fake.push(Reply(text=" ".join(f"w{i}" for i in range(40)), input_tokens=30, break_after=6))
    client = fake.bedrock()
    with killed_session(guard, "broken") as s:
        seen = []
        with pytest.raises((botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError)):  # what botocore raises
            for event in client.converse_stream(modelId=NOVA_EU, messages=conversation("broken"))["stream"]:
                seen.append(event)
        assert len(seen) == 6 and s.calls == 1 and s.cost_usd > 0
        with pytest.raises(LoopDetected):  # the loop detector saw the failure
            client.converse(modelId=NOVA_EU, messages=conversation("broken-2"))
        assert fake.count == 1


def test_a_provider_error_is_an_error_the_caller_sees_and_costs_nothing(guard, fake):
    fake.push(Reply(status=429, error="slow down"))
    with guard.session("throttled") as s:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            fake.bedrock().converse(modelId=NOVA_EU, messages=conversation("throttled"))
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert s.calls == 1 and s.cost_usd == 0 and fake.count == 1


def test_usage_breaker_cannot_read_is_billed_at_the_worst_case(guard, fake, caplog):
    odd = {"inputTokens": -1, "outputTokens": 3, "totalTokens": 2}  # a proxy's rewrite: no count to price
    fake.push(Reply(text="odd", raw_usage=odd))
    msgs = conversation("odd")
    with caplog.at_level(logging.WARNING, logger="breaker"), guard.session("odd") as s:
        response = fake.bedrock().converse(modelId=CLAUDE, messages=msgs, inferenceConfig={"maxTokens": 300})
    assert response["usage"] == odd  # returned unchanged
    assert s.tokens == estimate(CLAUDE, msgs)[0] + 300
    assert "Bedrock converse" in caplog.text


def test_invoke_model_with_another_vendors_body_passes_through_with_a_warning(guard, fake, caplog):
    body = json.dumps({"inputText": "embed me"})
    with caplog.at_level(logging.WARNING, logger="breaker"), guard.session("titan") as s:
        with pytest.raises(botocore.exceptions.ClientError):  # FakeLLM serves Anthropic bodies only
            fake.bedrock().invoke_model(modelId="amazon.titan-embed-text-v2:0", body=body)
    assert fake.count == 1 and s.calls == 0
    assert "amazon.titan-embed-text-v2:0" in caplog.text and "embed me" not in caplog.text


def test_invoke_model_answer_is_readable_as_before(guard, fake):
    fake.push(Reply(text="from claude", input_tokens=40, output_tokens=2))
    with guard.session("invoke") as s:
        response = fake.bedrock().invoke_model(modelId=CLAUDE, body=anthropic_body("invoke").encode())
    assert isinstance(response["body"], StreamingBody)
    answer = json.loads(response["body"].read())
    assert answer["content"][0]["text"] == "from claude"
    assert nano(s.cost_usd) == genai_nano(Usage(40, 2), CLAUDE, "aws")


# ------------------------------------------------------------------ wrap, instrument, counted once
def test_wrap_instruments_one_client_only(make_guard, fake):
    guard = make_guard()
    client = guard.wrap(fake.bedrock())
    assert guard.wrap(client) is client  # idempotent: one layer
    plain = fake.bedrock()
    with guard.session("wrap") as s:
        client.converse(modelId=NOVA_EU, messages=conversation("wrapped"))
        drain(client.converse_stream(modelId=NOVA_EU, messages=conversation("wrapped stream")))
        plain.converse(modelId=NOVA_EU, messages=conversation("plain"))
    assert s.calls == 2 and fake.count == 3


def test_wrap_rejects_other_aws_services(make_guard):
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(ConfigError, match="bedrock-runtime"):
        make_guard().wrap(s3)


def test_instrument_covers_clients_made_before_and_after_and_uninstrument_restores(make_guard, fake):
    original = botocore.session.Session.__dict__["create_client"]
    before = fake.bedrock()
    guard = make_guard().instrument()
    after = fake.bedrock()
    assert botocore.session.Session.__dict__["create_client"] is not original
    with guard.session("both") as s:
        before.converse(modelId=NOVA_EU, messages=conversation("before"))
        drain(after.converse_stream(modelId=NOVA_EU, messages=conversation("after")))
        after.invoke_model(modelId=CLAUDE, body=anthropic_body("after"))
    assert s.calls == 3
    guard.uninstrument()
    assert botocore.session.Session.__dict__["create_client"] is original
    for client in (before, after):
        assert not {"converse", "converse_stream", "invoke_model"} & set(vars(client))  # the class's own again
        assert type(client).converse is getattr(client, "converse").__func__
    with guard.session("off") as s:
        before.converse(modelId=NOVA_EU, messages=conversation("off"))
        fake.bedrock().converse(modelId=NOVA_EU, messages=conversation("off new"))
    assert s.calls == 0 and fake.count == 5


def test_wrap_and_instrument_together_count_a_call_once(guard, fake):
    import wrapt

    client = guard.wrap(fake.bedrock())  # instrumented as it was made: wrap adds no second layer
    assert not isinstance(client.converse.__wrapped__, wrapt.FunctionWrapper)
    other = fake.bedrock()
    with guard.session("once") as s:
        client.converse(modelId=NOVA_EU, messages=conversation("once"))
        drain(other.converse_stream(modelId=NOVA_EU, messages=conversation("once stream")))
    assert s.calls == 2 and fake.count == 2


def test_telemetry_names_the_call_and_carries_no_text(make_guard, fake, otel):  # noqa: F811
    guard = make_guard(telemetry=otel.telemetry()).instrument()
    fake.push(CACHED)
    with guard.session("otel"):
        fake.bedrock().converse(modelId=SONNET_US, messages=conversation("PROMPT-CANARY-7f3a"))
    (span,) = otel.spans()
    attributes = dict(span.attributes)
    assert span.name == f"chat {SONNET_US}"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "aws"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200  # cache reads and writes counted in
    assert "PROMPT-CANARY-7f3a" not in span.to_json() and "cached answer" not in span.to_json()


def test_the_example_runs_offline():
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(root), AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent/config",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials")
    done = subprocess.run([sys.executable, str(root / "examples" / "bedrock_example.py")], capture_output=True,
                          text=True, env=env, cwd=root, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model: Your order 42 is at the hub." in done.stdout and "streamed: Your order 42" in done.stdout
    stopped = re.search(r"in (\d+) calls; FakeLLM received (\d+) of them", done.stdout)
    assert "SessionKilled:" in done.stdout and stopped and stopped.group(1) == stopped.group(2)
