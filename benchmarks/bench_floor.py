"""The floor: breaker's own work per chat call beside a minimal guard doing the irreducible part of the job.

    .venv/bin/python benchmarks/bench_floor.py [--rounds 15] [--calls 2000]

Both guards are timed in the same process, interleaved, around the same stub that returns a ready
``ChatCompletion`` (``bench_overhead.isolated_stub()``: no SDK work, no network), on the same
20-message requests (19 shared message objects and a new last one, as an agent step). What each
adds is its time minus the bare stub's, per round; the ratio of the medians is the figure. Times are
this thread's CPU time (``time.thread_time``), so that on a shared machine the time the process waits
for a core is not counted (the caches a neighbour evicts still are).

The minimal guard (``MinimalGuard``) is what any in-process guard that enforces a budget with no
overshoot must do per call, written as tightly as plain Python allows, and nothing else:

* an input bound: the UTF-8 byte count of every message, with a prefix cache so a conversation's
  shared messages are not counted again (one list compare, then only the new tail);
* a content fingerprint (a chained ``hash``) and a count of identical requests per fingerprint;
* a reservation of the worst case (input bound and output cap at the model's integer prices) under
  a lock, refused past the limit;
* the exact integer price of the reported usage (cached input priced apart) and the settlement.

It has no sessions, no ledger interface, no loop policy beyond the identical count, no events, no
telemetry hook, no nested-layer detection, no degrade, no stream or raw-response handling: breaker's
figure above it is what those cost. The second table times the telemetry hook: ``telemetry=True``
(the default: OpenTelemetry's API with no SDK, so no tracer or meter provider installed) against
``telemetry=False``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, NamedTuple

from _util import header

import bench_overhead as bo



class MinimalGuard:
    """The irreducible work of a budget guard per chat call (see the module docstring)."""

    # gpt-4o-mini in nano-USD per million tokens: $0.15 input, $0.075 cached input, $0.60 output
    INPUT, CACHED, OUTPUT = 150_000_000, 75_000_000, 600_000_000
    OVERHEAD = 8  # per message, as breaker's bound

    def __init__(self, limit_nano: int) -> None:
        self.lock = threading.Lock()
        self.limit = limit_nano
        self.spent = self.reserved = 0
        self.head: list[Any] = []  # the conversation seen last, less its last message
        self.sums: list[tuple[int, int]] = [(0, 0)]  # (bytes, chained hash) of its first i messages
        self.seen: OrderedDict[int, int] = OrderedDict()

    def bound(self, messages: list[Any]) -> tuple[int, int]:
        head, sums = self.head, self.sums
        k = len(head)
        if len(messages) > k and messages[:k] == head:
            size, h = sums[k]
            tail = messages[k:]
        else:
            k, sums = 0, [(0, 0)]
            size, h = 0, 0
            tail = messages
        grown = []
        for m in tail:
            role, content = m["role"], m["content"]
            size += len(role) + len(content) if content.isascii() else len(content.encode()) + len(role)
            h = hash((h, role, content))
            grown.append((size, h))
        if len(tail) > 1:  # a new conversation or a grown one: remember it less its last message
            self.head, self.sums = messages[:-1], sums[: k + 1] + grown[:-1]
        return size + self.OVERHEAD * len(messages), h

    def __call__(self, send: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        model, cap = kwargs["model"], kwargs["max_tokens"]
        bound, h = self.bound(kwargs["messages"])
        fp = hash((model, h))
        seen = self.seen
        count = seen.get(fp, 0) + 1
        if count > 3:
            raise RuntimeError("identical request sent too often")
        seen[fp] = count
        if len(seen) > 256:
            seen.popitem(last=False)
        worst = -(-(bound * self.INPUT + cap * self.OUTPUT) // 1_000_000)
        with self.lock:
            if self.spent + self.reserved + worst > self.limit:
                raise RuntimeError("over budget")
            self.reserved += worst
        try:
            response = send(**kwargs)
        except BaseException:
            with self.lock:
                self.reserved -= worst
            raise
        u = response.usage
        cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details is not None else 0
        cost = -(-((u.prompt_tokens - cached) * self.INPUT + cached * self.CACHED
                   + u.completion_tokens * self.OUTPUT) // 1_000_000)
        with self.lock:
            self.reserved -= worst
            self.spent += cost
        return response


def added(fns: dict[str, Callable[[dict[str, Any]], Any]], bare: Callable[[dict[str, Any]], Any],
          make: Callable[[int], list[dict[str, Any]]], rounds: int, calls: int) -> dict[str, list[float]]:
    """µs per call each of ``fns`` adds to ``bare``, per round (batches interleaved, fresh requests each)."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    clock = time.thread_time  # CPU time of this thread: a neighbour's load does not count while descheduled
    gc.disable()
    try:
        for _ in range(rounds):
            batch = make(calls)
            t0 = clock()
            for kw in batch:
                bare(kw)
            base = (clock() - t0) / calls * 1e6
            for name, fn in fns.items():
                batch = make(calls)
                t0 = clock()
                for kw in batch:
                    fn(kw)
                out[name].append((clock() - t0) / calls * 1e6 - base)
            gc.collect()
    finally:
        gc.enable()
    return out


def chat_kwargs(n: int) -> list[dict[str, Any]]:
    return [{"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 256} for msgs in bo.requests(n)]


def spread(samples: list[float]) -> str:
    s = sorted(samples)
    return f"{statistics.median(s):8.2f}  [{s[len(s) // 10]:.2f} – {s[(len(s) * 9) // 10]:.2f}]"


class Harness(NamedTuple):
    """One guard and the ways to send a request's kwargs: to the ``stub`` alone (``bare``), or through
    breaker's sync driver around the same stub (``guarded``)."""

    guard: Any
    stub: Callable[..., Any]
    bare: Callable[[dict[str, Any]], Any]
    guarded: Callable[[dict[str, Any]], Any]


def harness(telemetry: bool = False) -> Harness:
    """The isolated harness (``bench_overhead.isolated_stub()``), shared with ``bench_requests.py``."""
    from breaker.providers.drivers import run_sync

    guard, adapter, stub, bare_stub = bo.isolated_stub(telemetry=telemetry)

    def bare(kw: dict[str, Any]) -> Any:
        return bare_stub(**kw)

    def guarded(kw: dict[str, Any]) -> Any:
        return run_sync(guard, adapter, stub, (), kw)

    return Harness(guard, bare_stub, bare, guarded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    header("The floor: breaker's own work per chat call beside a minimal guard")
    guard, bare_stub, bare, guarded = harness()
    traced, _, _, guarded_otel = harness(telemetry=True)  # OTel's API, no SDK installed
    floor = MinimalGuard(10**18)

    def minimal(kw: dict[str, Any]) -> Any:
        return floor(bare_stub, kw)

    with guard.session("floor"), traced.session("floor"):
        warm = {"minimal": minimal, "breaker": guarded, "breaker, telemetry on": guarded_otel}
        added(warm, bare, chat_kwargs, 2, 200)
        out = added(warm, bare, chat_kwargs, args.rounds, args.calls)
    low, mine, otel = (statistics.median(out[k]) for k in ("minimal", "breaker", "breaker, telemetry on"))
    print(f"{args.rounds} rounds x {args.calls} calls, 20-message chat request, stub instead of the SDK; "
          f"µs per call added to the bare stub, median [p10 – p90]")
    print(f"  {'minimal guard (the floor)':44s} {spread(out['minimal'])}")
    print(f"  {'breaker (telemetry=False)':44s} {spread(out['breaker'])}   {mine / low:5.1f}× the floor")
    print(f"  {'breaker (telemetry=True, no OTel SDK)':44s} {spread(out['breaker, telemetry on'])}   "
          f"{otel / low:5.1f}× the floor; telemetry adds {otel - mine:+.2f} µs")


if __name__ == "__main__":
    main()
