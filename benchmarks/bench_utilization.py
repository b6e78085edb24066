"""How much of its budget an agent gets to spend before the guard stops it.

    .venv/bin/python benchmarks/bench_utilization.py

A guard that never overshoots is easy if it refuses early; the point is to
refuse only the call the budget really cannot pay for. Each agent runs against
FakeLLM (whose reported usage follows the request: input from its text size,
output never past its cap) until the session is killed. Then the refused request
is sent once, unguarded, to the same FakeLLM to learn what it would really have
cost. Utilization = (spent at the kill + that real cost) / budget: at least 100%
means the refusal was right (the call did not fit), anything well below means
the guard stopped an agent that could have gone on.

Three bounds, on the same agents in the same run:
- ``previous``: the input bound from the request's bytes alone and, with no
  ``max_tokens``, the output bound of the model's whole context window (the
  bounds before the history and max-output rules; emulated by switching them off);
- ``strict``: the default (bytes for what is new, the provider's own count for
  the conversation so far; the model's maximum output);
- ``loose``: ``input_estimate="loose"`` (gives up the zero-overshoot guarantee).
Timings are not measured here, only money, so the figures travel between machines.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import breaker  # noqa: E402
from breaker.cli._agent import fake_script, run_agent  # noqa: E402
from breaker.pricing import NANO, PriceBook  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from breaker.usage import Usage  # noqa: E402

PRICES = PriceBook()


class Recorder:
    """Stands in front of a guarded client: keeps the keyword arguments of each chat call."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[dict[str, Any]] = []
        self.chat = self
        self.completions = self

    def create(self, **kwargs: Any) -> Any:
        self.calls.append({**kwargs, "messages": list(kwargs["messages"])})
        return self._client.chat.completions.create(**kwargs)


class _Forgetful(collections.OrderedDict):  # type: ignore[type-arg]
    """A learned-bounds table that learns nothing."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@contextlib.contextmanager
def previous_bounds() -> Iterator[None]:
    """The bounds before the history and max-output rules: no learning, the context window for output."""
    from breaker.engine import admission
    from breaker.estimate import ESTIMATOR

    learned, ceiling = ESTIMATOR._learned, admission.max_output_tokens
    ESTIMATOR._learned = _Forgetful()
    admission.max_output_tokens = lambda model: None  # type: ignore[assignment]
    try:
        yield
    finally:
        ESTIMATOR._learned = learned
        admission.max_output_tokens = ceiling  # type: ignore[assignment]


def growing_history(client: Any, model: str, turns: int = 20) -> None:
    """A chat that resends its whole history each turn; ``max_tokens`` unset."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful research assistant."}]
    for turn in range(turns):
        notes = " ".join(f"finding {turn}.{i}: the measured value moved by {i * 7 % 13} units" for i in range(120))
        messages.append({"role": "user", "content": f"Turn {turn}. New notes: {notes}. What changed?"})
        try:
            reply = client.chat.completions.create(model=model, messages=messages)
        except Exception:  # noqa: BLE001 - agent code swallows errors; the kill passes through
            continue
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})


AGENTS: dict[str, dict[str, Any]] = {
    "breaker demo ($0.05, gpt-4o, degrades to mini)": dict(
        budget=0.05, model="gpt-4o", script=fake_script,
        guard=dict(loops=breaker.LoopPolicy(max_identical=3, max_tool_repeats=3, on_detect="degrade"),
                   degrade=breaker.Degrade(model_map={"gpt-4o": "gpt-4o-mini"}, max_output_tokens=200)),
        run=lambda client, model: run_agent(client, model, lambda phase, result: None),
    ),
    "20-turn growing history ($0.10, gpt-4o, max_tokens unset)": dict(
        budget=0.10, model="gpt-4o", script=Reply(text=" ".join(["answer"] * 150)), guard={},
        run=growing_history,
    ),
}


def run_one(spec: dict[str, Any], estimate: str) -> dict[str, Any]:
    with FakeLLM(default=spec["script"]) as fake:
        guard = breaker.Breaker(budgets=[breaker.Budget(usd=spec["budget"])], alerts=[], input_estimate=estimate,
                                **spec["guard"])
        client = Recorder(guard.wrap(fake.openai(max_retries=0)))
        session = None
        try:
            with guard.session(f"utilization-{estimate}") as session:
                spec["run"](client, spec["model"])
        except (breaker.SessionKilled, RuntimeError):  # RuntimeError: the agent's own step limit
            pass
        assert session is not None
        sent = fake.count
        killed = session.tripped is not None
        spent = session.cost_usd
        refused = client.calls[-1] if killed else None
        real = 0.0
        if refused is not None:
            degraded = session.state.degrade_hint or session.state.loop_degrade
            model = refused["model"]
            if degraded and guard.degrade is not None and guard.degrade.model_map:
                model = guard.degrade.model_map.get(model, model)
            cap = guard.degrade.max_output_tokens if degraded and guard.degrade is not None else None
            request = {**refused, "model": model}
            if cap is not None:
                request["max_tokens"] = min(cap, request.get("max_tokens") or cap)
            reply = fake.openai(max_retries=0).chat.completions.create(**request)  # unguarded: what it would cost
            u = reply.usage
            price = PRICES.lookup(model, "openai")
            real = price.cost(Usage(u.prompt_tokens, u.completion_tokens)) / NANO if price else 0.0
        return {"spent": spent, "real": real, "budget": spec["budget"], "calls": sent, "killed": killed}


def main() -> int:
    print("\n## Budget utilization at the kill (benchmarks/bench_utilization.py)")
    print("spent = settled spend when the session was stopped; refused = what the refused call would really")
    print("have cost; utilization = (spent + refused) / budget (>= 100%: the refusal was right).\n")
    print("| agent | bound | calls sent | spent at kill | refused call, real cost | utilization |")
    print("|---|---|---:|---:|---:|---:|")
    worst_strict = 10.0
    for name, spec in AGENTS.items():
        for label, estimate, context in (("previous", "strict", previous_bounds), ("strict", "strict", contextlib.nullcontext),
                                         ("loose", "loose", contextlib.nullcontext)):
            with context():
                r = run_one(spec, estimate)
            use = (r["spent"] + r["real"]) / r["budget"]
            if label == "strict":
                worst_strict = min(worst_strict, use)
            print(f"| {name} | {label} | {r['calls']} | ${r['spent']:.4f} ({r['spent'] / r['budget']:.0%}) "
                  f"| ${r['real']:.4f} | {use:.0%} |" + ("" if r["killed"] else " (not killed)"))
    print(f"\nstrict mode, lowest utilization: {worst_strict:.0%} (target: at least 95%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
