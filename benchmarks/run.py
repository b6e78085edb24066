"""Run every benchmark, one after another, in fresh processes.

    make bench            (or: .venv/bin/python benchmarks/run.py [--quick])

Each script prints its machine, Python, command, medians and spread, beside
its peer measured in the same process. Timings are never test assertions:
the machines are shared and noisy, so read the ratios.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("bench_pricing.py", []),
    ("bench_engine.py", []),
    ("bench_overhead.py", []),
    ("bench_floor.py", []),
    ("bench_requests.py", []),
    ("bench_memory.py", []),
    ("bench_sessions.py", ["--sessions", "1000000", "--soak-calls", "1000000", "--soak-sessions", "100000"]),  # issue 22's sizes
    ("bench_startup.py", []),
    ("bench_ledgers.py", ["--repeats", "3"]),
    ("bench_utilization.py", []),
    ("bench_utilization_langchain.py", []),
]
QUICK = {"bench_overhead.py": ["--rounds", "5"], "bench_ledgers.py": ["--quick", "--repeats", "1"],
         "bench_floor.py": ["--rounds", "5"], "bench_requests.py": ["--rounds", "3"],
         "bench_sessions.py": ["--sessions", "20000", "--probe", "5000", "--soak-calls", "50000", "--soak-sessions", "5000"],
         "bench_startup.py": ["--runs", "5"]}


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for script, args in SCRIPTS:
        if quick and script in QUICK:
            args = QUICK[script]
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *args], cwd=HERE)
        print(f"  ({script}: {time.monotonic() - start:.0f}s, exit {code})", flush=True)
        if code:
            failed.append(script)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
