"""Budget utilization: how much of its budget an agent gets to spend before breaker kills it.

A LangChain v1 agent (``create_agent`` + ``BreakerMiddleware``) calls a tool on every
step, so its history grows, under ``Budget(usd=0.02, degrade_at=0.5)`` with
``Degrade(model_map={"gpt-4o": "gpt-4o-mini"})``. The chat model is an honest fake
(``tests/integrations/lc_fake.HonestChat``): it reports the input a provider would
count for what it received (``count_input`` of the request's OpenAI wire form) and
never more output than the ``max_tokens`` it was sent. No max_tokens is set on the
model: breaker lowers the cap to what the budget can pay.

At the kill, the refused call is priced as it would have gone out at the least: the
request the model would have received, input = ``count_input`` of it, output = the
smallest cap breaker sends (``min_output_tokens``), at the price of the model it
would have gone to (gpt-4o-mini by then). Utilization = (spent + that) / budget: at
100% or more the refused call really could not be paid, below it the kill came
early by that much. Strict mode must reach 95% with no overshoot; loose mode
(``input_estimate="loose"``) is shown beside it, with its overshoot if any.

Run: .venv/bin/python benchmarks/bench_utilization_langchain.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the honest fake lives with the plugin tests

from _util import header  # noqa: E402

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import AgentMiddleware  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402

from breaker import Breaker, Budget, Degrade, Usage  # noqa: E402
from breaker.pricing import NANO, PriceBook  # noqa: E402
from breaker_langchain import BreakerMiddleware  # noqa: E402
from tests.integrations.lc_fake import honest, request_tokens, usage  # noqa: E402

BUDGET = 0.02
TARGET = 0.95
SYSTEM = "You are a research agent. Look things up with the tool until you can answer; cite what you found."


@tool
def lookup(query: str) -> str:
    """Look a query up in the knowledge base and return the matching passages."""
    return f"Results for {query!r}: " + " ".join(
        f"[{i}] a passage about {query} with enough detail to keep the agent looking further." for i in range(5)
    )


def researcher(n: int, messages: list[Any]) -> AIMessage:
    """Thinks aloud a little, then calls the tool again with a new query: never done on its own."""
    thought = f"Step {n}: the passages so far do not settle it; I will look for more specific sources. " * 3
    return AIMessage(
        content=thought,
        tool_calls=[{"name": "lookup", "args": {"query": f"sub-question {n} of the research task"}, "id": f"call_{n}"}],
        usage_metadata=usage(0, 120),  # input is replaced by what the request really holds
    )


class LastRequest(AgentMiddleware):
    """Outermost: keeps the last request the agent made (the refused one, at the kill)."""

    def __init__(self) -> None:
        super().__init__()
        self.request: Any = None

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        self.request = request
        return handler(request)


def run(mode: str) -> dict[str, Any]:
    guard = Breaker(
        budgets=[Budget(usd=BUDGET, degrade_at=0.5)],
        degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
        alerts=[], telemetry=False, input_estimate=mode,
    )
    model = honest(researcher)
    last = LastRequest()
    agent = create_agent(model, tools=[lookup], system_prompt=SYSTEM, middleware=[last, BreakerMiddleware(guard)])
    start = time.perf_counter()
    with guard.session(f"utilization-{mode}") as s:
        result = agent.invoke({"messages": [{"role": "user", "content": "Research the question thoroughly."}]},
                              config={"recursion_limit": 100_000})
    seconds = time.perf_counter() - start
    final = result["messages"][-1]
    killed = final.name == "breaker"
    spent = s.cost_usd
    refused_model = model.sent[-1][0]  # still degraded at the kill: the refused call would go where the last went
    request = last.request
    messages = [request.system_message, *request.messages] if request.system_message else list(request.messages)
    refused_input = request_tokens(messages, [convert_to_openai_tool(t) for t in request.tools])
    price = PriceBook().lookup(refused_model, "openai")
    assert price is not None
    refused_cost = price.cost(Usage(refused_input, guard.min_output_tokens)) / NANO
    models = [name for name, _, _ in model.sent]
    first_mini = models.index("gpt-4o-mini") if "gpt-4o-mini" in models else None
    return {
        "mode": mode, "calls": len(models), "gpt-4o": models.count("gpt-4o"), "gpt-4o-mini": models.count("gpt-4o-mini"),
        "killed": killed, "reason": s.tripped.reason if s.tripped is not None else "-", "cut": len(model.cut),
        "degraded_before_kill": first_mini is not None and killed, "spent": spent, "refused_input": refused_input,
        "refused_model": refused_model, "refused_cost": refused_cost,
        "utilization": (spent + refused_cost) / BUDGET, "overshoot": max(spent - BUDGET, 0.0), "seconds": seconds,
        "last_cap": model.sent[-1][1],
    }


def main() -> int:
    header("Budget utilization: LangChain create_agent + BreakerMiddleware, $0.02, degrade at 50%")
    rows = [run("strict"), run("loose")]
    print()
    print("| input_estimate | calls (gpt-4o + mini) | degraded before the kill | spent at the kill | refused call, real cost "
          "| utilization | overshoot | time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['calls']} ({r['gpt-4o']} + {r['gpt-4o-mini']}) | "
            f"{'yes' if r['degraded_before_kill'] else 'no'} | ${r['spent']:.6f} | "
            f"${r['refused_cost']:.6f} ({r['refused_input']:,} in + 16 out, {r['refused_model']}) | "
            f"{r['utilization']:.1%} | ${r['overshoot']:.6f} | {r['seconds']:.1f}s |"
        )
    print()
    strict = rows[0]
    for r in rows:
        if not r["killed"]:
            print(f"{r['mode']}: the run ended without a kill (reason {r['reason']}, {r['cut']} replies cut by max_tokens)")
        elif r["cut"]:
            print(f"{r['mode']}: {r['cut']} replies were cut short by the cap breaker sent")
    ok = (strict["killed"] and strict["reason"] == "budget" and strict["utilization"] >= TARGET
          and strict["degraded_before_kill"] and strict["overshoot"] == 0)
    print(f"strict mode: utilization {strict['utilization']:.1%} (target >= {TARGET:.0%}), degraded before the kill: "
          f"{'yes' if strict['degraded_before_kill'] else 'no'}, overshoot ${strict['overshoot']:.6f} -> "
          f"{'met' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
