"""The degradation ladder end to end: what the provider actually receives once a session is degraded."""

from __future__ import annotations

import pytest

from breaker import Breaker, Degrade, LoopPolicy
from breaker.testing import Reply
from tests.conftest import Clock

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def test_anthropic_degraded_request_cheaper_model_less_thinking_short_history(fake, sink):
    fake.default = Reply(text="", tool_calls=[("lookup", {"id": 1})])
    guard = Breaker(
        loops=LoopPolicy(max_identical=None, max_tool_repeats=2, on_detect="degrade"),
        degrade=Degrade(model_map={SONNET: HAIKU}, reasoning_effort="low", keep_last_messages=2, max_output_tokens=4000),
        alerts=[sink], clock=Clock(),
    )
    client = guard.wrap(fake.anthropic(max_retries=0))
    messages = [{"role": "user", "content": "Investigate order 1."}]
    tickets_degraded = []
    with guard.session("ladder") as s:
        for _ in range(5):
            r = client.messages.create(
                model=SONNET, max_tokens=16_000, thinking={"type": "enabled", "budget_tokens": 8_000},
                tools=[{"name": "lookup", "input_schema": {"type": "object"}}], messages=messages)
            uses = [b for b in r.content if b.type == "tool_use"]
            messages.append({"role": "assistant", "content": [b.model_dump() for b in r.content]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": b.id, "content": "pending"} for b in uses]})
    assert s.tripped is None and fake.count == 5
    plain, degraded = fake.requests[:3], fake.requests[3:]  # the 3rd identical tool ask degrades what follows
    assert all(r.model == SONNET and r.body["thinking"]["budget_tokens"] == 8_000 for r in plain)
    for r in degraded:
        assert r.model == HAIKU
        assert r.body["max_tokens"] == 4000
        assert r.body["thinking"]["budget_tokens"] == 2_000  # "low": a quarter of the caller's budget
        sent = r.body["messages"]
        assert sent[0] == {"role": "user", "content": "Investigate order 1."}  # the task anchors the window
        # every tool_result still follows the assistant turn holding its tool_use
        for i, m in enumerate(sent):
            for block in m["content"] if isinstance(m["content"], list) else ():
                if block.get("type") == "tool_result":
                    asked = [b["id"] for b in sent[i - 1]["content"] if b.get("type") == "tool_use"]
                    assert block["tool_use_id"] in asked
        assert len(sent) == 3  # task + the last tool_use/tool_result pair
    # each further repeat is reported (asks 3 and 4 are seen before requests 4 and 5); the session degrades once
    assert [e.data["signal"] for e in sink.of("loop")] == ["tool_repeat", "tool_repeat"]
    assert len(sink.of("degraded")) == 1


def test_responses_api_history_trimmed_with_call_pairs_intact(fake):
    pages = iter(range(100))
    fake.default = lambda received: Reply(text="", tool_calls=[("fetch", {"page": next(pages)})])
    guard = Breaker(
        loops=LoopPolicy(context_limit=3_000, context_rising=2),
        degrade=Degrade(keep_last_messages=3), alerts=[], clock=Clock(),
    )
    client = guard.wrap(fake.openai(max_retries=0))
    items: list = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Summarise the site."}]
    with guard.session("responses"):
        for step in range(8):
            r = client.responses.create(model="gpt-4o-mini", input=items,
                                        tools=[{"type": "function", "name": "fetch", "parameters": {"type": "object"}}])
            for out in r.output:
                if out.type == "function_call":
                    items.append({"type": "function_call", "call_id": out.call_id, "name": out.name,
                                  "arguments": out.arguments})
                    items.append({"type": "function_call_output", "call_id": out.call_id,
                                  "output": f"page {step}: " + "text " * 200})
    sizes = [len(r.body["input"]) for r in fake.requests]
    assert fake.count == 8
    assert max(sizes) < len(items) - 2  # later requests were trimmed...
    for r in fake.requests:
        sent = r.body["input"]
        assert sent[0]["role"] == "developer"  # ...keeping the developer message
        calls = {i["call_id"] for i in sent if i.get("type") == "function_call"}
        outputs = [i["call_id"] for i in sent if i.get("type") == "function_call_output"]
        assert all(c in calls for c in outputs)  # ...and never an output without its call
        assert sent[1].get("type") != "function_call_output"
