"""BreakerCallbackHandler with real LangChain runnables (LCEL) and a scripted chat model."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate

import breaker
from breaker import Breaker, Budget, BudgetExceeded, Degrade
from breaker_langchain import BreakerCallbackHandler, BreakerMiddleware

from .conftest import SECRET, genai_usd
from .lc_fake import fake, usage


def chatty(n, messages):
    return AIMessage(" ".join(["word"] * 300), usage_metadata=usage(200, 300))


def test_a_chain_in_a_retry_loop_is_stopped_within_budget(events):
    guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[events])
    model = fake(chatty)
    model.max_tokens = 500
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model
    handler = BreakerCallbackHandler(guard)
    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("lcb-loop") as s:
            for n in range(100):
                try:
                    chain.invoke({"q": f"again {n} {SECRET}"}, config={"callbacks": [handler]})
                except Exception:  # noqa: BLE001 - swallowed by agent code; the kill passes
                    pass
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert len(model.sent) == s.calls and 3 <= s.calls <= 6  # ~$0.0035 a call
    assert s.cost_usd <= 0.02 and SECRET not in events.text()


def test_usage_with_cache_and_reasoning_is_priced_like_genai_prices():
    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(10_000, 600, cache_read=4_000, reasoning=200))

    guard = Breaker(alerts=[])
    with guard.session("lcb-usage") as s:
        fake(once, model="o3-mini").invoke([HumanMessage("hi")], config={"callbacks": [BreakerCallbackHandler(guard)]})
    expected = genai_usd("o3-mini", "openai", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=600,
                         output_reasoning_tokens=200)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9)


def test_a_stream_is_cut_when_it_passes_its_reservation():
    def long_answer(n, messages):
        return AIMessage(" ".join(["w"] * 2_000), usage_metadata=usage(50, 2_000))

    guard = Breaker(budgets=[Budget(usd=0.002)], alerts=[])  # pays for ~190 output tokens of gpt-4o
    model = fake(long_answer)
    model.max_tokens = 4_000  # a provider that ignores the cap it was never told about
    handler = BreakerCallbackHandler(guard)
    with guard.session("lcb-stream") as s:
        with pytest.raises(BudgetExceeded, match="max_tokens"):
            for _ in model.stream([HumanMessage("write")], config={"callbacks": [handler]}):
                pass
        assert len(model.sent) == 0 and s.calls == 0  # refused: the cap could not be lowered
        model.max_tokens = 150
        seen = 0
        with pytest.raises(BudgetExceeded, match="closed the stream") as cut:
            for _ in model.stream([HumanMessage("write")], config={"callbacks": [handler]}):
                seen += 1
        assert cut.value.reason == "stream_cut"  # the SDK layer's rule and reason code, not a copy
        assert seen <= 152 and s.calls == 1 and s.cost_usd <= 0.002


def test_degradation_is_refused_not_sent_unchanged():
    guard = Breaker(budgets=[Budget(usd=1.0, degrade_at=0.0001)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])
    model = fake(chatty)
    model.max_tokens = 500
    handler = BreakerCallbackHandler(guard)
    with guard.session("lcb-degrade") as s:
        model.invoke([HumanMessage("a")], config={"callbacks": [handler]})
        with pytest.raises(BudgetExceeded, match="BreakerMiddleware"):
            model.invoke([HumanMessage("b")], config={"callbacks": [handler]})
    assert len(model.sent) == s.calls == 1


def test_with_the_middleware_each_call_is_counted_once():
    from langchain.agents import create_agent

    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(100, 10))

    guard = Breaker(alerts=[])
    model = fake(once)
    agent = create_agent(model, middleware=[BreakerMiddleware(guard)])
    with guard.session("lcb-once") as s:
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]}, config={"callbacks": [BreakerCallbackHandler(guard)]})
    assert len(model.sent) == s.calls == 1
