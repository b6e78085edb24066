"""A pydantic-ai agent that keeps calling a tool, degraded and then stopped gracefully.

pydantic-ai checks `UsageLimits` after each response and per run;
`BreakerCapability` reserves each request's worst case *before* it is sent,
switches to gpt-4o-mini past 40% of the budget, and when the budget cannot
pay for the next request ends the run with a final answer that says why
(`SkipModelRequest`); the session stays tripped (`session.tripped`), so any
later call in it is refused before it is sent. No API key, no network: `FunctionModel` stands in for
`openai:gpt-4o` and `openai:gpt-4o-mini`.
"""

from __future__ import annotations

import asyncio

from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import breaker
from breaker_pydantic_ai import BreakerCapability

SENT: list[str] = []  # the model each request reached


def stuck(name: str):
    def respond(messages, info: AgentInfo) -> ModelResponse:
        SENT.append(name)
        prompt = sum(len(str(m)) for m in messages) // 8
        return ModelResponse(parts=[ToolCallPart("search", {"q": f"attempt {len(SENT)}"})],
                             usage=RequestUsage(input_tokens=prompt, cache_read_tokens=prompt // 2, output_tokens=300))
    return FunctionModel(respond, model_name=name)


guard = breaker.Breaker(
    budgets=[breaker.Budget(usd=0.03, degrade_at=0.4)],
    degrade=breaker.Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
    alerts=[breaker.alerts.Callback(lambda e: print(f"  [{e.kind}] {e.message}"))],
)
agent = Agent(
    stuck("gpt-4o"),
    instructions="Answer with the search results.",
    capabilities=[BreakerCapability(guard, models={"gpt-4o-mini": stuck("gpt-4o-mini")})],
    model_settings={"max_tokens": 400},
)


@agent.tool_plain
def search(q: str) -> str:
    """Search the web."""
    return "no results"


async def main() -> None:
    async with guard.session("pydantic-ai-demo", feature="research") as session:
        result = await agent.run("What is the answer?")
        print("\noutput:", result.output)  # the run ended normally, with the breaker's answer
    print("stopped by:", session.tripped.reason)
    print(f"{len(SENT)} requests ({SENT.count('gpt-4o')} gpt-4o, {SENT.count('gpt-4o-mini')} gpt-4o-mini), "
          f"{session.calls} counted, ${session.cost_usd:.4f} of $0.03")
    assert len(SENT) == session.calls and session.cost_usd <= 0.03 and session.tripped is not None


asyncio.run(main())
