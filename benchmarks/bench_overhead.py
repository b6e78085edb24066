"""What breaker adds to one chat call: the guard's own work, beside the bare SDK and OTel's instrumentation.

The Gemini adapter (google-genai) is measured the same two ways in the same run (``gemini``), and so
is the Bedrock adapter (boto3 ``bedrock-runtime`` Converse: ``bedrock``).

Run:  .venv/bin/python benchmarks/bench_overhead.py [--rounds 25] [--calls 200] [--profile]

The SDK's HTTP layer is replaced by an ``httpx2.MockTransport`` returning a
ready chat completion, so the figures are the SDK's own work plus whatever
the instrumentation adds, with no network and no server. Every call sends a
20-message request; like an agent step, each call's last message is new (the
19 before it are the same objects), so breaker's estimate caches see what
they see in a real run, and loop detection stays on with its defaults.

The SDK's own work on a 20-message request (mostly ``maybe_transform`` of
the messages) takes milliseconds and varies far more than the microseconds
being measured, so the difference of two end-to-end timings cannot resolve
them. Instead a timing shim is installed *under* every instrumentation, as
the SDK method they all wrap: it accumulates the time spent inside the SDK,
and what each configuration adds is the time spent *outside* it (the loop and
the shim cost the same in every configuration, so "bare" is the zero line).

Configurations are measured in interleaved rounds (bare, breaker, otel, ...)
so that machine noise hits all of them alike; per-call figures are the
median over rounds, with the 10th–90th percentile spread.

OTel's ``opentelemetry-instrumentation-openai-v2`` must match its
``opentelemetry-util-genai`` and ``wrapt`` 2.x: 2.4b0 with util-genai 1.1b0
works (2.3b0 calls ``wrap_function_wrapper(module=...)``, which wrapt 2 rejects;
2.4b0 with util-genai 1.2b0 misses ``util.genai.instruments``); the project's
``bench`` extra pins that pair.
The OTel row is skipped, with the reason, when it cannot instrument.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import pstats
import statistics
import time
from typing import Any, Callable

import httpx2
import openai

import breaker

RESPONSE = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 412, "completion_tokens": 2, "total_tokens": 414,
              "prompt_tokens_details": {"cached_tokens": 128}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()


def _handler(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=RESPONSE, headers={"content-type": "application/json"})


def make_client() -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(_handler))
    return openai.OpenAI(api_key="bench", base_url="http://bench.invalid/v1", http_client=http, max_retries=0)


HISTORY = [{"role": "system", "content": "You are a careful assistant. " * 8}] + [
    {"role": "user" if i % 2 else "assistant", "content": f"Step {i}: " + "some words of the conversation " * 6}
    for i in range(18)
]


_serial = itertools.count()


def requests(n: int) -> list[list[dict]]:
    """n distinct 20-message requests sharing their first 19 message objects."""
    return [HISTORY + [{"role": "user", "content": f"next question {next(_serial)}"}] for _ in range(n)]


class Shim:
    """Installed as ``Completions.create`` under every instrumentation: times the SDK's own work."""

    def __init__(self) -> None:
        from openai.resources.chat.completions.completions import Completions

        self.cls = Completions
        self.original = Completions.__dict__["create"]
        self.inside = 0.0
        original, clock = self.original, time.perf_counter
        shim = self

        def create(self: object, *args: object, **kwargs: object) -> object:
            t0 = clock()
            try:
                return original(self, *args, **kwargs)
            finally:
                shim.inside += clock() - t0

        self.create = create

    def install(self) -> None:
        self.cls.create = self.create

    def remove(self) -> None:
        self.cls.create = self.original


SHIM: Shim


def run(client: openai.OpenAI, batch: list[list[dict]]) -> tuple[float, float]:
    """(µs per call in total, µs per call outside the SDK)."""
    SHIM.inside = 0.0
    create = client.chat.completions.create
    t0 = time.perf_counter()
    for msgs in batch:
        create(model="gpt-4o-mini", messages=msgs, max_tokens=256)
    total = time.perf_counter() - t0
    n = len(batch)
    return total / n * 1e6, (total - SHIM.inside) / n * 1e6


class Config:
    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[float] = []  # µs per call outside the SDK
        self.totals: list[float] = []

    def __enter__(self) -> Config:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Bare(Config):
    pass


class WithBreaker(Config):
    def __init__(self, name: str, telemetry: bool) -> None:
        super().__init__(name)
        self.guard = breaker.Breaker(budgets=[breaker.Budget(usd=1_000_000)], alerts=[], telemetry=telemetry)
        self.scope = None

    def __enter__(self) -> Config:
        self.guard.instrument()
        self.scope = self.guard.session("bench")
        self.scope.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.scope.__exit__(None, None, None)
        self.guard.uninstrument()


class WithOTel(Config):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        self.instrumentor = OpenAIInstrumentor()
        self.providers = {"tracer_provider": TracerProvider(), "meter_provider": MeterProvider()}

    def __enter__(self) -> Config:
        self.instrumentor.instrument(**self.providers)
        return self

    def __exit__(self, *exc: object) -> None:
        self.instrumentor.uninstrument()


def isolated(rounds: int, calls: int = 2000) -> None:
    """The guard's work alone: the patched method's wrapper around a stub that returns a ready response.

    No SDK work runs between calls, so this is the library's cost with warm
    caches: the floor of what the in-SDK figure above measures. The stub
    "sends" through the client's ``post`` as the SDK does, with breaker's
    HTTP-layer patch on it (``instrument()`` puts one there for callers that
    post requests themselves): a request from a patched method passes it
    through, and that pass-through is counted here (inside the SDK, the shim
    above counts it as the SDK's time).
    """
    from breaker.providers.drivers import run_sync

    guard, adapter, stub, bare_stub = isolated_stub()
    bare, guarded = [], []
    gc.disable()
    try:
        with guard.session("isolated"):
            for _ in range(rounds):
                batch = requests(calls)
                t0 = time.perf_counter()
                for msgs in batch:
                    bare_stub(model="gpt-4o-mini", messages=msgs, max_tokens=256)
                bare.append((time.perf_counter() - t0) / calls * 1e6)
                batch = requests(calls)
                t0 = time.perf_counter()
                for msgs in batch:
                    run_sync(guard, adapter, stub, (), {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 256})
                guarded.append((time.perf_counter() - t0) / calls * 1e6)
                gc.collect()
    finally:
        gc.enable()
    added = sorted(g - b for g, b in zip(guarded, bare))
    print(f"breaker's own work, isolated (stub instead of the SDK, {rounds} rounds x {calls} calls): "
          f"median {statistics.median(added):.1f} µs per call "
          f"(p10 {added[len(added) // 10]:.1f}, p90 {added[(len(added) * 9) // 10]:.1f})")
    cold(guard, adapter, stub, bare_stub)



def isolated_stub(telemetry: bool = False) -> tuple[breaker.Breaker, Any, Callable[..., Any], Callable[..., Any]]:
    """``(guard, adapter, stub, bare_stub)`` for the isolated figure: the chat adapter, and a stub
    that returns a ready ``ChatCompletion`` posted through ``instrument()``'s HTTP-layer patch
    (``stub``) or not (``bare_stub``). Shared with ``bench_instructions.py`` and ``bench_floor.py``."""
    from openai.types.chat import ChatCompletion

    import wrapt

    from breaker.providers.openai import ChatAdapter
    from breaker.providers.patching import _load_sentinels, _make_http_wrapper, _Switch

    _load_sentinels()
    ready = ChatCompletion.model_validate(json.loads(RESPONSE))

    def post(path: str, **kwargs: object) -> ChatCompletion:
        return ready

    guard = breaker.Breaker(budgets=[breaker.Budget(usd=1_000_000)], alerts=[], telemetry=telemetry)
    adapter = ChatAdapter()
    patched_post = wrapt.FunctionWrapper(post, _make_http_wrapper(guard, {"/chat/completions": adapter}, False, _Switch()))

    def bare_stub(**kwargs: object) -> ChatCompletion:
        return post("/chat/completions", cast_to=ChatCompletion, body=kwargs, options={})

    def stub(**kwargs: object) -> ChatCompletion:
        return patched_post("/chat/completions", cast_to=ChatCompletion, body=kwargs, options={})

    return guard, adapter, stub, bare_stub

def cold(guard: breaker.Breaker, adapter: object, stub: Callable[..., object], bare_stub: Callable[..., object],
         rounds: int = 5, calls: int = 300) -> None:
    """The isolated figure again, with other work evicting the CPU caches between calls.

    Why the in-SDK figure is several times the isolated one: between two
    calls, the SDK (and, in production, the agent) touch megabytes of other
    objects. Each call is timed alone, after ``json.dumps`` of that many small
    dicts, beside the bare stub timed the same way.
    """
    from breaker.providers.drivers import run_sync

    clock = time.perf_counter
    print("isolated again, caches evicted between calls by json.dumps of N small dicts "
          f"(median of {rounds} rounds x {calls} calls, µs per call):")
    gc.disable()
    try:
        with guard.session("cold"):
            for n in (2_000, 5_000, 20_000):
                other = [{"k": i, "v": str(i) * 3, "l": [i, i + 1]} for i in range(n)]
                bare, guarded = [], []
                for _ in range(rounds):
                    for out, guarded_call in ((bare, False), (guarded, True)):
                        spent = 0.0
                        for msgs in requests(calls):
                            json.dumps(other)
                            kwargs = {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 256}
                            t0 = clock()
                            if guarded_call:
                                run_sync(guard, adapter, stub, (), kwargs)
                            else:
                                bare_stub(**kwargs)
                            spent += clock() - t0
                        out.append(spent / calls * 1e6)
                    gc.collect()
                b, g = statistics.median(bare), statistics.median(guarded)
                print(f"  N = {n:>6,}: bare stub {b:6.1f}   breaker {g:6.1f}   breaker's own work {g - b:6.1f}")
    finally:
        gc.enable()


# ------------------------------------------------------------------ shared by the adapters measured beside OpenAI
def _in_sdk_rounds(configs: list[Config], send: Callable[[list[list[dict]]], float],
                   make: Callable[[int], list[list[dict]]], rounds: int, calls: int) -> None:
    """Warm every config, then ``rounds`` interleaved rounds of ``calls`` requests each, collector off."""
    try:
        for config in configs:
            with config:
                send(make(20))
        gc.disable()
        for _ in range(rounds):
            for config in configs:
                batch = make(calls)
                with config:
                    config.samples.append(send(batch))
            gc.collect()
    finally:
        gc.enable()


def _print_rows(configs: list[Config]) -> None:
    """Median, p10, p90 per config, and what each adds to the first (the bare SDK)."""
    base = statistics.median(configs[0].samples)
    for config in configs:
        s = sorted(config.samples)
        med = statistics.median(s)
        added = "" if config is configs[0] else f"{med - base:+.1f}"
        print(f"{config.name:32} {med:8.1f} {s[len(s) // 10]:8.1f} {s[(len(s) * 9) // 10]:8.1f} {added:>8}")


def _isolated_pair(name: str, adapter: Any, ready: object, make: Callable[[int], list[list[dict]]],
                   request: Callable[[list[dict]], dict[str, Any]], rounds: int, calls: int = 2000) -> None:
    """An adapter's own work: ``run_sync`` around a stub returning ``ready``, beside the stub alone."""
    from breaker.providers.drivers import run_sync

    guard = breaker.Breaker(budgets=[breaker.Budget(usd=1_000_000)], alerts=[], telemetry=False)

    def stub(**kwargs: object) -> object:
        return ready

    bare: list[float] = []
    guarded: list[float] = []
    gc.disable()
    try:
        with guard.session(f"isolated-{name}"):
            for _ in range(rounds):
                for out, guarded_call in ((bare, False), (guarded, True)):
                    batch = make(calls)
                    t0 = time.perf_counter()
                    for msgs in batch:
                        kwargs = request(msgs)
                        if guarded_call:
                            run_sync(guard, adapter, stub, (), kwargs)
                        else:
                            stub(**kwargs)
                    out.append((time.perf_counter() - t0) / len(batch) * 1e6)
                gc.collect()
    finally:
        gc.enable()
    added = sorted(g - b for g, b in zip(guarded, bare))
    print(f"the {name} adapter's own work, isolated ({rounds} rounds x {calls} calls): median "
          f"{statistics.median(added):.1f} µs per call (p10 {added[len(added) // 10]:.1f}, "
          f"p90 {added[(len(added) * 9) // 10]:.1f})")


# ------------------------------------------------------------------ the Gemini adapter, beside the OpenAI one
GEMINI_RESPONSE = json.dumps({
    "candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 412, "candidatesTokenCount": 2, "totalTokenCount": 414,
                      "cachedContentTokenCount": 128},
    "modelVersion": "gemini-2.5-flash",
}).encode()
GEMINI_HISTORY = [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
                  for m in HISTORY[1:]]


def gemini_requests(n: int) -> list[list[dict]]:
    """``requests(n)`` in Gemini's shape: 19 shared contents and a new last one (the system prompt goes
    in ``config.system_instruction``)."""
    return [GEMINI_HISTORY + [{"role": "user", "parts": [{"text": f"next question {next(_serial)}"}]}]
            for _ in range(n)]


def gemini(rounds: int, calls: int) -> None:
    """The Gemini adapter measured as the OpenAI one above: in the SDK (a timing shim as
    ``Models._generate_content``, the one-request method breaker patches, HTTP stubbed with
    ``httpx2.MockTransport``), then isolated (a stub returning a ready response)."""
    try:
        from google import genai as google_genai
        from google.genai import models as genai_models, types
    except ImportError as e:
        print(f"(skipping the Gemini adapter: {e}; pip install agent-cost-breaker[gemini])")
        return
    from breaker.providers.gemini import GeminiAdapter

    inside = [0.0]
    original = genai_models.Models.__dict__["_generate_content"]

    def shim(self: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return original(self, **kwargs)
        finally:
            inside[0] += time.perf_counter() - t0

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=GEMINI_RESPONSE, headers={"content-type": "application/json"})

    client = google_genai.Client(api_key="bench", http_options=types.HttpOptions(
        base_url="http://bench.invalid", client_args={"transport": httpx2.MockTransport(handler)}))
    cfg = types.GenerateContentConfig(max_output_tokens=256, system_instruction=HISTORY[0]["content"])

    def send(batch: list[list[dict]]) -> float:
        inside[0] = 0.0
        t0 = time.perf_counter()
        for contents in batch:
            client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=cfg)
        return (time.perf_counter() - t0 - inside[0]) / len(batch) * 1e6

    genai_models.Models._generate_content = shim  # type: ignore[method-assign]
    configs: list[Config] = [Bare("bare google-genai"), WithBreaker("google-genai + breaker", telemetry=False)]
    try:
        _in_sdk_rounds(configs, send, gemini_requests, rounds, calls)
    finally:
        genai_models.Models._generate_content = original  # type: ignore[method-assign]
    print(f"Gemini, {rounds} rounds x {calls} calls, 20-content generate_content request, HTTP stubbed")
    _print_rows(configs)
    ready = types.GenerateContentResponse.model_validate(json.loads(GEMINI_RESPONSE))
    _isolated_pair("Gemini", GeminiAdapter(), ready, gemini_requests,
                   lambda contents: {"model": "gemini-2.5-flash", "contents": contents, "config": cfg}, rounds)


# ------------------------------------------------------------------ the Bedrock adapter, beside the OpenAI one
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BEDROCK_RESPONSE = json.dumps({
    "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": "end_turn",
    "usage": {"inputTokens": 284, "outputTokens": 2, "totalTokens": 414, "cacheReadInputTokens": 128},
    "metrics": {"latencyMs": 1},
}).encode()
BEDROCK_SYSTEM = [{"text": HISTORY[0]["content"]}]
BEDROCK_HISTORY = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in HISTORY[1:]]


def bedrock_requests(n: int) -> list[list[dict]]:
    """``requests(n)`` in Converse's shape: 19 shared messages and a new last one (the system prompt
    goes in ``system``)."""
    return [BEDROCK_HISTORY + [{"role": "user", "content": [{"text": f"next question {next(_serial)}"}]}]
            for _ in range(n)]


def bedrock(rounds: int, calls: int) -> None:
    """The Bedrock adapter measured as the OpenAI one above: in the SDK (a real boto3
    ``bedrock-runtime`` client, a timing shim as its class's ``converse``, the method breaker's
    wrapper calls, and the HTTP send answered by a ``before-send`` handler, botocore's own way to
    stub the wire: request building, validation, serialisation and SigV4 signing all run), then
    isolated (a stub returning a ready response)."""
    try:
        import boto3
        from botocore.awsrequest import AWSResponse
    except ImportError as e:
        print(f"(skipping the Bedrock adapter: {e}; pip install agent-cost-breaker[bedrock])")
        return
    from breaker.providers.bedrock import ConverseAdapter

    class Raw:  # what AWSResponse reads a body from
        def stream(self, **kwargs: object) -> Any:
            yield BEDROCK_RESPONSE

    def answer(**kwargs: object) -> AWSResponse:
        return AWSResponse("http://bench.invalid", 200, {"content-type": "application/json"}, Raw())

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url="http://bench.invalid",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    client.meta.events.register("before-send.bedrock-runtime.Converse", answer)
    inside = [0.0]
    cls = type(client)  # botocore's class for this one client: nothing else sees the shim
    original = cls.__dict__["converse"]

    def shim(self: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return original(self, **kwargs)
        finally:
            inside[0] += time.perf_counter() - t0

    cls.converse = shim

    def send(batch: list[list[dict]]) -> float:
        inside[0] = 0.0
        t0 = time.perf_counter()
        for msgs in batch:  # client.converse looked up per call: instrument() sets it on the client
            client.converse(modelId=BEDROCK_MODEL, messages=msgs, system=BEDROCK_SYSTEM,
                            inferenceConfig={"maxTokens": 256})
        return (time.perf_counter() - t0 - inside[0]) / len(batch) * 1e6

    configs: list[Config] = [Bare("bare boto3"), WithBreaker("boto3 + breaker", telemetry=False)]
    _in_sdk_rounds(configs, send, bedrock_requests, rounds, calls)
    print(f"Bedrock, {rounds} rounds x {calls} calls, 20-message converse request, HTTP stubbed "
          f"(boto3's own work per call: {inside[0] / calls * 1e6:,.0f} µs)")
    _print_rows(configs)
    _isolated_pair("Bedrock", ConverseAdapter(), json.loads(BEDROCK_RESPONSE), bedrock_requests,
                   lambda msgs: {"modelId": BEDROCK_MODEL, "messages": msgs, "system": BEDROCK_SYSTEM,
                                 "inferenceConfig": {"maxTokens": 256}}, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the breaker configuration and print the top")
    args = parser.parse_args()

    global SHIM
    SHIM = Shim()
    SHIM.install()
    client = make_client()
    configs: list[Config] = [Bare("bare SDK"), WithBreaker("SDK + breaker", telemetry=False),
                             WithBreaker("SDK + breaker (telemetry on)", telemetry=True)]
    try:
        otel = WithOTel("SDK + otel-v2")
        with otel:
            pass
        configs.append(otel)
    except Exception as e:  # not installed, or a version that cannot instrument (see the module docstring)
        print(f"(skipping SDK + otel-v2: {type(e).__name__}: {e})")

    warm = requests(50)
    for cfg in configs:
        with cfg:
            run(client, warm)

    gc.disable()
    try:
        for r in range(args.rounds):
            for cfg in configs:
                batch = requests(args.calls)
                with cfg:
                    total, outside = run(client, batch)
                cfg.totals.append(total)
                cfg.samples.append(outside)
            gc.collect()
    finally:
        gc.enable()

    print(f"{args.rounds} rounds x {args.calls} calls, 20-message chat request, HTTP stubbed")
    print(f"SDK's own work per call (inside the shim, all configurations): "
          f"median {statistics.median(c for cfg in configs for c in cfg.totals):,.0f} µs")
    print(f"{'µs per call outside the SDK':32} {'median':>8} {'p10':>8} {'p90':>8} {'added':>8}")
    base = statistics.median(configs[0].samples)
    for cfg in configs:
        s = sorted(cfg.samples)
        med = statistics.median(s)
        p10, p90 = s[len(s) // 10], s[(len(s) * 9) // 10]
        added = "" if cfg is configs[0] else f"{med - base:+.1f}"
        print(f"{cfg.name:32} {med:8.1f} {p10:8.1f} {p90:8.1f} {added:>8}")

    isolated(args.rounds)
    gemini(args.rounds, args.calls)
    bedrock(args.rounds, args.calls)

    if args.profile:
        cfg = configs[1]
        batch = requests(2000)
        with cfg:
            prof = cProfile.Profile()
            prof.enable()
            run(client, batch)
            prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(r"breaker|wrapt", 25)
    SHIM.remove()


if __name__ == "__main__":
    main()
