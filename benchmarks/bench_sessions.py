"""Many live sessions: the latency of a new session's open + call + close, memory per session, and a soak.

    .venv/bin/python benchmarks/bench_sessions.py                        (100k live sessions, a 200k-call soak)
    .venv/bin/python benchmarks/bench_sessions.py --sessions 1000000 --soak-calls 1000000 --soak-sessions 100000

No SDK: each call is ``guard.admit`` + ``guard.settle`` of a ``Call`` (as ``bench_memory.py``), with the
default loop detection, a Memory ledger and two budgets (a session's and a user's, per hour). The
guard's clock is a fake one that moves 1 ms per call while sessions are built, so ``--sessions``
sessions stay live (within ``session_ttl``, 1 h), and spreads the soak over 3 hours: many of
``IdenticalRequests``' 5-minute windows, and past the user budget's 1-hour window (whose buckets the
ledger keeps for that hour), each session called more often than ``session_ttl``.

1. Live sessions: ``--sessions`` sessions are opened, called once and closed; then ``--probe`` more are,
   each timed alone: the p50 / p99 / p99.9 / p99.99 / max of this thread's CPU time per open + call + close
   (``time.thread_time``: what the call costs, without the moments the machine gave the core to a
   neighbour), and the wall-clock maximum beside it. Memory per live session is the growth of the
   process's resident set (``/proc/self/statm``) over the build, divided by the sessions.
2. Soak: ``--soak-calls`` calls over ``--soak-sessions`` sessions in turn (each a new request: a
   growing history's fingerprint), the resident set and the live Python objects
   (``sys.getallocatedblocks()``, after a collection) read at every tenth of the way: flat memory
   means the second half of the soak (past the first hour) adds (next to) nothing. (The resident set also keeps what the
   allocator holds after a peak; the object count does not.)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

from _util import header

from breaker import Breaker, Budget, Usage
from breaker.adapter import Call
from breaker.ledgers import Memory

PAGE = os.sysconf("SC_PAGE_SIZE")


class Clock:
    def __init__(self, step: float = 0.001) -> None:
        self.now = 1_800_000_000.0
        self.step = step  # seconds per call

    def __call__(self) -> float:
        return self.now


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def guard_with(clock: Clock) -> Breaker:
    return Breaker(
        budgets=[Budget(usd=5), Budget(usd=100, per="user", window="1h")],
        ledger=Memory(idle_ttl="1h"), alerts=[], telemetry=False, clock=clock, session_ttl="1h",
    )


def one(guard: Breaker, clock: Clock, sid: str, user: str, fingerprint: int) -> None:
    clock.now += clock.step
    call = Call("gpt-4o-mini", "openai", input_tokens=500, max_output_tokens=200, fingerprint=fingerprint)
    with guard.session(sid, user=user):
        guard.settle(guard.admit(call), Usage(400, 100))


def percentile(sorted_samples: list[float], q: float) -> float:
    return sorted_samples[min(len(sorted_samples) - 1, int(len(sorted_samples) * q))]


def live(n: int, probe: int) -> None:
    clock = Clock()
    guard = guard_with(clock)
    one(guard, clock, "warm-up", "u0", 0)
    gc.collect()
    base = rss()
    for i in range(n):
        one(guard, clock, f"s{i}", f"u{i % 1000}", i + 1)
    gc.collect()
    grown = rss() - base
    cpu, wall = [], []
    tclock, pclock = time.thread_time, time.perf_counter
    for i in range(n, n + probe):
        t0, w0 = tclock(), pclock()
        one(guard, clock, f"s{i}", f"u{i % 1000}", i + 1)
        cpu.append(tclock() - t0)
        wall.append(pclock() - w0)
    cpu.sort()
    ms = 1e3
    print(f"  {n:>9,} live sessions: {grown / n:7,.0f} bytes/session (RSS); a new session's open + call + close, "
          f"CPU ms: p50 {percentile(cpu, .5) * ms:.3f}, p99 {percentile(cpu, .99) * ms:.3f}, "
          f"p99.9 {percentile(cpu, .999) * ms:.3f}, p99.99 {percentile(cpu, .9999) * ms:.3f}, max {cpu[-1] * ms:.2f} "
          f"(wall max {max(wall) * ms:.2f}; {probe:,} timed)")


def soak(calls: int, sessions: int) -> None:
    clock = Clock(3 * 3600 / calls)  # the soak spans 3 hours of the guard's clock, whatever its size
    guard = guard_with(clock)
    gc.collect()
    base, blocks = rss(), sys.getallocatedblocks()
    marks, objects = [], []
    step = max(calls // 10, 1)
    for i in range(calls):
        s = i % sessions
        one(guard, clock, f"s{s}", f"u{s % 1000}", i + 1)
        if (i + 1) % step == 0:
            gc.collect()
            marks.append(rss() - base)
            objects.append(sys.getallocatedblocks() - blocks)
    mib = 1 / 2**20
    half, live = marks[len(marks) // 2 - 1], objects[len(objects) // 2 - 1]
    print(f"  soak, {calls:,} calls over {sessions:,} sessions (3 h of the guard's clock, each session "
          f"called every {clock.step * sessions:.0f} s), at each tenth of the way:\n"
          f"    RSS growth, MiB: {', '.join(f'{m * mib:.0f}' for m in marks)}; second half "
          f"{(marks[-1] - half) * mib:+.1f} MiB ({(marks[-1] - half) / max(half, 1):+.1%})\n"
          f"    live Python objects (allocated blocks), thousands: {', '.join(f'{o / 1e3:.0f}' for o in objects)}; "
          f"second half {(objects[-1] - live) / 1e3:+.0f}k ({(objects[-1] - live) / max(live, 1):+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--probe", type=int, default=70_000, help="sessions timed (70 s of the guard's clock: "
                        "the Memory ledger's own sweep of idle counters, every minute, falls within)")
    parser.add_argument("--soak-calls", type=int, default=200_000)
    parser.add_argument("--soak-sessions", type=int, default=20_000)
    args = parser.parse_args()
    header("Many live sessions (Memory ledger, 2 budgets, loop detection on; no SDK)")
    live(args.sessions, args.probe)
    soak(args.soak_calls, args.soak_sessions)


if __name__ == "__main__":
    main()
