"""The guard's own work per chat call in CPU instructions (callgrind): a figure load does not change.

    .venv/bin/python benchmarks/bench_instructions.py          (needs valgrind; about 6 minutes)

Wall-clock figures on a shared VM move by 2x with the neighbours; instruction counts repeat to
about 1%. The process runs twice under ``valgrind --tool=callgrind``: once with N isolated chat calls
(a 20-message request through ``run_sync`` and the HTTP-layer patch, as in ``bench_overhead.py``'s
isolated row) and once with none; the difference over N is the work of one call. Not part of
``make bench`` (too slow); run it before and after a change to the hot path.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
N = 1000


def calls(n: int) -> None:
    from breaker.providers.drivers import run_sync

    sys.path.insert(0, str(HERE))
    import bench_overhead as bo

    guard, adapter, stub, _ = bo.isolated_stub()
    warm, batch = bo.requests(200), bo.requests(N)  # built in both runs: only the calls differ
    with guard.session("instructions"):
        for msgs in warm:
            run_sync(guard, adapter, stub, (), {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 256})
        for msgs in batch[:n]:
            run_sync(guard, adapter, stub, (), {"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 256})


def collected(n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--calls", str(n)],
        capture_output=True, text=True, check=True,
    ).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))  # type: ignore[union-attr]


def main() -> int:
    if "--calls" in sys.argv:
        calls(int(sys.argv[sys.argv.index("--calls") + 1]))
        return 0
    base, full = collected(0), collected(N)
    print(f"breaker's own work per isolated chat call: {(full - base) / N:,.0f} instructions "
          f"(callgrind, {N} calls, {sys.executable})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
