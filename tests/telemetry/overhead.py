"""Per-call cost of telemetry on the hot path, with no OpenTelemetry SDK installed.

Run: .venv/bin/python tests/telemetry/overhead.py
Not a test (never assert on timings): prints admit+settle µs per call with
telemetry off (NoTelemetry) and on (OTel span mode, API only), interleaved, best of 7 runs.
"""

from __future__ import annotations

import time

import breaker
from breaker import Breaker, Budget, Call, LoopPolicy, Usage

N = 20_000


def per_call(guard: Breaker) -> float:
    call = Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=500)
    usage = Usage(1000, 500)
    with guard.session("bench", feature="f", user="u"):
        t0 = time.perf_counter()
        for _ in range(N):
            guard.settle(guard.admit(call), usage)
        return (time.perf_counter() - t0) / N * 1e6


if __name__ == "__main__":
    import sys

    assert "opentelemetry.sdk" not in sys.modules
    guards = {flag: Breaker(budgets=[Budget(usd=1e9)], loops=None, alerts=[], telemetry=flag) for flag in (False, True)}
    best = {False: float("inf"), True: float("inf")}
    for _ in range(7):  # interleaved, best of 7: the machine is shared
        for flag, guard in guards.items():
            best[flag] = min(best[flag], per_call(guard))
    off, on = best[False], best[True]
    print(f"admit+settle, telemetry off: {off:.2f} µs/call")
    print(f"admit+settle, telemetry on (OTel API, no SDK): {on:.2f} µs/call (+{on - off:.2f} µs)")
    _ = breaker, LoopPolicy
