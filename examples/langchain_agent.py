"""A LangChain v1 agent that never stops calling tools, kept within a $0.05 budget.

`BreakerMiddleware` admits every model call of `create_agent` before it is
sent: past 40% of the budget it switches the agent to gpt-4o-mini, and when
the budget cannot pay for the next call it ends the run with a message that
says which limit stopped it; the session stays tripped (`session.tripped`), so
any later call in it is refused before it is sent. No API key, no network: the chat model below is
a scripted stand-in for `ChatOpenAI(model="gpt-4o")`.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

import breaker
from breaker_langchain import BreakerMiddleware


class RunawayChat(BaseChatModel):
    """Stands in for a provider's chat model: always asks for one more search, reports usage like ChatOpenAI."""

    model_name: str = "gpt-4o"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        CALLS.append(self.model_name)  # what reached the "provider"
        n = len(CALLS)
        size = sum(len(str(m.content)) for m in messages) // 4 + 150
        message = AIMessage(
            "", tool_calls=[{"name": "search", "args": {"q": f"attempt {n}"}, "id": f"call-{n}"}],
            usage_metadata={"input_tokens": size, "output_tokens": 400, "total_tokens": size + 400,
                            "input_token_details": {"cache_read": size // 2}},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools, **kwargs: Any):
        return self.bind(tools=[t.name for t in tools], **kwargs)

    def _get_ls_params(self, stop=None, **kwargs: Any):
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}

    @property
    def _llm_type(self) -> str:
        return "runaway"


@tool
def search(q: str) -> str:
    """Search the knowledge base."""
    return "nothing found, try again"


CALLS: list[str] = []
guard = breaker.Breaker(
    budgets=[breaker.Budget(usd=0.05, degrade_at=0.4)],
    degrade=breaker.Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
    alerts=[breaker.alerts.Callback(lambda e: print(f"  [{e.kind}] {e.message}"))],
)
agent = create_agent(
    RunawayChat(),
    tools=[search],
    middleware=[BreakerMiddleware(guard, models={"gpt-4o-mini": RunawayChat(model_name="gpt-4o-mini")})],
)

with guard.session("lc-demo", feature="research") as session:
    result = agent.invoke({"messages": [{"role": "user", "content": "Find the answer."}]})
    # The run ended normally, with the breaker's message as its last answer.
    print("\nlast message:", result["messages"][-1].content)
print("stopped by:", session.tripped.reason)
print(f"{session.calls} model calls ({CALLS.count('gpt-4o')} on gpt-4o, {CALLS.count('gpt-4o-mini')} on gpt-4o-mini), "
      f"${session.cost_usd:.4f} of $0.05")
assert session.cost_usd <= 0.05 and session.calls == len(CALLS) and session.tripped is not None
