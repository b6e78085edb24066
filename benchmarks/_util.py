"""Shared measuring helpers: medians and spread, and the header every row prints.

Figures that hold on a noisy shared machine are ratios measured in one run, so
every benchmark times its peer in the same process, interleaved.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable


def header(title: str) -> None:
    """Machine, Python and the command, before the rows."""
    cpu = platform.processor() or platform.machine()
    print(f"\n## {title}")
    print(f"machine: {platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} cores; "
          f"python {platform.python_version()} ({platform.python_implementation()})")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")


def per_call_us(fn: Callable[[], object], *, calls: int = 2000, repeats: int = 15) -> list[float]:
    """µs per call of ``fn`` for each of ``repeats`` batches of ``calls`` calls."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - start) / calls * 1e6)
    return out


def interleaved(fns: dict[str, Callable[[], object]], *, calls: int = 2000, repeats: int = 15) -> dict[str, list[float]]:
    """Like ``per_call_us`` for several functions, batches interleaved so load hits them alike."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name].extend(per_call_us(fn, calls=calls, repeats=1))
    return out


def summary(samples: list[float]) -> str:
    """``median [p10 – p90]``."""
    qs = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [samples[0]] * 9
    return f"{statistics.median(samples):9.2f}  [{qs[0]:.2f} – {qs[-1]:.2f}]"


def row(name: str, samples: list[float], unit: str = "µs/call", ratio_to: list[float] | None = None) -> None:
    extra = ""
    if ratio_to is not None:
        extra = f"   {statistics.median(ratio_to) / statistics.median(samples):6.1f}× faster"
    print(f"  {name:42s} {summary(samples)} {unit}{extra}")
