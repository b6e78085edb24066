"""Worker processes for the multi-process tests (importable: ``spawn`` starts fresh interpreters)."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

MODEL, INPUT, CAP = "gpt-4o-mini", 1000, 500


def make_ledger(kind: str, where: str, journal: str) -> Any:
    from breaker.ledgers.resilient import Resilient

    if kind == "sqlite":
        from breaker.ledgers.sqlite import SQLite

        inner: Any = SQLite(where)
    else:
        from breaker.ledgers.redis import Redis

        inner = Redis(where, prefix="mp:", timeout=0.5)
    return Resilient(inner, journal=journal, retry_every=0.05)


def spend(kind: str, where: str, journal: str, limit_usd: float, threads: int, out: str, seed: int,
          deadline_s: float = 40.0) -> None:
    """Spend against one global budget from ``threads`` threads until the budget trips.

    Writes ``{"costs": [...], "refused": {...}}`` to ``out``: the nano-USD cost of every call
    this process settled, so the parent can check the ledger's total against them.
    """
    from breaker import Breaker, BudgetExceeded, Budget, Usage
    from breaker.adapter import Call

    guard = Breaker(budgets=[Budget(usd=limit_usd, per="global")], ledger=make_ledger(kind, where, journal),
                    alerts=[], loops=None, telemetry=False, reservation_wait=10)
    costs: list[int] = []
    refused: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + deadline_s

    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            spend_loop(n)
        except BaseException as e:  # a thread's death must fail the test, not just print
            with lock:
                errors.append(f"{type(e).__name__}: {e}")

    def spend_loop(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < stop:
            try:
                ticket = guard.admit(Call(MODEL, "openai", input_tokens=INPUT, max_output_tokens=CAP))
            except BudgetExceeded as e:
                with lock:
                    refused[e.reason] = refused.get(e.reason, 0) + 1
                if e.sticky:
                    return  # the budget is spent: done
                time.sleep(0.02)  # the store is down or busy: try again shortly
                continue
            time.sleep(rng.uniform(0.0, 0.004))  # the "request"
            granted = ticket.patch.max_output_tokens or CAP
            cost = guard.settle(ticket, Usage(rng.randint(INPUT // 2, INPUT), rng.randint(0, granted)))
            with lock:
                costs.append(cost)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    from breaker import LedgerError

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # hand every journaled settlement to the store
        try:
            guard.spent("global")  # a read probes the store and replays the journal once it answers
        except LedgerError:
            time.sleep(0.05)
            continue
        if not len(guard.ledger.journal):
            break
        guard.ledger.replay()
    pending = len(guard.ledger.journal)
    guard.ledger.close()
    with open(out, "w") as f:
        json.dump({"costs": costs, "refused": refused, "pending": pending,
                   "outages": guard.ledger.outages, "errors": errors}, f)


def journal_burst(path: str, proc: int, threads: int, barrier: Any, out: str) -> None:
    """``threads`` threads of this process journal one entry each into a new journal at the same moment."""
    from pathlib import Path

    from breaker.ledgers.journal import Journal as _Journal

    errors: list[str] = []
    start = threading.Barrier(threads)

    def one(n: int) -> None:
        journal = _Journal(Path(path))  # its own connection, as each worker's first journaled write has
        start.wait()
        try:
            journal.add(f"op-{proc}-{n}", "settle", {"n": n})
        except Exception as e:  # noqa: BLE001 - reported to the parent
            errors.append(f"{type(e).__name__}: {e}")

    barrier.wait(60)
    pool = [threading.Thread(target=one, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    with open(out, "w") as f:
        json.dump(errors, f)
