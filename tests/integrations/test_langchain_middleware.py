"""BreakerMiddleware with the real LangChain v1 agent loop and a scripted chat model."""

from __future__ import annotations

import threading

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import breaker
from breaker import Breaker, Budget, BudgetExceeded, Degrade, LoopDetected, LoopPolicy
from breaker_langchain import BreakerMiddleware

from .conftest import SECRET, genai_usd
from .lc_fake import fake, runaway, usage


@tool
def search(q: str) -> str:
    """Search the web."""
    return "no results"


def ask(text: str = f"find it {SECRET}") -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_runaway_tool_loop_ends_within_budget_with_a_message(events):
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[events])
    model = fake()
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-runaway") as s:
        result = agent.invoke(ask())
    last = result["messages"][-1]
    assert isinstance(last, AIMessage) and last.name == "breaker"
    assert "budget of $0.05" in last.content and last.response_metadata["breaker"]["reason"] == "budget"
    assert isinstance(s.tripped, BudgetExceeded)
    assert len(model.sent) == s.calls == 5  # $0.01 a call: the sixth cannot be paid for
    assert s.cost_usd == pytest.approx(5 * genai_usd("gpt-4o", "openai", input_tokens=2000, output_tokens=500))
    assert s.cost_usd <= 0.05
    assert SECRET not in events.text() and SECRET not in last.content


def test_error_exit_raises_through_the_graph_and_the_session_turns_it_into_session_killed():
    guard = Breaker(budgets=[Budget(usd=0.03)], alerts=[])
    model = fake()
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard, exit_behavior="error")])
    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("lc-error") as s:
            agent.invoke(ask())
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert len(model.sent) == s.calls == 3


async def test_async_agent_is_stopped_the_same_way():
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])
    model = fake()
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    async with guard.session("lc-async") as s:
        result = await agent.ainvoke(ask())
    assert result["messages"][-1].name == "breaker"
    assert len(model.sent) == s.calls == 5


def test_the_output_cap_sent_is_what_the_budget_can_pay():
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])
    model = fake()
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-cap"):
        agent.invoke(ask())
    caps = [cap for _, cap, _ in model.sent]
    assert all(cap is not None for cap in caps)  # no cap requested: the worst case would be the context window
    assert caps == sorted(caps, reverse=True)  # less left, lower cap


def test_usage_with_cache_reads_and_reasoning_is_priced_like_genai_prices():
    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(10_000, 600, cache_read=4_000, reasoning=200))

    guard = Breaker(alerts=[])
    agent = create_agent(fake(once, model="o3-mini"), middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-usage") as s:
        agent.invoke(ask())
    expected = genai_usd("o3-mini", "openai", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=600,
                         output_reasoning_tokens=200)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9)
    assert s.tokens == 10_600


def test_anthropic_cache_writes_are_priced_like_genai_prices():
    def once(n, messages):
        return AIMessage("done", usage_metadata=usage(10_000, 300, cache_read=3_000, cache_creation=5_000))

    guard = Breaker(alerts=[])
    agent = create_agent(fake(once, model="claude-sonnet-4-5", provider="anthropic"), middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-anthropic") as s:
        agent.invoke(ask())
    expected = genai_usd("claude-sonnet-4-5", "anthropic", input_tokens=10_000, cache_read_tokens=3_000,
                         cache_write_tokens=5_000, output_tokens=300)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9)


def test_degrades_by_copying_the_chat_model_with_the_cheaper_name(events):
    guard = Breaker(
        budgets=[Budget(usd=0.05, degrade_at=0.4)],
        degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
        alerts=[events],
    )
    model = fake()
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-degrade") as s:
        agent.invoke(ask())
    names = [name for name, _, _ in model.sent]
    assert names[:2] == ["gpt-4o", "gpt-4o"] and set(names[2:]) == {"gpt-4o-mini"}
    assert "degraded" in events.kinds()
    # the cheap calls are priced as gpt-4o-mini: far more of them fit in the budget
    assert len(names) > 10 and s.cost_usd <= 0.05


def test_degrades_to_a_chat_model_given_by_name():
    guard = Breaker(
        budgets=[Budget(usd=0.05, degrade_at=0.4)],
        degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
        alerts=[],
    )
    big, small = fake(), fake(model="gpt-4o-mini")
    agent = create_agent(big, tools=[search], middleware=[BreakerMiddleware(guard, models={"gpt-4o-mini": small})])
    with guard.session("lc-degrade-map") as s:
        agent.invoke(ask())
    assert len(big.sent) == 2 and len(small.sent) > 10
    assert len(big.sent) + len(small.sent) == s.calls


def test_tool_thrash_is_stopped_by_loop_detection():
    def thrash(n, messages):
        return AIMessage("", tool_calls=[{"name": "search", "args": {"q": "same"}, "id": f"c{n}"}],
                         usage_metadata=usage(500, 20))

    guard = Breaker(loops=LoopPolicy(max_tool_repeats=4), alerts=[])
    model = fake(thrash)
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-thrash") as s:
        result = agent.invoke(ask())
    assert isinstance(s.tripped, LoopDetected)
    assert len(model.sent) == s.calls == 5
    assert result["messages"][-1].response_metadata["breaker"]["reason"] == "loop:tool_repeat"


def test_one_middleware_serves_concurrent_runs_without_mixing_them():
    import contextvars

    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])
    middleware = BreakerMiddleware(guard)
    poor, rich = fake(), fake()

    def quiet(n, messages):
        return AIMessage("done", usage_metadata=usage(100, 10))

    rich.script = quiet
    results: dict[str, object] = {}

    def run(name, model):
        agent = create_agent(model, tools=[search], middleware=[middleware])
        try:
            with guard.session(name) as s:
                agent.invoke(ask())
        except breaker.SessionKilled:
            pass
        results[name] = s.tripped

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, n, m))
               for n, m in (("poor", poor), ("rich", rich))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results["poor"], BudgetExceeded) and results["rich"] is None
    assert len(poor.sent) == 5 and len(rich.sent) == 1


def test_a_model_that_reports_no_usage_is_charged_its_bound_not_zero():
    def silent(n, messages):
        return AIMessage("done")

    guard = Breaker(alerts=[])
    agent = create_agent(fake(silent), middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-silent") as s:
        agent.invoke(ask())
    assert s.calls == 1 and s.cost_usd > 0


def test_bad_exit_behavior_is_a_config_error():
    with pytest.raises(breaker.ConfigError, match="'end'"):
        BreakerMiddleware(Breaker(alerts=[]), exit_behavior="stop")


def test_a_degrade_lowers_the_reasoning_effort_but_never_raises_it():
    from .lc_fake import ScriptedChat

    class ReasoningChat(ScriptedChat):
        reasoning_effort: str | None = None
        efforts: list = []  # the effort of each call that reached the model (shared by the degraded copies)

        def _reply(self, messages, kwargs):
            self.efforts.append(self.reasoning_effort)
            return super()._reply(messages, kwargs)

    def finish_soon(n, messages):
        return runaway(n, messages) if n < 3 else AIMessage("done", usage_metadata=usage(100, 10))

    def efforts_sent(effort: str) -> list[str | None]:
        guard = Breaker(budgets=[Budget(usd=1.0, degrade_at=0.0001)], degrade=Degrade(reasoning_effort="medium"),
                        alerts=[])
        model = ReasoningChat(model_name="o3-mini", script=finish_soon, sent=[], efforts=[], reasoning_effort=effort,
                              max_tokens=1_000)
        agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
        with guard.session(f"lc-effort-{effort}"):
            agent.invoke(ask())
        return model.efforts

    assert efforts_sent("high") == ["high", "medium", "medium"]  # degraded from the second call on
    assert efforts_sent("low") == ["low", "low", "low"]  # the caller asked for less than the degrade: kept
