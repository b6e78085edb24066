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


# ---------------------------------------------------------------------- issue #16: tight bounds, no false kills
def history_with_metadata() -> list:
    """A conversation as LangChain holds it: ids, response metadata and usage on every message
    (none of which the provider receives)."""
    from langchain_core.messages import HumanMessage, ToolMessage

    out: list = [HumanMessage(f"find the report {SECRET}", id="h0")]
    for n in range(4):
        out.append(AIMessage(
            "", id=f"a{n}", tool_calls=[{"name": "search", "args": {"q": f"report part {n}"}, "id": f"call_{n}"}],
            usage_metadata=usage(900 + n, 40), response_metadata={
                "model_name": "gpt-4o-2024-08-06", "finish_reason": "tool_calls", "system_fingerprint": "fp_abc123",
                "token_usage": {"prompt_tokens": 900 + n, "completion_tokens": 40, "total_tokens": 940 + n},
            },
        ))
        out.append(ToolMessage(f"part {n}: " + "figures " * 20, tool_call_id=f"call_{n}", id=f"t{n}", name="search"))
    return out


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_the_input_bound_is_the_sdk_layers_bound_of_the_wire_form(mode):
    from langchain_core.messages import convert_to_openai_messages
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from breaker.adapter import ESTIMATOR, estimate

    from .conftest import Recording
    from .lc_fake import honest

    def done(n, messages):
        return AIMessage("done", usage_metadata=usage(0, 5))

    guard = Recording(alerts=[], input_estimate=mode)
    history = history_with_metadata()
    agent = create_agent(honest(done), tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session(f"lc-wire-{mode}"):
        agent.invoke({"messages": history})
    (call, bound), = guard.admitted
    wire = convert_to_openai_messages(history)
    expected, by_bytes, _, count, _ = ESTIMATOR.bounds("gpt-4o", wire, tools=[convert_to_openai_tool(search)],
                                                    strict=mode == "strict", history=False)
    assert (bound, call.input_bytes, call.messages) == (expected, by_bytes, count)
    assert call.learn == ESTIMATOR.learn
    as_objects = estimate("gpt-4o", history, tools=[convert_to_openai_tool(search)])[0]
    assert bound < as_objects / (1.5 if mode == "strict" else 4)  # ids and metadata are not on the wire


def test_each_step_is_bounded_from_the_input_the_provider_reported_for_the_last():
    from .conftest import Recording
    from .lc_fake import honest

    def five_steps(n, messages):
        return runaway(n, messages) if n < 5 else AIMessage("done", usage_metadata=usage(0, 5))

    guard = Recording(alerts=[])
    model = honest(five_steps)
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-learned"):
        agent.invoke(ask())
    calls = guard.admitted
    assert len(calls) == len(model.inputs) == 5
    assert calls[0][1] == calls[0][0].input_bytes  # nothing reported yet: the bytes bound
    for (call, bound), reported in zip(calls, model.inputs):
        assert reported <= bound <= call.input_bytes  # never below what the provider counted
    # From the third step on, tighter than the bytes. (The second is not: ESTIMATOR follows a conversation
    # by its first two messages, and the first request had one. With a system prompt it has two.)
    assert all(bound < call.input_bytes for call, bound in calls[2:])


def test_an_agent_spends_its_budget_to_the_last_affordable_call():
    """Issue #16's target: >= 95% of the budget used at the kill, a degrade first, zero overshoot."""
    from breaker.pricing import NANO, PriceBook

    from .lc_fake import honest, request_tokens

    guard = Breaker(budgets=[Budget(usd=0.02, degrade_at=0.5)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])

    def step(n, messages):
        return AIMessage("Not settled yet; looking further. " * 3, usage_metadata=usage(0, 120),
                         tool_calls=[{"name": "search", "args": {"q": f"sub-question {n}"}, "id": f"call_{n}"}])

    @tool
    def lookup(q: str) -> str:
        """Look it up."""
        return f"Results for {q}: " + "a passage with enough detail to keep looking. " * 5

    model = honest(step)
    agent = create_agent(model, tools=[lookup], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-utilization") as s:
        result = agent.invoke(ask(), config={"recursion_limit": 10_000})
    assert result["messages"][-1].name == "breaker" and s.tripped.reason == "budget"
    names = [name for name, _, _ in model.sent]
    assert "gpt-4o-mini" in names and names[-1] == "gpt-4o-mini"  # degraded before the kill
    # the refused call, priced as it would have gone out at the least (min_output_tokens of output)
    from langchain_core.utils.function_calling import convert_to_openai_tool

    refused = request_tokens(result["messages"][:-1], [convert_to_openai_tool(lookup)])
    price = PriceBook().lookup("gpt-4o-mini", "openai")
    refused_usd = price.cost(breaker.Usage(refused, guard.min_output_tokens)) / NANO
    assert s.cost_usd <= 0.02
    assert (s.cost_usd + refused_usd) / 0.02 >= 0.95


def test_a_call_the_budget_cannot_give_min_output_tokens_ends_the_run_with_a_message():
    from .lc_fake import honest

    def step(n, messages):
        return AIMessage("", tool_calls=[{"name": "search", "args": {"q": f"attempt {n}"}, "id": f"call-{n}"}],
                         usage_metadata=usage(0, 300))

    guard = Breaker(budgets=[Budget(usd=0.03)], alerts=[], min_output_tokens=400)
    model = honest(step)  # no max_tokens: breaker lowers the cap as the budget runs out, never below 400
    agent = create_agent(model, tools=[search], middleware=[BreakerMiddleware(guard)])
    with guard.session("lc-min-output") as s:
        result = agent.invoke(ask())
    last = result["messages"][-1]
    assert last.name == "breaker" and "min_output_tokens" in last.content
    assert isinstance(s.tripped, BudgetExceeded) and s.cost_usd <= 0.03
    caps = [cap for _, cap, _ in model.sent]
    assert caps and all(cap >= 400 for cap in caps)  # never a call with a cap too small to be of use
    assert len(model.sent) == s.calls and not model.cut
