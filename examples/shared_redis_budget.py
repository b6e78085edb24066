"""One budget shared by several worker processes through Redis (no API key, no network).

Three "replicas" (separate processes, as behind a load balancer) serve the
same customer. Each has its own Breaker, all pointing at one Redis: the
customer's $0.01 budget is one budget, not three. Parallel calls reserve their
worst case atomically in Redis before they are sent, so the replicas together
never pass the limit.

    python examples/shared_redis_budget.py [redis://host:6379/0]

Without a URL it starts a throwaway redis-server on a free port (if one is installed).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import breaker

def replica(name: str, url: str, prefix: str, go: Any, results: mp.Queue) -> None:
    """One web worker: answers requests for user "acme" with a fake model until the budget stops it."""
    import openai

    from breaker.testing import FakeLLM, Reply

    guard = breaker.Breaker(
        budgets=[breaker.Budget(usd=0.01, per="user", key="acme")],
        ledger=breaker.ledgers.Redis(url, prefix=prefix),
        alerts=[], loops=None,
    )
    spent = 0.0
    with FakeLLM(default=Reply(text="Here is your summary.", output_tokens=300)) as fake:
        client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="no-key-needed"))
        go.wait(60)  # all replicas start spending at the same moment
        for n in range(1000):
            try:
                with guard.session(f"{name}-req-{n}", user="acme") as session:
                    client.chat.completions.create(
                        model="gpt-4o-mini", max_tokens=400,
                        messages=[{"role": "user", "content": "Summarise this ticket. " * 50}],
                    )
                    spent += session.cost_usd
            except breaker.SessionKilled as e:
                results.put((name, n, spent, str(e)))
                return
    results.put((name, 1000, spent, "never stopped"))


def local_redis() -> tuple[str, subprocess.Popen[bytes] | None]:
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("Pass a Redis URL: python examples/shared_redis_budget.py redis://localhost:6379/0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return f"redis://127.0.0.1:{port}/0", proc


def main() -> None:
    url, proc = (sys.argv[1], None) if len(sys.argv) > 1 else local_redis()
    try:
        prefix = f"example-{uuid.uuid4().hex[:6]}:"  # a fresh namespace per run (passed on: spawn re-imports)
        ctx = mp.get_context("spawn")
        results: mp.Queue = ctx.Queue()
        go = ctx.Event()
        workers = [ctx.Process(target=replica, args=(f"replica-{i}", url, prefix, go, results)) for i in range(3)]
        for w in workers:
            w.start()
        time.sleep(5)  # let the replicas import and connect
        go.set()
        total = 0.0
        for _ in workers:
            name, calls, spent, why = results.get(timeout=120)
            total += spent
            print(f"{name}: {calls} requests, ${spent:.4f}; stopped: {why[:110]}...")
        for w in workers:
            w.join()
        guard = breaker.Breaker(ledger=breaker.ledgers.Redis(url, prefix=prefix), alerts=[])
        shared = guard.spent("user", "acme")
        print(f"\nuser 'acme' across all replicas: ${shared.usd:.4f} of $0.01 in {shared.calls} calls "
              f"(the replicas' own sums: ${total:.4f})")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
