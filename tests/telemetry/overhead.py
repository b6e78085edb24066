"""Per-call cost of telemetry on the hot path, with no OpenTelemetry SDK installed.

Run: .venv/bin/python tests/telemetry/overhead.py

Not a test (never assert on timings). Prints, best of several interleaved runs
(CPU time of this process, since the machine may be shared):

* ``admit+settle`` per call with ``telemetry=False`` and ``telemetry=True``
  (OTel span mode, API only): the end-to-end figure, noisy under load;
* the telemetry hooks alone (``start`` + ``end`` on a real ticket), which is
  what telemetry adds and is far less sensitive to load.
"""

from __future__ import annotations

import sys
import time
import timeit

from breaker import Breaker, Budget, Usage
from breaker.adapter import Call
from breaker.telemetry import NoTelemetry, OTel

N = 20_000
CALL = Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=500)
USAGE = Usage(1000, 500)


def per_call(guard: Breaker) -> float:
    with guard.session("bench", feature="f", user="u"):
        seconds = timeit.timeit(lambda: guard.settle(guard.admit(CALL), USAGE), number=N, timer=time.process_time)
    return seconds / N * 1e6


def hooks(telemetry: object) -> float:
    guard = Breaker(loops=None, alerts=[], telemetry=False)
    with guard.session("hooks", feature="f"):
        ticket = guard.admit(CALL)
        guard.settle(ticket, USAGE)

    def one() -> None:
        ticket.span = telemetry.start(CALL, ticket.session)  # type: ignore[attr-defined]
        telemetry.end(ticket, USAGE, 12_345, None)  # type: ignore[attr-defined]

    return min(timeit.repeat(one, number=100_000, repeat=7, timer=time.process_time)) / 100_000 * 1e6


if __name__ == "__main__":
    guards = {flag: Breaker(budgets=[Budget(usd=1e9)], loops=None, alerts=[], telemetry=flag) for flag in (False, True)}
    best = {False: float("inf"), True: float("inf")}
    for _ in range(7):
        for flag, guard in guards.items():
            best[flag] = min(best[flag], per_call(guard))
    off, on = best[False], best[True]
    assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules), "an SDK got imported"
    print(f"admit+settle, telemetry off: {off:.2f} µs/call")
    print(f"admit+settle, telemetry on (OTel API, no SDK): {on:.2f} µs/call ({on - off:+.2f} µs)")
    quiet, otel = hooks(NoTelemetry()), hooks(OTel())
    print(f"telemetry hooks alone (start+end): NoTelemetry {quiet:.2f} µs, OTel without SDK {otel:.2f} µs "
          f"({otel - quiet:+.2f} µs per call)")
