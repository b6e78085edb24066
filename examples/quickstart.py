"""The README's quickstart, against the built-in fake model: no API key, no network.

Swap the FakeLLM client for `openai.OpenAI()` and it is the real thing.
"""

from __future__ import annotations

import openai

import breaker
from breaker.testing import FakeLLM, Reply

with FakeLLM(default=Reply(text="Your order 42 is at the hub.")) as fake:
    guard = breaker.Breaker(budgets=[breaker.Budget(usd=2.00)])  # per session, hard kill
    client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="no-key-needed"))

    try:
        with guard.session("ticket-42", feature="support", user="acme") as s:
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order 42?"}]
            )
            print("model:", reply.choices[0].message.content)
            s.outcome("resolved")  # for cost-per-outcome reports
    except breaker.SessionKilled as e:  # the budget or a loop stopped the agent
        print("stopped:", e)
    print(f"${s.cost_usd:.6f} spent, ${s.remaining_usd:.4f} left, {s.calls} calls, {s.tokens} tokens")
