"""Seed pattern: tool thrash. The model asks for the same tool with the same arguments every time."""

from __future__ import annotations

import json

import pytest

from breaker import Breaker, LoopDetected, SessionKilled
from breaker.testing import Reply
from tests.conftest import Clock

MINI = "gpt-4o-mini"
HAIKU = "claude-haiku-4-5"
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object",
          "properties": {"q": {"type": "string"}}}}}]
A_TOOLS = [{"name": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]


def openai_agent(client, steps: int = 30) -> None:
    messages = [{"role": "user", "content": "What is our refund policy?"}]
    for _ in range(steps):
        r = client.chat.completions.create(model=MINI, messages=messages, tools=TOOLS, max_completion_tokens=200)
        msg = r.choices[0].message
        if not msg.tool_calls:
            return
        messages.append(msg.model_dump(exclude_none=True))
        for tc in msg.tool_calls:
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": "no results"})


def anthropic_agent(client, steps: int = 30) -> None:
    messages = [{"role": "user", "content": "What is our refund policy?"}]
    for _ in range(steps):
        r = client.messages.create(model=HAIKU, max_tokens=200, messages=messages, tools=A_TOOLS)
        uses = [b for b in r.content if b.type == "tool_use"]
        if not uses:
            return
        messages.append({"role": "assistant", "content": [b.model_dump() for b in r.content]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": "no results"} for b in uses]})


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_same_tool_same_arguments_is_stopped_after_the_fifth_ask(fake, sink, flavour):
    fake.default = Reply(text="", tool_calls=[("search", {"q": "refund policy"})])
    guard = Breaker(alerts=[sink], clock=Clock())
    if flavour == "openai":
        client, agent = guard.wrap(fake.openai(max_retries=0)), openai_agent
    else:
        client, agent = guard.wrap(fake.anthropic(max_retries=0)), anthropic_agent
    with pytest.raises(SessionKilled) as info:
        with guard.session("thrash") as s:
            agent(client)
    assert isinstance(info.value.__cause__, LoopDetected)
    assert info.value.reason == "loop:tool_repeat"
    # max_tool_repeats=4: four asks are fine, the 5th is thrash; the agent's next call is refused
    assert fake.count == 5 and s.calls == 5
    assert [e.data["signal"] for e in sink.of("loop")] == ["tool_repeat"]
    assert not any("refund policy" in e.message for e in sink)  # arguments never reach events


def test_changing_arguments_is_progress_not_thrash(fake):
    queries = iter(range(1000))
    fake.default = lambda received: Reply(text="", tool_calls=[("search", {"q": f"page {next(queries)}"})])
    guard = Breaker(alerts=[], clock=Clock())
    client = guard.wrap(fake.openai(max_retries=0))
    with guard.session("paging") as s:
        openai_agent(client, steps=8)
    assert fake.count == 8 and s.tripped is None
    # and the requests really carried the growing history with its tool results
    assert json.dumps(fake.requests[-1].body["messages"]).count('"role": "tool"') == 7
