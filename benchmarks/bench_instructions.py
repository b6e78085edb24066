"""The guard's own work per chat call in CPU instructions (callgrind): a figure load does not change.

    .venv/bin/python benchmarks/bench_instructions.py [--scenario chat]      (needs valgrind; minutes)

Wall-clock figures on a shared VM move by 2x with the neighbours; instruction counts repeat to
about 1%. The process runs twice under ``valgrind --tool=callgrind``: once with N calls and once
with none (both build the same requests); the difference over N is the work of one call. The
cyclic garbage collector is off while they run: a collection of the whole heap (millions of
instructions) would otherwise land in one run or the other by chance. Not part
of ``make bench`` (too slow); run it before and after a change to the hot path. Scenarios:

* ``chat`` (default): isolated chat calls (a 20-message request through ``run_sync`` and the
  HTTP-layer patch, as in ``bench_overhead.py``'s isolated row), ``telemetry=False``;
* ``telemetry``: the same with ``telemetry=True`` (OpenTelemetry's API, no SDK installed);
* ``floor``: the same requests through ``bench_floor.MinimalGuard`` (the floor comparison);
* ``bare``: the stub alone (subtract it from the others: what the guard adds);
* ``tools20``: the chat call with 20 tool definitions rebuilt per call (``bench_requests.py``'s).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
N = 5000
SCENARIOS = ("chat", "telemetry", "floor", "bare", "tools20")


def calls(scenario: str, n: int) -> None:
    gc.collect()
    gc.disable()  # a collection of the whole heap lands in one run or the other: millions of instructions
    from breaker.providers.drivers import run_sync

    sys.path.insert(0, str(HERE))
    import bench_floor
    import bench_overhead as bo
    import bench_requests

    guard, adapter, stub, bare_stub = bo.isolated_stub(telemetry=scenario == "telemetry")
    make = (bench_requests.tools_batch([bench_requests.tool(i) for i in range(20)], "rebuilt")
            if scenario == "tools20" else bench_floor.chat_kwargs)
    warm, batch = make(200), make(N)  # built in both runs: only the calls differ
    if scenario == "floor":
        floor = bench_floor.MinimalGuard(10**18)
        for kw in warm + batch[:n]:
            floor(bare_stub, kw)
        return
    if scenario == "bare":
        for kw in warm + batch[:n]:
            bare_stub(**kw)
        return
    with guard.session("instructions"):
        for kw in warm:
            run_sync(guard, adapter, stub, (), kw)
        for kw in batch[:n]:
            run_sync(guard, adapter, stub, (), kw)


def collected(scenario: str, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--scenario", scenario, "--calls", str(n)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts in both runs: imports cost the same
    ).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, default="chat")
    parser.add_argument("--calls", type=int, default=None, help=argparse.SUPPRESS)  # the runs under valgrind
    args = parser.parse_args()
    if args.calls is not None:
        calls(args.scenario, args.calls)
        return 0
    base, full = collected(args.scenario, 0), collected(args.scenario, N)
    what = {"chat": "breaker's own work per isolated chat call", "telemetry": "the same, telemetry=True (no OTel SDK)",
            "floor": "the minimal guard (bench_floor.py) per chat call, with the stub",
            "bare": "the bare stub per chat call", "tools20": "breaker per chat call with 20 tools rebuilt per call"}
    print(f"{what[args.scenario]}: {(full - base) / N:,.0f} instructions (callgrind, {N} calls, {sys.executable})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
