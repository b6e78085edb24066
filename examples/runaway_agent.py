"""A runaway agent stopped by its session budget (no API key, no network).

The agent keeps asking the model for "one more step", resending a history
that grows every time, and catches every exception, as agent code does. The
breaker stops it anyway: the kill is a BaseException that `except Exception`
cannot swallow, and the session boundary turns it into an ordinary
SessionKilled. `breaker demo` is the longer, live version of this.
"""

from __future__ import annotations

import openai

import breaker
from breaker.testing import FakeLLM, Reply

NOTES = "Step notes: checked the order, the courier and the hub; nothing conclusive yet. " * 40


def show(event: breaker.Event) -> None:
    if event.kind != "session_end":
        print(f"  [{event.kind}] {event.message}")


def runaway_agent(client: openai.OpenAI) -> None:
    history = [{"role": "user", "content": "Find out why order 42 is late."}]
    for step in range(1, 1_000):
        try:
            reply = client.chat.completions.create(model="gpt-4o", messages=history, max_tokens=400)
            history += [{"role": "assistant", "content": reply.choices[0].message.content},
                        {"role": "user", "content": f"{NOTES} Keep going (step {step})."}]
            print(f"step {step:3d}: {reply.usage.prompt_tokens:6,} input tokens")
        except Exception as e:  # agent code swallows errors and keeps going...
            print("agent swallowed:", e)


with FakeLLM(default=Reply(text="Let me look into that a bit more.")) as fake:
    guard = breaker.Breaker(budgets=[breaker.Budget(usd=0.05)], alerts=[show])
    client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="no-key-needed"))
    try:
        with guard.session("demo-ticket-42", feature="support") as session:
            runaway_agent(client)
    except breaker.SessionKilled as killed:
        print("\nSessionKilled:", killed)
        print(f"spent ${session.cost_usd:.4f} of $0.05 in {session.calls} calls; "
              f"FakeLLM received {fake.count} requests (none after the kill)")
