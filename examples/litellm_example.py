"""LiteLLM calls in a runaway loop, stopped by a $0.05 session budget before the money is spent.

LiteLLM's own SDK budget (`litellm.max_budget`) is checked after the fact and
ignores what the prompt will cost; `BreakerLogger` reserves each call's worst
case before it is sent and settles the exact cost (cached and reasoning
tokens included) after. LiteLLM talks to breaker's loopback `FakeLLM` in the
OpenAI wire format: no API key, no network.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch LiteLLM's price map

import litellm  # noqa: E402

import breaker  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from breaker_litellm import BreakerLogger  # noqa: E402

guard = breaker.Breaker(
    budgets=[breaker.Budget(usd=0.05)],
    alerts=[breaker.alerts.Callback(lambda e: print(f"  [{e.kind}] {e.message}"))],
)
logger = BreakerLogger(guard)
litellm.callbacks = [logger]

with FakeLLM(default=Reply(text="Let me check once more.", output_tokens=400, cached_tokens=0)) as fake:
    messages = [{"role": "user", "content": "Summarise the ticket."}]
    try:
        with guard.session("litellm-demo", feature="summaries") as session:
            for step in range(1, 200):
                try:
                    reply = litellm.completion(model="openai/gpt-4o", api_base=fake.base_url, api_key="no-key",
                                               messages=messages, max_tokens=400)
                    messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                                 {"role": "user", "content": "Check again."}]
                except Exception as e:  # agent code swallows errors; the kill is a BaseException and passes
                    print("swallowed:", e)
    except breaker.SessionKilled as killed:
        print("\nSessionKilled:", killed)
    logger.wait_settled()  # LiteLLM settles sync calls in a worker thread
    print(f"{fake.count} requests reached the model, {session.calls} counted, ${session.cost_usd:.4f} of $0.05")
    assert fake.count == session.calls and session.cost_usd <= 0.05
