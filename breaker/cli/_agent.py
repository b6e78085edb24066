"""The runaway agent of ``breaker demo``: three classic ways agents burn money.

It is ordinary agent code on the OpenAI SDK, written the way agents often
are: every model call wrapped in ``except Exception`` and retried. It goes
runaway three times, each the textbook case:

1. **Retry loop**: a validator that can never be satisfied, so the same
   request is sent again and again.
2. **Tool thrash**: the model keeps asking for the same tool with the same
   arguments, and the agent keeps obliging.
3. **History growth**: every step appends a large tool result to the
   history, so each call costs more than the last.

The same code runs against ``FakeLLM`` (scripted by ``fake_script`` to misbehave
deterministically) and, with ``breaker demo --live``, against the real API.
"""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["Step", "fake_script", "run_agent"]

SYSTEM = (
    "You are a support agent for an online shop. Use the tools to answer. "
    + "Policy: be accurate, cite the order log, never promise a delivery date, escalate refunds over $100. " * 12
).strip()
ASK_JSON = 'Return the status of order 42 as JSON: {"status": "..."}. Nothing else.'
ASK_LOOKUP = "Look up order 42 with the lookup_order tool and tell me where it is."
ASK_LOG = "Read the whole delivery log of order 42, page by page, with read_log, then summarise it."
LOG_PAGE = ("2026-11-20 08:14 parcel 42 scanned at hub; courier handover pending; retry window open. " * 180).strip()

TOOLS = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "read_log", "description": "Read one page of an order's delivery log.",
        "parameters": {"type": "object", "properties": {"page": {"type": "integer"}}, "required": ["page"]}}},
]

Step = Callable[[str, Any], None]  # (phase, response or exception) -> None


def _valid(answer: str) -> bool:
    """The agent's bug: it wants ``order_status`` while the prompt asks for ``status``."""
    try:
        return "order_status" in json.loads(answer)
    except (ValueError, TypeError):
        return False


def _tool_result(name: str, arguments: str) -> str:
    if name == "read_log":
        page = json.loads(arguments or "{}").get("page", 1)
        return f"[page {page}] {LOG_PAGE}"
    return '{"order_id": "42", "where": "at the hub"}'


def run_agent(client: Any, model: str, on_step: Step, *, max_steps: int = 60, max_tokens: int = 300) -> None:
    """Run the three runaway phases until the breaker stops it (or ``max_steps`` calls).

    ``on_step`` sees each response (or each exception the agent swallowed),
    so the demo can show spend live. A ``breaker.Tripped`` is not an
    ``Exception``: it goes through every ``except`` below and ends the run.
    """
    steps = 0

    def ask(phase: str, messages: list[dict[str, Any]], tools: bool) -> Any:
        nonlocal steps
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"the agent's own step limit ({max_steps}) was reached")
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
        if tools:
            kwargs["tools"] = TOOLS
        try:
            response = client.chat.completions.create(**kwargs)
        except Exception as e:  # agent code swallows errors and carries on...
            on_step(phase, e)
            return None
        on_step(phase, response)
        return response

    base: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]

    # 1. Retry loop: the same request until the (buggy) validator is happy.
    for _attempt in range(6):
        response = ask("retry loop", base + [{"role": "user", "content": ASK_JSON}], tools=False)
        if response is not None and _valid(response.choices[0].message.content or ""):
            break

    # 2. Tool thrash, then 3. history growth: follow the model's tool calls.
    for phase, question, limit in (("tool thrash", ASK_LOOKUP, 6), ("history growth", ASK_LOG, max_steps)):
        messages = base + [{"role": "user", "content": question}]
        for _ in range(limit):
            response = ask(phase, messages, tools=True)
            if response is None:
                continue
            message = response.choices[0].message
            calls = message.tool_calls or []
            if not calls:
                break
            messages.append({"role": "assistant", "content": message.content, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in calls]})
            for c in calls:
                messages.append({"role": "tool", "tool_call_id": c.id,
                                 "content": _tool_result(c.function.name, c.function.arguments)})


def fake_script(received: Any) -> Any:
    """What ``FakeLLM`` answers the agent: the misbehaving model of each phase.

    Decided from the request alone (its last user question and how many tool
    results it carries), so the run is the same every time.
    """
    from ..testing import Reply

    messages = received.body.get("messages") or []
    question = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    tool_results = sum(1 for m in messages if m.get("role") == "tool")
    if question == ASK_JSON:
        return Reply(text="Sure! Order 42 is on its way and should arrive soon.")
    if question == ASK_LOOKUP:
        return Reply(text="", tool_calls=[("lookup_order", {"order_id": "42"})])
    if question == ASK_LOG:
        return Reply(text="Reading the next page.", tool_calls=[("read_log", {"page": tool_results + 1})])
    return Reply(text="Done.")
