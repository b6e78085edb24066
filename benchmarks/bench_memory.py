"""Memory per live session with the Memory ledger, and after idle sessions expire.

Run: .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import gc
import tracemalloc

from _util import header

from breaker import Breaker, Budget, Usage
from breaker.adapter import Call
from breaker.ledgers import Memory


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def main() -> None:
    header("Memory per session (tracemalloc, Memory ledger, 2 budgets)")
    for n in (10_000, 100_000):
        clock = Clock()
        guard = Breaker(
            budgets=[Budget(usd=5), Budget(usd=100, per="user", window="1h")],
            ledger=Memory(idle_ttl="1h"), alerts=[], telemetry=False, clock=clock, session_ttl="1h",
        )
        call = Call("gpt-4o-mini", "openai", input_tokens=500, max_output_tokens=200, fingerprint=1)
        with guard.session("warm-up", user="u0"):
            guard.settle(guard.admit(call), Usage(400, 100))
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            with guard.session(f"s{i}", user=f"u{i % 1000}"):
                guard.settle(guard.admit(call), Usage(400, 100))
        gc.collect()
        live = tracemalloc.get_traced_memory()[0]
        clock.now += 2 * 3600 + 60  # past every idle ttl
        guard.sweep()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        print(f"  {n:>7,} sessions: {(live - base) / n:8.0f} bytes/session live; "
              f"after expiry {after - base:+,} bytes vs baseline ({(after - base) / max(live - base, 1):.1%} of peak)")


if __name__ == "__main__":
    main()
