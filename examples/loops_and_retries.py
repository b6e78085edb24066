"""Runaway loops, stopped: tool thrash, a retry storm in tenacity, a history that keeps growing.

Runs against breaker's loopback FakeLLM with the real OpenAI SDK: no API key,
no network. Each agent below is a common way agents burn money; each one is
stopped or degraded by the default LoopPolicy, and the output shows how many
requests actually reached the (fake) provider.

    python examples/loops_and_retries.py
"""

from __future__ import annotations

import tenacity

import breaker
from breaker import Breaker, Budget, Degrade, LoopPolicy, SessionKilled
from breaker.retry import before_sleep, retry_unless_tripped, stop_when_tripped
from breaker.testing import FakeLLM, Reply

MINI, BIG = "gpt-4o-mini", "gpt-4o"


def show(event: breaker.Event) -> None:
    print(f"    [{event.kind}] {event.message}")


def tool_thrash(fake: FakeLLM) -> None:
    """The model asks for the same search every time; the agent obliges."""
    fake.reset()
    fake.default = Reply(text="", tool_calls=[("search", {"q": "refund policy"})])
    guard = Breaker(alerts=[show])
    client = guard.wrap(fake.openai(max_retries=0))
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "What is our refund policy?"}]
    try:
        with guard.session("tool-thrash"):
            for _ in range(50):
                msg = client.chat.completions.create(model=MINI, messages=messages, tools=tools).choices[0].message
                messages.append(msg.model_dump(exclude_none=True))
                messages += [{"role": "tool", "tool_call_id": tc.id, "content": "no results"} for tc in msg.tool_calls]
    except SessionKilled as killed:
        print(f"  stopped ({killed.reason}) after {fake.count} requests reached the provider")


def retry_storm(fake: FakeLLM) -> None:
    """A failing provider, and tenacity retrying with no wait; the agent catches everything."""
    fake.reset()
    fake.default = Reply(status=500)
    guard = Breaker(alerts=[show])
    client = guard.wrap(fake.openai(max_retries=0))

    @tenacity.retry(
        retry=retry_unless_tripped,                            # like tenacity's default, never retries a kill
        stop=stop_when_tripped | tenacity.stop_after_attempt(100),
        before_sleep=before_sleep(guard),                      # each retry feeds the loop detector
    )
    def ask(step: int) -> str:
        r = client.chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": f"Summarise ticket {step}"}], max_tokens=100)
        return r.choices[0].message.content

    try:
        with guard.session("retry-storm"):
            for step in range(100):
                try:
                    ask(step)
                except Exception:  # the kill is a BaseException: this does not swallow it
                    pass
    except SessionKilled as killed:
        print(f"  stopped ({killed.reason}) after {fake.count} requests reached the provider")


def growing_history(fake: FakeLLM) -> None:
    """Every step appends a page of logs and resends everything: degrade by trimming, then the budget."""
    fake.reset()
    fake.default = Reply(text="Need more logs.")
    guard = Breaker(
        budgets=[Budget(usd=0.02)],
        loops=LoopPolicy(context_limit=5_000),
        degrade=Degrade(model_map={BIG: MINI}, keep_last_messages=4),
        alerts=[show],
    )
    client = guard.wrap(fake.openai(max_retries=0))
    messages = [{"role": "system", "content": "You are a log analyst."}, {"role": "user", "content": "Root cause?"}]
    try:
        with guard.session("hoarder") as s:
            for step in range(200):
                r = client.chat.completions.create(model=BIG, messages=messages, max_completion_tokens=100)
                messages.append({"role": "assistant", "content": r.choices[0].message.content})
                messages.append({"role": "user", "content": f"Page {step}: " + "log line with detail " * 50})
    except SessionKilled as killed:
        sent = [len(r.body["messages"]) for r in fake.requests]
        print(f"  stopped ({killed.reason}) after {fake.count} requests, ${s.cost_usd:.4f} of $0.02;"
              f" the agent's history reached {len(messages)} messages, the provider saw at most {max(sent)}")


if __name__ == "__main__":
    with FakeLLM() as fake:
        for demo in (tool_thrash, retry_storm, growing_history):
            print(f"\n{demo.__name__}: {demo.__doc__}")
            demo(fake)
