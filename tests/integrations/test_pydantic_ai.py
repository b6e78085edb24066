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


# ---------------------------------------------------------------------- issue #16: tight bounds, no false kills
@pytest.mark.parametrize("mode", ["strict", "loose"])
async def test_the_input_bound_is_of_what_the_model_receives_and_tightens_from_its_reports(mode):
    """pydantic-ai's message objects carry timestamps, part kinds and run ids the provider never sees:
    the bound is of the request as sent, and from the third request on it starts from the input the
    provider reported for the one before (never below what was counted)."""
    from pydantic_core import to_jsonable_python

    from breaker.adapter import ESTIMATOR, estimate

    from .conftest import Recording

    reported: list[int] = []
    expected: list[int] = []

    def five_steps(n, messages, info: AgentInfo):
        if n == 1:  # the first request as the provider receives it: the prompt, the instructions, the tool schema
            tools = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                                       "parameters": t.parameters_json_schema}}
                     for t in info.function_tools]
            expected.append(ESTIMATOR.bounds("gpt-4o", [{"role": "user", "content": "hi"}], system=info.instructions,
                                             tools=tools, strict=mode == "strict", history=False)[0])
            expected.append(estimate("gpt-4o", to_jsonable_python(messages), system=info.instructions, tools=tools,
                                     strict=mode == "strict")[0])
        # like a tokenizer: about a quarter of what is sent, less than the bytes
        size = sum(len(m["content"] or "") + len(str(m.get("tool_calls", ""))) for m in wire_of(messages)) // 4 + 30
        reported.append(size)
        if n >= 5:
            return ModelResponse(parts=[TextPart("done")], usage=RequestUsage(input_tokens=size, output_tokens=5))
        return ModelResponse(parts=[ToolCallPart("search", {"q": f"attempt {n}"}, tool_call_id=f"c{n}")],
                             usage=RequestUsage(input_tokens=size, output_tokens=20))

    from breaker_pydantic_ai._capability import wire_messages as wire_of

    class WithInfo(Scripted):
        def __call__(self, messages, info):
            self.sent.append((info.model_settings or {}).get("max_tokens"))
            return self.script(len(self.sent), messages, info)

    guard = Recording(alerts=[], input_estimate=mode)
    fake = WithInfo(five_steps)
    async with guard.session(f"pai-wire-{mode}"):
        result = await make_agent(fake.model, guard).run("hi")
    assert result.output == "done"
    calls = guard.admitted
    first, bound = calls[0]
    assert bound == first.input_bytes and first.learn == ESTIMATOR.learn
    assert bound == expected[0]
    assert bound < expected[1] * 0.7  # the message objects as pydantic-ai holds them: a third more
    for (call, b), counted in zip(calls, reported):
        assert b <= call.input_bytes
        if mode == "strict":
            assert counted <= b
    assert all(b < call.input_bytes for call, b in calls[2:])


async def test_a_request_the_budget_cannot_give_min_output_tokens_ends_the_run_gracefully():
    guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[], min_output_tokens=400)

    def step(n, messages):
        return ModelResponse(parts=[ToolCallPart("search", {"q": f"attempt {n}"}, tool_call_id=f"c{n}")],
                             usage=RequestUsage(input_tokens=300, output_tokens=300))

    fake = Scripted(step)
    async with guard.session("pai-min-output") as s:
        result = await make_agent(fake.model, guard).run("go")
    assert result.output.startswith("Stopped by agent-cost-breaker") and "min_output_tokens" in result.output
    assert isinstance(s.tripped, BudgetExceeded) and s.cost_usd <= 0.02
    assert fake.sent and all(cap is not None and cap >= 400 for cap in fake.sent)  # never a useless cap
    assert len(fake.sent) == s.calls
