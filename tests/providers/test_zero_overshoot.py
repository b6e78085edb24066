"""Zero overshoot with the tight bounds: the worst provider, many callers, one budget.

The provider here is as bad as a tokenizer can be: one token per UTF-8 byte of
the request (CJK and emoji text, where real tokenizers come close to that) and
every output token the request allows, never fewer. Agents grow their
histories, so every call after the first is bounded from the provider's own
count of the one before (the learned bound) plus the bytes appended. Threads
and asyncio tasks race one global budget through the real OpenAI SDK: the
settled spend must never pass it.
"""

from __future__ import annotations

import asyncio
import threading

from breaker import Breaker, Budget, SessionKilled
from breaker.testing import FakeLLM, Reply
from breaker.testing.reply import _text_bytes

TEXT = "预算用尽前的最后一次调用 😀 エージェント "  # 3-4 bytes a character
LIMIT = 0.25


def worst_provider(received) -> Reply:
    body = received.body
    spent_input = sum(_text_bytes(body.get(k)) for k in ("messages", "tools")) + 3 * len(body["messages"])
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or 16_384
    return Reply(text=" ".join(["字"] * min(cap, 40)), input_tokens=spent_input, output_tokens=cap)


def agent(client, name: str, steps: int = 12) -> None:
    messages = [{"role": "system", "content": "回答してください " * 20}]
    for step in range(steps):
        messages.append({"role": "user", "content": f"{name} {step} " + TEXT * 30})
        try:
            reply = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
        except Exception:  # noqa: BLE001 - agent code swallows errors; a kill passes through
            continue
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})


def guard_for(fake) -> tuple[Breaker, object]:
    guard = Breaker(budgets=[Budget(usd=LIMIT, per="global")], alerts=[], reservation_wait=5)
    return guard, guard.wrap(fake.openai(max_retries=0))


def test_threads_never_pass_the_budget_with_a_byte_per_token_provider():
    with FakeLLM(default=worst_provider) as fake:
        guard, client = guard_for(fake)

        def run(i: int) -> None:
            try:
                with guard.session(f"thread-{i}"):
                    agent(client, f"t{i}")
            except SessionKilled:
                pass

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spent = guard.spent("global")
        assert fake.count == spent.calls > 8  # more than one step each: the learned bounds were in play
        assert LIMIT * 0.9 < spent.usd <= LIMIT  # spent to near the last affordable call, never past it


async def test_tasks_never_pass_the_budget_with_a_byte_per_token_provider():
    with FakeLLM(default=worst_provider) as fake:
        guard = Breaker(budgets=[Budget(usd=LIMIT, per="global")], alerts=[], reservation_wait=5)
        client = guard.wrap(fake.async_openai(max_retries=0))

        async def run(i: int) -> None:
            messages = [{"role": "system", "content": "回答してください " * 20}]
            try:
                async with guard.session(f"task-{i}"):
                    for step in range(12):
                        messages.append({"role": "user", "content": f"a{i} {step} " + TEXT * 30})
                        try:
                            reply = await client.chat.completions.create(model="gpt-4o", messages=messages,
                                                                         max_tokens=100)
                        except Exception:  # noqa: BLE001
                            continue
                        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
            except SessionKilled:
                pass

        await asyncio.gather(*(run(i) for i in range(8)))  # FakeLLM listens with a backlog of 5-8
        spent = guard.spent("global")
        assert fake.count == spent.calls > 8
        assert LIMIT * 0.9 < spent.usd <= LIMIT  # spent to near the last affordable call, never past it
