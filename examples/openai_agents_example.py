"""An OpenAI Agents SDK agent stuck in a tool loop, killed by its $0.02 session budget.

The Agents SDK only stops a run after `max_turns`; `BreakerHooks` admits every
model call before it is sent and prices each response exactly (cached and
reasoning tokens included). No API key, no network: the model below is a
scripted stand-in for `OpenAIResponsesModel("gpt-4o")` that answers like it.
"""

from __future__ import annotations

import asyncio

from agents import Agent, ModelSettings, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import breaker
from breaker_openai_agents import BreakerHooks

set_tracing_disabled(True)  # traces would be exported to OpenAI


class StuckModel(Model):
    """Asks for the same lookup with a fresh id, forever; reports usage like the Responses API."""

    def __init__(self) -> None:
        self.model = "gpt-4o"
        self.requests = 0

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, **kwargs) -> ModelResponse:
        self.requests += 1
        n = self.requests
        prompt = (len(str(system_instructions)) + len(str(input))) // 4 + 120
        call = ResponseFunctionToolCall(type="function_call", name="lookup_order", call_id=f"call_{n}",
                                        arguments=f'{{"order_id": "A-{n}"}}', id=f"fc_{n}")
        usage = Usage(requests=1, input_tokens=prompt, output_tokens=250, total_tokens=prompt + 250,
                      input_tokens_details=InputTokensDetails(cached_tokens=prompt // 2, cache_write_tokens=0),
                      output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
        return ModelResponse(output=[call], usage=usage, response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


@function_tool
def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return "the order system timed out, try again"


async def main() -> None:
    guard = breaker.Breaker(
        budgets=[breaker.Budget(usd=0.02)],
        alerts=[breaker.alerts.Callback(lambda e: print(f"  [{e.kind}] {e.message}"))],
    )
    model = StuckModel()
    agent = Agent("support", instructions="Find the customer's order.", model=model, tools=[lookup_order],
                  model_settings=ModelSettings(max_tokens=300))  # bounds each call's worst case
    try:
        async with guard.session("agents-demo", feature="support") as session:
            try:
                await Runner.run(agent, "Where is my order?", hooks=BreakerHooks(guard), max_turns=500)
            except Exception as e:  # agent code catches errors; the kill is a BaseException and passes
                print("never reached:", e)
    except breaker.SessionKilled as killed:
        print("\nSessionKilled:", killed)
    print(f"{model.requests} requests reached the model, {session.calls} counted, ${session.cost_usd:.4f} of $0.02")
    assert model.requests == session.calls and session.cost_usd <= 0.02


asyncio.run(main())
