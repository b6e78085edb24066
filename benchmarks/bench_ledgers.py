"""Ledger benchmark: throughput of admit+settle, and the overshoot race, for Memory, SQLite and Redis.

    python benchmarks/bench_ledgers.py [--redis-url URL] [--repeats 5] [--quick]

Without ``--redis-url`` it starts its own ``redis-server`` on a free loopback
port (no persistence) and stops it at the end. SQLite writes to a temporary
directory (WAL mode, the real file system).

1. Throughput: calls per second and microseconds per ``admit`` + ``settle``
   through the engine (two budgets per call: a session budget and a global
   one), from 1 thread and from 8 threads.
2. The overshoot race: 64 threads, then 1,000 asyncio tasks, spend against one
   global budget of $0.05 until it trips. Reported: overshoot (settled spend
   past the limit; must be 0), the money left when the budget tripped (the
   "refused too early" margin; at most one call's smallest reservation), and
   the time the race took.

3. The floor (issue 22): admit+settle beside what the same store costs at the least, measured in the
   same run, interleaved, single thread. Redis: two bare ``EVALSHA`` round trips of ``return 1`` per
   call, through redis-py's command path on the ledger's own client and pool (the peer issue 22 names),
   and the same two on the ledger's own path (``ledgers.redis_wire``, which its scripts take since it
   left redis-py's command path: the stricter floor, in a second ratio column); SQLite: two bare transactions (``BEGIN IMMEDIATE``,
   ``UPDATE`` of one row, ``COMMIT``) per call on the same file and mode. The ratio is bare / breaker
   (100% would be the floor itself), through the engine and for the ledger alone (``reserve`` +
   ``settle`` with the counters, limits and call record the engine passes). Also Redis's own time per
   breaker script (``INFO commandstats``, ``usec_per_call`` of ``evalsha``) against the bare script's, and
   against scripts that run the same Redis commands with constant arguments and no Lua logic ("its
   commands"): the part of a breaker script that is its commands' own work, and the ratio it would reach
   if the rest cost nothing.

Figures are the median over ``--repeats`` runs, with the spread (min..max). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from breaker import Breaker, BudgetExceeded, Budget, Usage  # noqa: E402
from breaker.adapter import Call
from breaker.ledgers import Memory  # noqa: E402
from breaker.ledgers.base import record_dict  # noqa: E402
from breaker.pricing import NANO  # noqa: E402

MODEL, INPUT, CAP = "gpt-4o-mini", 1000, 500
RACE_LIMIT_USD = 0.05


# ---------------------------------------------------------------- environment
def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} logical CPUs"


class RedisProcess:
    """A throwaway redis-server on a free port."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def ledger_factories(redis_url: str, tmp: str) -> dict[str, Callable[[], Any]]:
    from breaker.ledgers.redis import Redis
    from breaker.ledgers.sqlite import SQLite

    n = iter(range(10**9))
    return {
        "Memory": Memory,
        "SQLite": lambda: SQLite(os.path.join(tmp, f"bench-{next(n)}.sqlite")),
        "Redis": lambda: Redis(redis_url, prefix=f"bench{next(n)}:"),
    }


def call() -> Call:
    return Call(MODEL, "openai", input_tokens=INPUT, max_output_tokens=CAP)


# ---------------------------------------------------------------- throughput
def throughput(make: Callable[[], Any], threads: int, calls: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds per admit+settle pair, ``calls`` spread over ``threads`` threads.

    CPU time is reported too because on a shared, loaded machine wall time mostly
    measures waiting for a core; Redis's own CPU is not in it (see ``redis_usec``).
    """
    guard = Breaker(budgets=[Budget(usd=10**6), Budget(usd=10**6, per="global")], ledger=make(), alerts=[],
                    loops=None, telemetry=False)
    per = calls // threads
    start = threading.Barrier(threads + 1)
    usage = Usage(INPUT, 200)
    with guard.session("warm-up"):  # prices compiled, scripts loaded, connections open
        for _ in range(50):
            guard.settle(guard.admit(call()), usage)

    def work(n: int) -> None:
        with guard.session(f"bench-{n}"):
            start.wait()
            for _ in range(per):
                guard.settle(guard.admit(call()), usage)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for t in pool:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    guard.ledger.close()
    return elapsed / (per * threads), cpu / (per * threads)


# ---------------------------------------------------------------- the race
def _race_guard(make: Callable[[], Any]) -> Breaker:
    return Breaker(budgets=[Budget(usd=RACE_LIMIT_USD, per="global")], ledger=make(), alerts=[], loops=None,
                   telemetry=False, reservation_wait=30)


def race_threads(make: Callable[[], Any], threads: int = 64) -> tuple[int, int, float]:
    guard = _race_guard(make)
    costs: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        with guard.session(f"racer-{n}"):
            race(n)

    def race(n: int) -> None:
        start.wait()
        i = 0
        while True:
            try:
                ticket = guard.admit(call())
            except BudgetExceeded as e:
                if e.sticky:
                    return
                continue
            i += 1
            out = min(ticket.patch.max_output_tokens or CAP, (n * 37 + i * 101) % (CAP + 1))
            cost = guard.settle(ticket, Usage(INPUT - (i % 200), out))
            with lock:
                costs.append(cost)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    return _race_result(guard, costs, elapsed)


def race_tasks(make: Callable[[], Any], tasks: int = 1000) -> tuple[int, int, float]:
    guard = _race_guard(make)
    costs: list[int] = []

    async def work(n: int) -> None:
        with guard.session(f"racer-{n}"):
            await race(n)

    async def race(n: int) -> None:
        i = 0
        while True:
            try:
                ticket = await guard.admit_async(call())
            except BudgetExceeded as e:
                if e.sticky:
                    return
                continue
            i += 1
            await asyncio.sleep(0)  # the request: let every other task run
            out = min(ticket.patch.max_output_tokens or CAP, (n * 37 + i * 101) % (CAP + 1))
            costs.append(await guard.settle_async(ticket, Usage(INPUT - (i % 200), out)))

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(work(n) for n in range(tasks)))
        return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    return _race_result(guard, costs, elapsed)


def _race_result(guard: Breaker, costs: list[int], elapsed: float) -> tuple[int, int, float]:
    limit = round(RACE_LIMIT_USD * NANO)
    spent = round(guard.spent("global").usd * NANO)
    if spent != sum(costs):
        raise AssertionError(f"ledger says {spent} nano-USD, the calls cost {sum(costs)}")
    guard.ledger.close()
    return max(0, spent - limit), limit - max(spent, 0), elapsed


# ---------------------------------------------------------------- the floor
def _engine_pairs(make: Callable[[], Any]) -> tuple[Breaker, Callable[[int], None]]:
    """A guard on a fresh ledger and ``run(n)``: ``n`` admit+settle pairs through the engine, one session."""
    guard = Breaker(budgets=[Budget(usd=10**6), Budget(usd=10**6, per="global")], ledger=make(), alerts=[],
                    loops=None, telemetry=False)
    usage = Usage(INPUT, 200)

    def run(n: int) -> None:
        with guard.session("floor"):
            for _ in range(n):
                guard.settle(guard.admit(call()), usage)

    return guard, run


def _ledger_pairs(guard: Breaker) -> tuple[Callable[[int], None], Any]:
    """``run(n)``: ``n`` reserve+settle pairs on ``guard``'s store itself, with what the engine passes it
    (its counters, limits, worst case and call record: captured from one call through the engine); and
    that call record."""
    store = guard.ledger.inner
    seen: dict[str, Any] = {}

    class Spy:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def reserve(self, ask: Any, now: float, **kw: Any) -> Any:
            seen["ask"] = ask
            return store.reserve(ask, now)

        def settle(self, handle: Any, counters: Any, limits: Any, actual: Any, now: float, record: Any = None,
                   **kw: Any) -> Any:
            seen["settle"] = (counters, limits, actual, record)
            return store.settle(handle, counters, limits, actual, now, record)

    guard.ledger.inner = Spy()
    with guard.session("floor-ledger"):
        guard.settle(guard.admit(call()), Usage(INPUT, 200))
    guard.ledger.inner = store
    ask, (counters, limits, actual, record) = seen["ask"], seen["settle"]
    clock = time.time

    def run(n: int) -> None:
        for _ in range(n):
            grant = store.reserve(ask, clock())
            store.settle(grant.handle, counters, limits, actual, clock(), record)

    return run, record


def _bare_redis(client: Any) -> Callable[[int], None]:
    sha = client.script_load("return 1")

    def run(n: int) -> None:
        for _ in range(n):
            client.evalsha(sha, 0)
            client.evalsha(sha, 0)

    return run


def _bare_wire(client: Any) -> Callable[[int], None]:
    """Two ``EVALSHA`` of ``return 1`` on the path the ledger's own scripts take (``ledgers.redis_wire``:
    packed by the ledger, on a kept connection of the same pool): the floor of that path."""
    from breaker.ledgers.redis_wire import Wire

    one = client.register_script("return 1")
    wire = Wire(client.connection_pool, lambda script: client.script_load(script.script))

    def run(n: int) -> None:
        for _ in range(n):
            wire.evalsha(one, [], [])
            wire.evalsha(one, [], [])

    return run


# The Redis commands one admit+settle runs in the breaker's scripts (two budgets, lifetime counters), with
# constant arguments and no Lua logic: what the scripts' commands cost the server by themselves.
_COMMANDS_RESERVE = """
local f = {'s0', 's1', 's2', 'r0', 'r1', 'r2', 'g0', 'g1', 'g2', 't0', 't1', 't2', 'x'}
redis.call('GET', KEYS[5])
redis.call('HMGET', KEYS[1], unpack(f))
redis.call('HMGET', KEYS[3], unpack(f))
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[2])
redis.call('HSET', KEYS[1], 'r0', '450000', 'r1', '1500', 'r2', '1', 'x', ARGV[1])
redis.call('HSET', KEYS[3], 'r0', '450000', 'r1', '1500', 'r2', '1', 'x', ARGV[1])
return 1
"""
_COMMANDS_SETTLE = """
local f = {'s0', 's1', 's2', 'r0', 'r1', 'r2', 'g0', 'g1', 'g2', 't0', 't1', 't2', 'x'}
redis.call('GET', KEYS[5])
redis.call('SET', KEYS[6], '1', 'NX', 'PX', '604800000')
redis.call('HMGET', KEYS[1], unpack(f))
redis.call('HMGET', KEYS[3], unpack(f))
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('HSET', KEYS[1], 's0', '270000', 's1', '1200', 's2', '1', 'r0', '0', 'r1', '0', 'r2', '0')
redis.call('HSET', KEYS[3], 's0', '270000', 's1', '1200', 's2', '1', 'r0', '0', 'r1', '0', 'r2', '0')
redis.call('XADD', KEYS[7], 'MAXLEN', '~', '100000', '*', 'r', ARGV[3])
return 1
"""


def _commands_redis(client: Any, record: str) -> Callable[[int], None]:
    """Two scripts per call running the breaker scripts' commands (``_COMMANDS_*``) on keys of their own."""
    reserve, settle = client.register_script(_COMMANDS_RESERVE), client.register_script(_COMMANDS_SETTLE)
    p = "benchcmd:{benchcmd}:"
    keys = [f"{p}c:s", f"{p}h:s", f"{p}c:g", f"{p}h:g", f"{p}gen"]
    client.set(keys[4], "g")

    def run(n: int) -> None:
        for _ in range(n):
            member, at = f"{os.urandom(12).hex()}|450000|1500|1", repr(time.time() + 600)
            reserve(keys=keys, args=[at, member])
            settle(keys=keys + [f"{p}op:{member[:24]}", f"{p}records"], args=[at, member, record])

    return run


def _bare_sqlite(path: str) -> Callable[[int], None]:
    """Two transactions of one UPDATE each per call, on the ledger's own file, in the ledger's mode."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_floor(k INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    conn.execute("INSERT OR IGNORE INTO bench_floor VALUES (1, 0)")

    def run(n: int) -> None:
        for _ in range(2 * n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE bench_floor SET v = v + 1 WHERE k = 1")
            conn.execute("COMMIT")

    return run


def _timed(run: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    run(n)
    return (time.perf_counter() - t0) / n


def floor(name: str, make: Callable[[], Any], n: int, repeats: int, rclient: Any = None) -> None:
    """The floor rows of one store: bare, engine, ledger alone, interleaved ``repeats`` times."""
    guard, engine = _engine_pairs(make)
    ledger, record = _ledger_pairs(guard)
    store = guard.ledger.inner
    bare = _bare_redis(store.client) if name == "Redis" else _bare_sqlite(store.path)
    rows = [("bare", bare), ("engine", engine), ("ledger", ledger)]
    if name == "Redis":
        rows.insert(1, ("wire", _bare_wire(store.client)))
        rows.append(("commands", _commands_redis(store.client, json.dumps(record_dict(record), separators=(",", ":")))))
    runs: dict[str, list[float]] = {label: [] for label, _ in rows}
    server: dict[str, list[float]] = {label: [] for label, _ in rows}
    for _label, fn in rows:  # warm: connections open, scripts loaded, statements prepared
        fn(max(n // 20, 20))
    for _ in range(repeats):
        for label, fn in rows:
            if rclient is not None:
                rclient.config_resetstat()
            runs[label].append(_timed(fn, n))
            if rclient is not None:
                server[label].append(rclient.info("commandstats").get("cmdstat_evalsha", {}).get("usec_per_call", 0))
    guard.ledger.close()
    floor_us = statistics.median(runs["bare"]) * 1e6
    wire_us = statistics.median(runs["wire"]) * 1e6 if "wire" in runs else None
    print(f"  {name:8} {'two bare ' + ('EVALSHA' if name == 'Redis' else 'transactions'):>26} "
          f"{spread([w * 1e6 for w in runs['bare']], '{:,.1f}'):>26} {'100%':>8}"
          + (f" {wire_us / floor_us:>14.0%}" if wire_us else ""))
    for label, what in (("wire", "two bare, ledger's path"), ("engine", "admit+settle (engine)"),
                        ("ledger", "reserve+settle (ledger)"), ("commands", "its commands, no Lua logic")):
        if label in runs:
            us = [w * 1e6 for w in runs[label]]
            m = statistics.median(us)
            print(f"  {'':8} {what:>26} {spread(us, '{:,.1f}'):>26} {floor_us / m:>8.0%}"
                  + (f" {wire_us / m:>14.0%}" if wire_us else ""))
    if rclient is not None:
        print(f"  {'':8} Redis's own time per script (usec_per_call of evalsha), median (min): bare "
              f"{statistics.median(server['bare']):.1f} ({min(server['bare']):.1f}) us, breaker's "
              f"{statistics.median(server['ledger']):.1f} ({min(server['ledger']):.1f}) us (reserve and settle alike), "
              f"its commands alone {statistics.median(server['commands']):.1f} ({min(server['commands']):.1f}) us")


# ---------------------------------------------------------------- report
def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-url", help="use this Redis instead of starting one")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer calls per run (a smoke test)")
    args = ap.parse_args()

    import redis

    print(f"machine: {machine()}")
    print(f"python:  {sys.version.split()[0]} ({platform.python_implementation()}), sqlite {__import__('sqlite3').sqlite_version}, "
          f"redis-py {redis.__version__}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    server = None if args.redis_url else RedisProcess()
    redis_url = args.redis_url or server.url  # type: ignore[union-attr]
    info = redis.Redis.from_url(redis_url).info("server")
    print(f"redis:   {info.get('redis_version')} at {redis_url} (loopback)")
    print(f"figures: median (min..max) over {args.repeats} runs\n")
    tmp = tempfile.mkdtemp(prefix="bench-ledgers-")
    try:
        makers = ledger_factories(redis_url, tmp)
        sizes = {"Memory": 20_000, "SQLite": 4_000, "Redis": 4_000}
        print("throughput: admit + settle through the engine (2 budgets per call)")
        print(f"  {'ledger':8} {'threads':>7} {'calls/s':>24} {'us per admit+settle (wall)':>28} "
              f"{'us CPU here':>24}")
        rclient = redis.Redis.from_url(redis_url)
        for name, make in makers.items():
            for threads in (1, 8):
                n = sizes[name] // (10 if args.quick else 1)
                if name == "Redis":
                    rclient.config_resetstat()
                runs = [throughput(make, threads, n) for _ in range(args.repeats)]
                print(f"  {name:8} {threads:>7} {spread([1 / w for w, _ in runs], '{:,.0f}'):>24} "
                      f"{spread([w * 1e6 for w, _ in runs], '{:,.1f}'):>28} "
                      f"{spread([c * 1e6 for _, c in runs], '{:,.1f}'):>24}")
                if name == "Redis":
                    stats = rclient.info("commandstats").get("cmdstat_evalsha", {})
                    print(f"  {'':8} {'':>7} Redis server CPU per script (reserve or settle): "
                          f"{stats.get('usec_per_call', 0):.1f} us")
        print("\nthe floor: per call, single thread, interleaved with its peer (ratio: bare / breaker; "
              "targets: Redis >= 60%, SQLite >= 40%)")
        print(f"  {'ledger':8} {'':>26} {'us per call (wall)':>26} {'ratio':>8} {'(Redis) ratio to':>14}")
        print(f"  {'':8} {'':>26} {'':>26} {'':>8} {'its own path':>14}")
        for name in ("Redis", "SQLite"):
            floor(name, makers[name], 400 if args.quick else 3_000, max(args.repeats, 3),
                  rclient if name == "Redis" else None)
        print(f"\nthe race: spend a ${RACE_LIMIT_USD} global budget until it trips "
              f"({MODEL}, {INPUT} input tokens, max_tokens {CAP})")
        print(f"  {'ledger':8} {'racers':>14} {'overshoot $':>12} {'left when tripped $':>30} {'time s':>22}")
        for name, make in makers.items():
            for label, race in (("64 threads", race_threads), ("1000 tasks", race_tasks)):
                runs = [race(make) for _ in range(args.repeats)]
                over = [r[0] / NANO for r in runs]
                left = [r[1] / NANO for r in runs]
                secs = [r[2] for r in runs]
                print(f"  {name:8} {label:>14} {max(over):>12.6f} {spread(left, '{:.6f}'):>30} "
                      f"{spread(secs, '{:.3f}'):>22}")
        guard = Breaker(alerts=[], loops=None, telemetry=False)
        fixed, per = guard.prices.lookup(MODEL, "openai").worst_case(INPUT)
        smallest = (fixed + per * guard.min_output_tokens) / NANO
        print(f"\n  a call's smallest reservation (input bound + {guard.min_output_tokens} output tokens): "
              f"${smallest:.6f}; 'left when tripped' stays under it when nothing is refused early")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
