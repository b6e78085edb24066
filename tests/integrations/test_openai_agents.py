"""BreakerHooks with the real Agents SDK runner and a scripted Model."""

from __future__ import annotations

import gc

import pytest
from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage as AgentsUsage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import breaker
from breaker import Breaker, Budget, BudgetExceeded, LoopDetected, LoopPolicy
from breaker_openai_agents import BreakerHooks

from .conftest import SECRET, genai_usd


set_tracing_disabled(True)


def usage(inp: int, out: int, cached: int = 0, reasoning: int = 0, written: int = 0) -> AgentsUsage:
    return AgentsUsage(
        requests=1, input_tokens=inp, output_tokens=out, total_tokens=inp + out,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=written),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
    )


def tool_call(n: int, args: str) -> ModelResponse:
    item = ResponseFunctionToolCall(type="function_call", name="search", arguments=args, call_id=f"c{n}", id=f"fc{n}")
    return ModelResponse(output=[item], usage=usage(0, 500), response_id=None)


def answer(text: str, u: AgentsUsage) -> ModelResponse:
    msg = ResponseOutputMessage(
        id="m1", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )
    return ModelResponse(output=[msg], usage=u, response_id=None)


class ScriptedModel(Model):
    """Counts the requests that reach it and answers from a script."""

    def __init__(self, script, model: str = "gpt-4o") -> None:
        self.script = script
        self.model = model
        self.sent: list[int] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, **kw):
        self.sent.append(len(input))
        response = self.script(len(self.sent))
        if response.usage.input_tokens == 0:  # like a tokenizer: about 4 bytes a token
            size = len(str(system_instructions)) + len(str(input)) + sum(len(str(t.params_json_schema)) for t in tools)
            response.usage.input_tokens = response.usage.total_tokens = size // 4
            response.usage.total_tokens += response.usage.output_tokens
        return response

    def stream_response(self, *a, **kw):  # pragma: no cover - not used
        raise NotImplementedError


@function_tool
def search(q: str) -> str:
    """Search the web."""
    return "no results"


def runaway(n: int) -> ModelResponse:
    return tool_call(n, f'{{"q": "attempt {n}"}}')


async def test_runaway_tool_loop_is_killed_within_budget(events):
    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[events])
    model = ScriptedModel(runaway)
    agent = Agent("a", instructions=f"help {SECRET}", model=model, tools=[search],
                  model_settings=ModelSettings(max_tokens=500))
    with pytest.raises(breaker.SessionKilled) as killed:
        async with guard.session("agents-runaway") as s:
            await Runner.run(agent, f"find {SECRET}", hooks=BreakerHooks(guard), max_turns=1000)
    assert isinstance(killed.value.__cause__, BudgetExceeded)
    assert len(model.sent) == s.calls  # every call that reached the model was admitted, none refused was sent
    assert 5 <= s.calls < 10  # ~$0.005 of output a call, and the history grows
    assert 0.04 < s.cost_usd <= 0.05  # stopped when the next call's worst case no longer fits
    assert "refused before it was sent" in str(killed.value) and "max_tokens" in str(killed.value)
    assert "threshold" in events.kinds() and SECRET not in events.text()


async def test_except_exception_around_the_run_cannot_swallow_the_kill():
    guard = Breaker(budgets=[Budget(usd=0.008)], alerts=[])
    model = ScriptedModel(runaway)
    agent = Agent("a", model=model, tools=[search], model_settings=ModelSettings(max_tokens=500))
    swallowed = []
    with pytest.raises(breaker.SessionKilled):
        async with guard.session("agents-swallow"):
            try:
                await Runner.run(agent, "go", hooks=BreakerHooks(guard), max_turns=1000)
            except Exception as e:  # noqa: BLE001 - what agent code does
                swallowed.append(e)
    assert swallowed == [] and len(model.sent) == 1


async def test_cached_and_reasoning_tokens_are_priced_like_genai_prices():
    guard = Breaker(alerts=[])
    model = ScriptedModel(lambda n: answer("done", usage(10_000, 600, cached=4_000, reasoning=200)), model="o3-mini")
    agent = Agent("a", model=model)
    async with guard.session("agents-usage") as s:
        result = await Runner.run(agent, "hi", hooks=BreakerHooks(guard))
    assert result.final_output == "done"
    expected = genai_usd("o3-mini", "openai", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=600,
                         output_reasoning_tokens=200)
    assert s.cost_usd == pytest.approx(expected, abs=1e-9) and s.tokens == 10_600


async def test_model_names_the_price_for_a_model_without_a_name():
    class Anonymous(ScriptedModel):
        def __init__(self, script):
            super().__init__(script)
            del self.model

    guard = Breaker(alerts=[])
    agent = Agent("a", model=Anonymous(lambda n: answer("done", usage(1_000, 100))))
    with pytest.raises(breaker.ConfigError, match="model='gpt-4o'"):
        await Runner.run(agent, "hi", hooks=BreakerHooks(guard))
    async with guard.session("agents-named") as s:
        await Runner.run(agent, "hi", hooks=BreakerHooks(guard, model="gpt-4o-mini"))
    assert s.cost_usd == pytest.approx(genai_usd("gpt-4o-mini", "openai", input_tokens=1_000, output_tokens=100))


async def test_tool_thrash_is_stopped_by_loop_detection():
    guard = Breaker(loops=LoopPolicy(max_tool_repeats=3), alerts=[])
    model = ScriptedModel(lambda n: tool_call(n, '{"q": "same"}'))
    agent = Agent("a", model=model, tools=[search])
    with pytest.raises(breaker.SessionKilled) as killed:
        async with guard.session("agents-thrash") as s:
            await Runner.run(agent, "go", hooks=BreakerHooks(guard), max_turns=1000)
    assert isinstance(killed.value.__cause__, LoopDetected)
    assert len(model.sent) == s.calls == 4


async def test_a_failed_model_call_is_settled_and_its_reservation_returned():
    def flaky(n):
        raise RuntimeError("provider down")

    guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[])
    agent = Agent("a", model=ScriptedModel(flaky), model_settings=ModelSettings(max_tokens=500))
    hooks = BreakerHooks(guard)
    async with guard.session("agents-flaky") as s:
        with pytest.raises(RuntimeError):
            await Runner.run(agent, "hi", hooks=hooks)
        gc.collect()  # the failed run's context is gone: its open call is settled as failed
        assert s.calls == 1 and s.remaining_usd == pytest.approx(0.05)
        agent.model = ScriptedModel(lambda n: answer("ok", usage(1_000, 100)))
        await Runner.run(agent, "hi", hooks=hooks)
        assert s.calls == 2 and s.remaining_usd == pytest.approx(0.05 - s.cost_usd)


@pytest.mark.parametrize("how", ["instrument", "wrap"])
async def test_with_the_sdk_layer_each_call_is_counted_once(how):
    from agents import OpenAIChatCompletionsModel

    from breaker.testing import FakeLLM, Reply

    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[])
    replies = [Reply(tool_calls=[("search", {"q": "x"})], input_tokens=900, cached_tokens=300), Reply(text="done")]
    with FakeLLM(replies) as fake:
        client = fake.async_openai()
        if how == "instrument":
            guard.instrument()
        else:
            guard.wrap(client)
        try:
            agent = Agent("a", model=OpenAIChatCompletionsModel("gpt-4o-mini", client), tools=[search])
            async with guard.session(f"agents-once-{how}") as s:
                result = await Runner.run(agent, "go", hooks=BreakerHooks(guard))
        finally:
            guard.uninstrument()
        assert result.final_output == "done"
        assert fake.count == 2 and s.calls == 2
        assert s.cost_usd > 0


# ---------------------------------------------------------------------- issue #16: tight bounds, no false kills
async def test_the_input_bound_tightens_from_the_reported_input_though_the_sdk_rebuilds_its_items():
    """The SDK hands the hooks new input-item dicts on every turn; the bound still follows the
    conversation: from the third request on it starts from the input the provider reported for the
    one before, and input_estimate is honoured."""
    from breaker.adapter import ESTIMATOR

    from .conftest import Recording

    def five(n):
        return runaway(n) if n < 5 else answer("done", usage(0, 5))

    first = {}
    for mode in ("strict", "loose"):
        guard = Recording(alerts=[], input_estimate=mode)
        model = ScriptedModel(five)
        agent = Agent("a", instructions="be brief", model=model, tools=[search],
                      model_settings=ModelSettings(max_tokens=500))
        async with guard.session(f"agents-learned-{mode}") as s:
            await Runner.run(agent, f"go ({mode})", hooks=BreakerHooks(guard), max_turns=20)
        calls = guard.admitted
        assert len(calls) == len(model.sent) == s.calls == 5
        assert calls[0][0].learn == ESTIMATOR.learn and calls[0][1] == calls[0][0].input_bytes
        assert all(bound < call.input_bytes for call, bound in calls[2:])
        first[mode] = calls[0][1]
    assert first["loose"] < first["strict"] / 2  # a quarter of the bytes (plus the same overheads)


async def test_a_litellm_route_through_the_openai_sdk_is_counted_once_under_instrument():
    pytest.importorskip("litellm")
    from agents.extensions.models.litellm_model import LitellmModel

    from breaker.testing import FakeLLM, Reply

    guard = Breaker(budgets=[Budget(usd=1.0)], alerts=[])
    with FakeLLM(default=Reply(text="done", input_tokens=50)) as fake:
        guard.instrument()
        try:
            agent = Agent("a", model=LitellmModel("openai/gpt-4o", base_url=fake.base_url, api_key="k"))
            async with guard.session("agents-litellm-once") as s:
                result = await Runner.run(agent, "go", hooks=BreakerHooks(guard))
        finally:
            guard.uninstrument()
    assert result.final_output == "done"
    assert fake.count == s.calls == 1  # LiteLLM posts it with the patched OpenAI SDK: the hooks stand aside


@pytest.mark.parametrize("streamed", [False, True])
async def test_under_instrument_a_call_the_budget_cannot_give_min_output_tokens_is_never_sent(streamed):
    """With the Responses API, an answer cut by its cap is a ModelBehaviorError (response.incomplete) out of
    the SDK: a call the budget can pay only a useless cap for must be refused before it goes out, and the run
    end with the budget's stop, not with that error."""
    from agents import OpenAIResponsesModel

    from breaker.testing import FakeLLM, Reply

    guard = Breaker(budgets=[Budget(usd=0.002)], alerts=[], min_output_tokens=300)  # ~190 output tokens of gpt-4o
    with FakeLLM(default=Reply(text="word " * 250)) as fake:
        guard.instrument()
        try:
            agent = Agent("a", model=OpenAIResponsesModel("gpt-4o", fake.async_openai()))
            with pytest.raises(breaker.SessionKilled) as killed:
                async with guard.session(f"agents-min-output-{streamed}") as s:
                    if streamed:
                        run = Runner.run_streamed(agent, "go", hooks=BreakerHooks(guard))
                        async for _ in run.stream_events():
                            pass
                    else:
                        await Runner.run(agent, "go", hooks=BreakerHooks(guard))
        finally:
            guard.uninstrument()
    assert isinstance(killed.value.__cause__, BudgetExceeded) and "min_output_tokens" in str(killed.value)
    assert fake.count == 0 and s.calls == 0


async def test_under_instrument_a_call_without_max_tokens_is_capped_by_the_sdk_layer_not_refused():
    from agents import OpenAIChatCompletionsModel

    from breaker.testing import FakeLLM, Reply

    guard = Breaker(budgets=[Budget(usd=0.10)], alerts=[])  # 16,384 output tokens of gpt-4o would cost $0.16
    with FakeLLM(default=Reply(text="done", input_tokens=40)) as fake:
        guard.instrument()
        try:
            agent = Agent("a", model=OpenAIChatCompletionsModel("gpt-4o", fake.async_openai()))
            async with guard.session("agents-capped") as s:
                result = await Runner.run(agent, "go", hooks=BreakerHooks(guard))
        finally:
            guard.uninstrument()
    assert result.final_output == "done" and fake.count == s.calls == 1
    assert 0 < fake.requests[0].output_cap < 16_384
