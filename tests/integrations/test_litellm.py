"""BreakerLogger with the real LiteLLM SDK against breaker.testing.FakeLLM (OpenAI wire format, loopback)."""

from __future__ import annotations

import pytest

litellm = pytest.importorskip("litellm")

import breaker  # noqa: E402
from breaker import Breaker, Budget, BudgetExceeded, Degrade, LoopDetected, LoopPolicy  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from breaker_litellm import BreakerLogger  # noqa: E402

from .conftest import SECRET, genai_usd  # noqa: E402


@pytest.fixture
def fake():
    with FakeLLM(default=Reply(text="one more step", output_tokens=500)) as server:
        yield server


@pytest.fixture
def logger_for():
    def make(guard: Breaker) -> BreakerLogger:
        logger = BreakerLogger(guard)
        litellm.callbacks = [logger]
        return logger

    litellm.logging_callback_manager._reset_all_callbacks()  # LiteLLM copies callbacks into several lists
    yield make
    litellm.logging_callback_manager._reset_all_callbacks()


def ask(fake, messages, **kw):
    return litellm.completion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k", messages=messages,
                              max_tokens=kw.pop("max_tokens", 500), **kw)


def test_runaway_loop_is_killed_within_budget(fake, logger_for, events):
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[events])
    logger = logger_for(guard)
    messages = [{"role": "user", "content": f"do it {SECRET}"}]
    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("litellm-runaway") as s:
            for _ in range(100):
                try:
                    reply = ask(fake, messages)
                    messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                                 {"role": "user", "content": "continue"}]
                except Exception:  # noqa: BLE001 - agent code swallows errors; the kill passes
                    pass
    assert logger.wait_settled()
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert fake.count == s.calls and 5 <= s.calls < 10  # $0.005 of output a call
    assert s.cost_usd <= 0.05 and SECRET not in events.text()


async def test_async_calls_are_admitted_and_settled(fake, logger_for):
    guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[])
    logger = logger_for(guard)
    with pytest.raises(breaker.SessionKilled):
        async with guard.session("litellm-async") as s:
            for _ in range(50):
                await litellm.acompletion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k",
                                          messages=[{"role": "user", "content": f"step {_}"}], max_tokens=500)
    assert await logger.wait_settled_async()
    assert fake.count == s.calls and 2 <= s.calls <= 4 and s.cost_usd <= 0.02


def test_cached_and_reasoning_tokens_are_priced_like_genai_prices(fake, logger_for):
    guard = Breaker(alerts=[])
    logger = logger_for(guard)
    fake.push(Reply(text="done", input_tokens=9_000, cached_tokens=4_000, output_tokens=600, reasoning_tokens=200))
    with guard.session("litellm-usage") as s:
        litellm.completion(model="openai/o3-mini", api_base=fake.base_url, api_key="k",
                           messages=[{"role": "user", "content": "x" * 40_000}], max_tokens=1_000)
        assert logger.wait_settled()
        expected = genai_usd("o3-mini", "openai", input_tokens=9_000, cache_read_tokens=4_000, output_tokens=600,
                             output_reasoning_tokens=200)
        assert s.cost_usd == pytest.approx(expected, abs=1e-9) and s.tokens == 9_600


def test_without_max_tokens_the_worst_case_is_the_models_maximum_output(fake, logger_for):
    guard = Breaker(budgets=[Budget(usd=0.10)], alerts=[])
    logger = logger_for(guard)
    with guard.session("litellm-nocap") as s:
        with pytest.raises(BudgetExceeded, match="pass max_tokens"):  # 16,384 x $10/M = $0.16 > $0.10
            litellm.completion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k",
                               messages=[{"role": "user", "content": "hi"}])
        assert fake.count == 0 and s.calls == 0
        ask(fake, [{"role": "user", "content": "hi"}], max_tokens=1_000)
        assert logger.wait_settled() and fake.count == s.calls == 1


def test_tool_thrash_is_stopped_by_loop_detection(fake, logger_for):
    guard = Breaker(loops=LoopPolicy(max_tool_repeats=3), alerts=[])
    logger = logger_for(guard)
    fake.push(*[Reply(tool_calls=[("search", {"q": "same"})]) for _ in range(10)])
    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("litellm-thrash") as s:
            for n in range(10):
                ask(fake, [{"role": "user", "content": f"try {n}"}])
                logger.wait_settled()
    assert isinstance(killed.value.__cause__, LoopDetected)
    assert fake.count == s.calls == 4


def test_failed_calls_are_settled_as_errors(fake, logger_for):
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])
    logger = logger_for(guard)
    fake.push(Reply(status=401, error="bad key"))
    with guard.session("litellm-fail") as s:
        with pytest.raises(litellm.AuthenticationError):
            ask(fake, [{"role": "user", "content": "x"}], max_retries=0)
        assert logger.wait_settled()
        assert s.calls == 1 and s.cost_usd == 0 and s.remaining_usd == pytest.approx(0.05)


def test_degrade_budgets_are_refused_not_sent_unpatched(fake, logger_for):
    guard = Breaker(budgets=[Budget(usd=0.05, degrade_at=0.1)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])
    logger = logger_for(guard)
    with guard.session("litellm-degrade") as s:
        ask(fake, [{"role": "user", "content": "a"}])
        assert logger.wait_settled()
        with pytest.raises(BudgetExceeded, match="degrade gpt-4o to gpt-4o-mini"):
            ask(fake, [{"role": "user", "content": "b"}])
    assert fake.count == s.calls == 1


async def test_async_calls_are_degraded_in_the_request(fake, logger_for):
    guard = Breaker(budgets=[Budget(usd=0.05, degrade_at=0.15)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])
    logger_for(guard)
    async with guard.session("litellm-degrade-async") as s:
        for n in range(4):
            await litellm.acompletion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k",
                                      messages=[{"role": "user", "content": f"q{n}"}], max_tokens=500)
    models = [r.body["model"] for r in fake.requests]
    assert models == ["gpt-4o", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]  # $0.005 each: 15% after two
    assert s.calls == 4 and s.cost_usd == pytest.approx(
        2 * genai_usd("gpt-4o", "openai", input_tokens=5, output_tokens=500)
        + 2 * genai_usd("gpt-4o-mini", "openai", input_tokens=5, output_tokens=500), rel=0.01)


def test_with_instrument_each_call_is_counted_once(fake, logger_for):
    guard = Breaker(alerts=[])
    logger = logger_for(guard)
    guard.instrument()
    try:
        with guard.session("litellm-once") as s:
            for n in range(3):
                ask(fake, [{"role": "user", "content": f"q{n}"}])
            assert logger.wait_settled()
            assert fake.count == s.calls == 3
    finally:
        guard.uninstrument()


async def test_with_instrument_async_calls_are_counted_once_and_capped(fake, logger_for):
    """LiteLLM's async OpenAI route posts below ``create`` too: the HTTP-layer patch admits it, lowers its
    ``max_tokens`` to what the budget can pay, and the logger stands aside."""
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])  # 100k output tokens of gpt-4o would cost $1
    logger = logger_for(guard)
    guard.instrument()
    try:
        async with guard.session("litellm-once-async") as s:
            for n in range(2):
                await litellm.acompletion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k",
                                          messages=[{"role": "user", "content": f"q{n}"}], max_tokens=100_000)
            assert await logger.wait_settled_async()
            assert fake.count == s.calls == 2
    finally:
        guard.uninstrument()
    caps = [r.body.get("max_tokens") or r.body.get("max_completion_tokens") for r in fake.requests]
    assert all(0 < cap < 100_000 for cap in caps)  # the patch reached the posted request


async def test_async_degrade_lowers_the_reasoning_effort_but_never_raises_it(fake, logger_for):
    async def efforts_sent(effort: str) -> list[str | None]:
        guard = Breaker(budgets=[Budget(usd=1.0, degrade_at=0.0001)], degrade=Degrade(reasoning_effort="medium"),
                        alerts=[])
        logger = logger_for(guard)
        first = len(fake.requests)
        async with guard.session(f"litellm-effort-{effort}"):
            for n in range(3):
                await litellm.acompletion(model="openai/o3-mini", api_base=fake.base_url, api_key="k",
                                          messages=[{"role": "user", "content": f"q{n}"}], max_tokens=500,
                                          reasoning_effort=effort)
        assert await logger.wait_settled_async()
        return [r.body.get("reasoning_effort") for r in fake.requests[first:]]

    assert await efforts_sent("high") == ["high", "medium", "medium"]  # degraded from the second call on
    assert await efforts_sent("low") == ["low", "low", "low"]  # the caller asked for less than the degrade: kept


# ---------------------------------------------------------------------- issue #16: tight bounds, no false kills
def check_learned(calls, requests) -> None:
    from breaker.testing.reply import count_input

    assert len(calls) == len(requests) == 4
    for (call, bound), request in zip(calls, requests):
        assert count_input(request.body) <= bound <= call.input_bytes  # what FakeLLM reported, the bytes
    assert all(bound < call.input_bytes for call, bound in calls[1:])


def grown(messages, reply, n):
    return [*messages, {"role": "assistant", "content": reply.choices[0].message.content},
            {"role": "user", "content": f"continue {n}"}]


def test_a_growing_conversation_is_bounded_from_the_reported_input(fake, logger_for):
    """LiteLLM copies the messages of every call; the bound still follows the conversation: from the second
    call on it starts from the input the provider reported for the one before, never below what it counted."""
    from .conftest import Recording

    guard = Recording(alerts=[])
    logger = logger_for(guard)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "start (sync)"}]
    with guard.session("litellm-learned"):
        for n in range(4):
            reply = ask(fake, messages)
            assert logger.wait_settled()
            messages = grown(messages, reply, n)
    check_learned(guard.admitted, fake.requests)


async def test_a_growing_async_conversation_is_bounded_from_the_reported_input(fake, logger_for):
    from .conftest import Recording

    guard = Recording(alerts=[])
    logger = logger_for(guard)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "start (async)"}]
    async with guard.session("litellm-learned-async"):
        for n in range(4):
            reply = await litellm.acompletion(model="openai/gpt-4o", api_base=fake.base_url, api_key="k",
                                              messages=messages, max_tokens=500)
            assert await logger.wait_settled_async()
            messages = grown(messages, reply, n)
    check_learned(guard.admitted, fake.requests)


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_input_estimate_is_honoured(fake, logger_for, mode):
    from breaker.adapter import ESTIMATOR

    from .conftest import Recording

    guard = Recording(alerts=[], input_estimate=mode)
    logger = logger_for(guard)
    messages = [{"role": "user", "content": f"{mode}: " + "words to count " * 40}]
    with guard.session(f"litellm-{mode}"):
        ask(fake, messages)
        assert logger.wait_settled()
    (call, bound), = guard.admitted
    assert bound == ESTIMATOR.bounds("gpt-4o", messages, strict=mode == "strict", history=False)[0]
    assert call.learn == ESTIMATOR.learn
