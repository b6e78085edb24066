"""BreakerCapability with the real pydantic-ai agent graph and a FunctionModel."""

from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import breaker
from breaker import Breaker, Budget, BudgetExceeded, Degrade, LoopDetected, LoopPolicy
from breaker_pydantic_ai import BreakerCapability

from .conftest import SECRET, genai_usd


class Scripted:
    """A model function that counts the requests reaching it; honours max_tokens like a provider."""

    def __init__(self, script, name: str = "gpt-4o") -> None:
        self.script = script
        self.sent: list[int | None] = []
        self.model = FunctionModel(self, model_name=name)

    def __call__(self, messages, info: AgentInfo) -> ModelResponse:
        cap = (info.model_settings or {}).get("max_tokens")
        self.sent.append(cap)
        response = self.script(len(self.sent), messages)
        if cap is not None and response.usage.output_tokens > cap:
            response.usage.output_tokens = cap
        return response


def runaway(n, messages) -> ModelResponse:
    size = sum(len(str(m)) for m in messages) // 8  # well under the byte bound, like a tokenizer
    return ModelResponse(parts=[ToolCallPart("search", {"q": f"attempt {n}"}, tool_call_id=f"c{n}")],
                         usage=RequestUsage(input_tokens=size, output_tokens=500))


def make_agent(model, guard, **kw) -> Agent:
    agent = Agent(model, instructions=f"help {SECRET}", capabilities=[BreakerCapability(guard, **kw)])

    @agent.tool_plain
    def search(q: str) -> str:
        """Search the web."""
        return "no results"

    return agent


async def test_runaway_tool_loop_ends_within_budget_with_a_final_answer(events):
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[events])
    fake = Scripted(runaway)
    async with guard.session("pai-runaway") as s:
        result = await make_agent(fake.model, guard).run(f"find {SECRET}")
    assert result.output.startswith("Stopped by agent-cost-breaker") and "budget of $0.05" in result.output
    assert isinstance(s.tripped, BudgetExceeded)
    assert len(fake.sent) == s.calls and 5 <= s.calls <= 10
    assert s.cost_usd <= 0.05 and SECRET not in events.text()
    assert all(cap is not None for cap in fake.sent)  # the cap sent is what the budget can pay


async def test_error_exit_raises_the_kill_through_the_graph():
    guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[])
    fake = Scripted(runaway)
    with pytest.raises(breaker.SessionKilled) as killed:
        async with guard.session("pai-error") as s:
            try:
                await make_agent(fake.model, guard, exit_behavior="error").run("go")
            except Exception:  # noqa: BLE001 - agent code cannot swallow it
                pytest.fail("the kill was swallowed by except Exception")
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert len(fake.sent) == s.calls >= 1


async def test_usage_with_cache_and_reasoning_is_priced_like_genai_prices():
    def once(n, messages):
        return ModelResponse(parts=[TextPart("done")], usage=RequestUsage(
            input_tokens=10_000, cache_read_tokens=3_000, cache_write_tokens=2_000, output_tokens=600,
            output_reasoning_tokens=200))

    guard = Breaker(alerts=[])
    fake = Scripted(once, name="claude-sonnet-4-5")
    async with guard.session("pai-usage") as s:
        result = await make_agent(fake.model, guard).run("hi")
    assert result.output == "done"
    expected = genai_usd("claude-sonnet-4-5", "anthropic", input_tokens=10_000, cache_read_tokens=3_000,
                         cache_write_tokens=2_000, output_tokens=600, output_reasoning_tokens=200)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9) and s.tokens == 10_600


async def test_degrades_to_the_cheaper_model():
    guard = Breaker(budgets=[Budget(usd=0.05, degrade_at=0.3)], degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
                    alerts=[])
    big = Scripted(runaway)

    def finish_soon(n, messages):
        if n >= 3:
            return ModelResponse(parts=[TextPart("done")], usage=RequestUsage(input_tokens=100, output_tokens=5))
        return runaway(n, messages)

    small = Scripted(finish_soon, name="gpt-4o-mini")
    agent = make_agent(big.model, guard, models={"gpt-4o-mini": small.model})
    async with guard.session("pai-degrade") as s:
        result = await agent.run("go")
    assert result.output == "done"
    assert len(big.sent) == 3 and len(small.sent) == 3  # $0.005 of output each: 30% after 3 calls
    assert s.calls == 6 and s.tripped is None


async def test_tool_thrash_is_stopped_by_loop_detection():
    def thrash(n, messages):
        return ModelResponse(parts=[ToolCallPart("search", {"q": "same"}, tool_call_id=f"c{n}")],
                             usage=RequestUsage(input_tokens=50, output_tokens=10))

    guard = Breaker(loops=LoopPolicy(max_tool_repeats=3), alerts=[])
    fake = Scripted(thrash)
    async with guard.session("pai-thrash") as s:
        result = await make_agent(fake.model, guard).run("go")
    assert isinstance(s.tripped, LoopDetected) and "loop detection" in result.output
    assert len(fake.sent) == s.calls == 4


async def test_a_function_model_needs_a_price_name():
    guard = Breaker(alerts=[])
    anonymous = FunctionModel(lambda m, i: ModelResponse(parts=[TextPart("x")]))
    with pytest.raises(breaker.ConfigError, match="model='gpt-4o'"):
        await make_agent(anonymous, guard).run("hi")


async def test_with_instrument_each_request_is_counted_once():
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from breaker.testing import FakeLLM, Reply

    guard = Breaker(alerts=[])
    with FakeLLM(default=Reply(text="done", input_tokens=800, cached_tokens=200)) as fake:
        model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=fake.async_openai()))
        guard.instrument()
        try:
            async with guard.session("pai-once") as s:
                result = await Agent(model, capabilities=[BreakerCapability(guard)]).run("hi")
        finally:
            guard.uninstrument()
    assert result.output == "done"
    assert fake.count == s.calls == 1
    assert s.cost_usd == pytest.approx(genai_usd("gpt-4o-mini", "openai", input_tokens=800, cache_read_tokens=200,
                                                 output_tokens=1), abs=1e-9)


async def test_a_streamed_run_is_admitted_and_settled_once():
    async def stream(messages, info):
        for word in ("hello ", "world"):
            yield word

    guard = Breaker(alerts=[])
    model = FunctionModel(stream_function=stream, model_name="gpt-4o")
    async with guard.session("pai-stream") as s:
        async with Agent(model, capabilities=[BreakerCapability(guard)]).run_stream("hi") as run:
            assert await run.get_output() == "hello world"
        usage = run.usage
    assert s.calls == 1 and s.tokens == usage.input_tokens + usage.output_tokens
    assert s.cost_usd == pytest.approx(genai_usd("gpt-4o", "openai", input_tokens=usage.input_tokens,
                                                 output_tokens=usage.output_tokens), abs=1e-9)


async def test_a_degrade_lowers_the_reasoning_effort_but_never_raises_it():
    async def efforts_sent(effort: str) -> list[str | None]:
        sent: list[str | None] = []

        def reply(messages, info: AgentInfo) -> ModelResponse:
            sent.append((info.model_settings or {}).get("openai_reasoning_effort"))
            if len(sent) >= 3:
                return ModelResponse(parts=[TextPart("done")], usage=RequestUsage(input_tokens=50, output_tokens=5))
            return runaway(len(sent), messages)

        guard = Breaker(budgets=[Budget(usd=1.0, degrade_at=0.0001)], degrade=Degrade(reasoning_effort="medium"),
                        alerts=[])
        agent = make_agent(FunctionModel(reply, model_name="o3-mini"), guard)
        async with guard.session(f"pai-effort-{effort}"):
            result = await agent.run("go", model_settings={"openai_reasoning_effort": effort, "max_tokens": 1_000})
        assert result.output == "done"
        return sent

    assert await efforts_sent("high") == ["high", "medium", "medium"]  # degraded from the second request on
    assert await efforts_sent("low") == ["low", "low", "low"]  # the caller asked for less than the degrade: kept
