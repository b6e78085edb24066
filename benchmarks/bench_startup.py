"""Start-up: ``import breaker`` + ``Breaker()`` + ``instrument()`` beside ``import openai``, in fresh processes.

    .venv/bin/python benchmarks/bench_startup.py [--runs 15]

Each run is a new interpreter that imports ``openai`` (what a program using only OpenAI pays anyway),
then breaker, builds a ``Breaker()`` and instruments the SDKs, timing each step with
``time.perf_counter`` inside the process; the runs alternate with runs of ``import openai`` alone
(the peer), so load hits both alike. Compiled bytecode is cached (``PYTHONPYCACHEPREFIX``, a
temporary directory warmed by one untimed run of each), as an installed package's is: the figure is
imports and set-up, not compiling. Also reported: which SDKs the instrumented process loaded, and
``guard.wrap(openai.OpenAI(...))`` after ``import openai`` + ``OpenAI()`` (its own processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _util import header

WATCH = ("anthropic", "google.genai", "botocore", "openai.resources.beta", "openai.resources.chat", "importlib.metadata")

PEER = """
import time, sys, json; t0 = time.perf_counter()
import openai
t1 = time.perf_counter()
print(json.dumps([t1 - t0, [m for m in %r if m in sys.modules]]))
""" % (WATCH,)

GUARDED = """
import time, sys, json; t0 = time.perf_counter()
import openai
t1 = time.perf_counter()
import breaker
t2 = time.perf_counter()
guard = breaker.Breaker()
t3 = time.perf_counter()
guard.instrument()
t4 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, t4 - t3, [m for m in %r if m in sys.modules]]))
""" % (WATCH,)

CLIENT = """
import time; t0 = time.perf_counter()
import openai
client = openai.OpenAI(api_key="bench")
print(time.perf_counter() - t0)
"""

WRAPPED = """
import time, sys, json; t0 = time.perf_counter()
import openai
client = openai.OpenAI(api_key="bench")
t1 = time.perf_counter()
import breaker
guard = breaker.Breaker()
guard.wrap(client)
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, "openai.resources.beta" in sys.modules]))
"""


def run(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    header("Start-up: import breaker + Breaker() + instrument(), beside import openai (fresh processes)")
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for code in (PEER, GUARDED, CLIENT, WRAPPED):  # compile everything once, untimed
            run(code, env)
        peer, steps, sdks, theirs = [], [], [], []
        client, wrapped, beta = [], [], False
        for _ in range(args.runs):
            alone, theirs = json.loads(run(PEER, env))
            peer.append(alone)
            *times, loaded = json.loads(run(GUARDED, env))
            steps.append(times)
            sdks = loaded
            client.append(float(run(CLIENT, env)))
            openai_s, wrap_s, beta = json.loads(run(WRAPPED, env))
            wrapped.append(wrap_s)
    ms = 1e3
    base = statistics.median(peer)
    cols = list(zip(*steps))
    added = [sum(t[1:]) for t in steps]
    total = statistics.median(t[0] + a for t, a in zip(steps, added))
    print(f"{args.runs} runs each, median ms:")
    print(f"  import openai alone (the peer)             {base * ms:8.1f}")
    print(f"  import openai, in the instrumented process {statistics.median(cols[0]) * ms:8.1f}")
    print(f"  + import breaker                           {statistics.median(cols[1]) * ms:8.1f}")
    print(f"  + Breaker()                                {statistics.median(cols[2]) * ms:8.1f}")
    print(f"  + guard.instrument()                       {statistics.median(cols[3]) * ms:8.1f}")
    part = statistics.median(added)
    print(f"  all of it: {total * ms:.1f} ms = {total / base:.2f}× import openai; breaker's part "
          f"{part * ms:.1f} ms, so import openai + breaker = {(base + part) / base:.2f}× import openai alone")
    extra = [m for m in sdks if m not in theirs]
    print(f"  of {', '.join(WATCH)}: loaded by import openai {', '.join(theirs) or 'none'}; "
          f"by the instrumented process besides {', '.join(extra) or 'none'}")
    print(f"  guard.wrap(OpenAI()) with import breaker + Breaker(): {statistics.median(wrapped) * ms:.1f} ms after "
          f"import openai + OpenAI() ({statistics.median(client) * ms:.1f} ms); openai.resources.beta "
          f"{'imported' if beta else 'not imported'}")


if __name__ == "__main__":
    main()
