"""A runaway agent tripped by its session budget (no API key, no network).

The agent below keeps asking the model for "one more step" with a growing
history, and catches every exception, as agent code does. The breaker stops it
anyway: the kill is a BaseException that `except Exception` cannot swallow,
and the session boundary turns it into an ordinary SessionKilled.
"""

from __future__ import annotations

import breaker
from breaker import Breaker, Budget, Call, Usage

guard = Breaker(budgets=[Budget(usd=0.05)], alerts=[breaker.alerts.Callback(lambda e: print(f"  [{e.kind}] {e.message}"))])


def fake_model_call(history_tokens: int) -> Usage:
    """Stands in for a model call: the provider reports what it used."""
    return Usage(input_tokens=history_tokens, output_tokens=400)


def runaway_agent() -> None:
    history = 2_000
    for step in range(1, 1_000):
        try:
            ticket = guard.admit(Call("gpt-4o", "openai", input_tokens=history, max_output_tokens=1024, fingerprint=step))
            guard.settle(ticket, fake_model_call(history))
            history += 1_500  # the history grows every step
            print(f"step {step:3d}: ${guard.current_session().cost_usd:.4f} spent")
        except Exception as e:  # agent code swallows errors and keeps going...
            print("agent swallowed:", e)


try:
    with guard.session("demo-ticket-42", feature="support") as session:
        runaway_agent()
except breaker.SessionKilled as killed:
    print("\nSessionKilled:", killed)
    print(f"spent ${session.cost_usd:.4f} of $0.05 in {session.calls} calls")
