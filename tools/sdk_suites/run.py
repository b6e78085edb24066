"""Run the openai and anthropic SDKs' own test suites with and without the breaker.

Why: a guard may refuse a call it cannot afford, but must change nothing else
a caller can see. The SDKs' own test suites are the widest description of
what a caller sees, so each one is run three ways, against the SDK versions
installed in .venv:

  alone      no breaker
  session    Breaker(budgets=[Budget(usd=1000)], unknown_price="warn").instrument(),
             with every test run inside guard.session()
  nosession  the same guard instrumented, no session

A regression is a test that passes alone and fails, errors or does not run at
all in another run. A budget of $1000 never refuses a mocked call, so a
regression is the breaker changing something, which it must not, unless it is
documented behaviour with an opt-out (DOCUMENTED: loop detection refusing the
same request sent again and again in one session; breaker's own OpenTelemetry
in tests asserting that nothing in the process calls it). Each of those is run
again with its opt-out and counts as explained only if it passes then; the
exit status is 1 when any regression is not explained.

How to read the output: for each SDK, one line per run with its counts. The
generated tests that need the Prism mock server on 127.0.0.1:4010 are skipped
when none listens there ("skipped (needs Prism)"; --prism-tests runs them, to
fail in every run after 1.4 s of retries each). Other tests that fail alone
are never regressions either; the top causes of those failures are listed
after the counts, to tell a broken setup from a few tests that need what this
machine has not (the network, a browser). "guard saw N calls" says the
instrumented run really went through the breaker, and "outside the test's
session" says how many of them the session harness failed to cover (it should
be 0, except for calls a test makes from threads or fresh contexts it starts).
Then the regressions, grouped by the first line of their error so that causes
cluster, biggest cluster first, with the runs it hit and a few test ids. Every
id is in tools/sdk_suites/.cache/report.json; each pytest's full output is in
.cache/logs/<sdk>-<run>.log.

Usage (or `make sdk-suites`):
  .venv/bin/python tools/sdk_suites/run.py [--sdk openai|anthropic|all]
      [--runs alone,session,nosession] [-k EXPR] [--keep] [--prism-tests]

--keep reuses the cache: the sdists, the venv, and the last results of the
runs that --runs leaves out (so `--keep --runs ""` only prints the report
again); without it the cache is rebuilt from scratch.
The exit status is 1 when any regression is not explained by a documented opt-out.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = HERE / ".cache"
VENV = CACHE / "venv"
SDKS = ("openai", "anthropic")
RUNS = ("alone", "session", "nosession")
# Linters, type checkers and stubs from the dev groups: no test needs them.
NOT_FOR_TESTS = re.compile(r"^(ty|pyright|ruff|mypy|types-.*|.*-stubs)$")
NO_EXTRAS = {"voice-helpers"}  # sounddevice needs the PortAudio C library
SHOWN = 6  # test ids printed per cluster (report.json has all)


def sh(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def fetch(sdk: str, version: str) -> Path:
    """The unpacked sdist of ``sdk==version``."""
    src = CACHE / "src" / f"{sdk}-{version}"
    if not src.exists():
        sdists = CACHE / "sdists"
        sh(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           f"{sdk}=={version}", "-d", sdists)
        with tarfile.open(sdists / f"{sdk}-{version}.tar.gz") as tar:
            tar.extractall(src.parent, filter="data")
    return src


def test_requirements(sdk: str, version: str, src: Path) -> list[str]:
    """The SDK with its extras, and its dev dependency group (or requirements-dev.lock) minus linters."""
    meta = tomllib.loads((src / "pyproject.toml").read_text())
    extras = {re.sub(r"[-_.]+", "-", name).lower() for name in meta["project"].get("optional-dependencies", {})}
    extras = sorted(extras - NO_EXTRAS)
    dev = [r for r in meta.get("dependency-groups", {}).get("dev", []) if isinstance(r, str)]
    if not dev and (src / "requirements-dev.lock").exists():
        lines = (src / "requirements-dev.lock").read_text().splitlines()
        dev = [line.split("#")[0].strip() for line in lines if line.strip() and line[0] not in "#-"]
    dev = [r for r in dev if not NOT_FOR_TESTS.match(Requirement(r).name)]
    return [f"{sdk}[{','.join(extras)}]=={version}", *dev]


def pins() -> list[str]:
    """The .venv's versions of the SDKs' and the breaker's own dependencies, as pip constraints."""
    out = set()
    for dist in (*SDKS, "agent-cost-breaker"):
        for line in importlib.metadata.requires(dist) or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                try:
                    out.add(f"{req.name}=={importlib.metadata.version(req.name)}")
                except importlib.metadata.PackageNotFoundError:
                    pass
    return sorted(out)


def make_venv(requirements: list[str]) -> None:
    wanted = [*requirements, "pytest-timeout", "-e", str(REPO)]
    stamp = VENV / ".installed"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    if not (VENV / "bin" / "python").exists():
        sh(sys.executable, "-m", "venv", VENV)
    constraints = CACHE / "constraints.txt"
    constraints.write_text("\n".join(pins()) + "\n")
    sh(VENV / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
       "-c", constraints, *wanted)
    stamp.write_text(json.dumps(wanted))


def run_suite(sdk: str, src: Path, run: str, k: str | None, prism: bool,
              optout: str = "", tests: list[str] | None = None) -> dict[str, dict]:
    """One pytest run of ``sdk``'s suite (or of ``tests`` only, with the ``optout`` of the
    guard applied); the outcome of every test, by node id."""
    name = f"{run}-optout-{optout.replace(',', '+')}" if optout else run
    out = CACHE / "results" / f"{sdk}-{name}.json"
    log = CACHE / "logs" / f"{sdk}-{name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("OPENAI_", "ANTHROPIC_", "PYTEST_", "BREAKER_"))}
    env.update(SDK_SUITES_MODE=run, SDK_SUITES_OUT=str(out), PYTHONPATH=str(HERE), PYTHONDONTWRITEBYTECODE="1",
               SDK_SUITES_OPTOUT=optout)
    if prism:
        env["SDK_SUITES_PRISM"] = "run"
    cmd = [str(VENV / "bin" / "python"), "-m", "pytest", "-p", "sdk_suites_plugin", "-p", "xdist", "-n", "2",
           "-p", "no:cacheprovider", "--timeout", "300", "-q", *(["-k", k] if k else []), *(tests or [])]
    print(f"  {sdk:9} {name:9} ... ", end="", flush=True)
    started = time.monotonic()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, cwd=src, env=env, stdout=f, stderr=subprocess.STDOUT)
    if not out.exists():
        print(f"pytest wrote no results: see {log}")
        return {}
    results = json.loads(out.read_text())
    print(f"{summary(results)} [{time.monotonic() - started:.0f}s]", flush=True)
    return results


def summary(results: dict[str, dict]) -> str:
    counts = collections.Counter(entry["outcome"] for entry in results.values())
    text = ", ".join(f"{n} {outcome}" for outcome, n in counts.most_common())
    calls = [entry["calls"] for entry in results.values() if "calls" in entry]
    if calls:
        outside = sum(entry.get("outside", 0) for entry in results.values())
        text += f"; guard saw {sum(calls)} calls in {sum(1 for c in calls if c)} tests"
        if any("outside" in entry for entry in results.values()):
            text += f", {outside} outside the test's session"
    return text


def cause(test: str, error: str) -> str:
    """The cluster a failure belongs to: its first line with addresses, ids and long numbers
    blanked; a bare assertion (whose values differ with each parameter) by its test function."""
    if error.startswith(("assert ", "AssertionError: assert ")):
        return f"AssertionError in {test.split('[')[0]}"
    error = re.sub(r"0x[0-9a-fA-F]+", "0x…", error)
    error = re.sub(r"\b[0-9a-f]{12,}\b", "…", error)
    return re.sub(r"\d{4,}", "N", error)[:300]


def compare(results: dict[str, dict[str, dict]]) -> tuple[dict, list]:
    """Regressions per run, and clusters of them by cause (biggest first)."""
    passed = {test for test, entry in results.get("alone", {}).items() if entry["outcome"] == "passed"}
    regressions: dict[str, dict[str, str]] = {}
    for run, outcomes in results.items():
        if run == "alone":
            continue
        regressions[run] = {}
        for test in sorted(passed):
            entry = outcomes.get(test, {"outcome": "missing", "error": "(did not run)"})
            if entry["outcome"] in ("failed", "error", "missing"):
                regressions[run][test] = entry["error"]
    clusters: dict[str, dict] = {}
    for run, tests in regressions.items():
        for test, error in tests.items():
            key = cause(test, error)
            cluster = clusters.setdefault(key, {"cause": key, "runs": {}, "tests": {}})
            cluster["runs"][run] = cluster["runs"].get(run, 0) + 1
            cluster["tests"].setdefault(test, {})[run] = error
    return regressions, sorted(clusters.values(), key=lambda c: -len(c["tests"]))


# Regressions that are the library's documented behaviour, and the opt-out that removes each: a
# session refusing the same request sent again and again (loop detection), and breaker's own
# OpenTelemetry (it reads the global tracer provider and adds its spans) in tests asserting that
# nothing else in the process calls OpenTelemetry or that the SDK's spans are the only ones.
DOCUMENTED = (
    ("stopped by loop detection", "loops", "Breaker(loops=None), or LoopPolicy(max_identical=None)"),
    ("get_tracer_provider", "telemetry", "Breaker(telemetry=False)"),
    ("get_current", "telemetry", "Breaker(telemetry=False)"),
    ("opentelemet", "telemetry", "Breaker(telemetry=False)"),
)


def documented(error: str) -> set[str]:
    """The opt-outs whose documented behaviour ``error`` shows (empty: none)."""
    return {optout for marker, optout, _ in DOCUMENTED if marker in error}


def verify_optouts(sdk: str, src: Path, regressions: dict[str, dict[str, str]], prism: bool) -> dict[str, dict]:
    """Re-run each documented regression with its opt-out: it must pass then, or it is not explained.

    A test can show two behaviours one after the other (a loop refusal first, then, with loops off,
    breaker's spans): a re-run that fails with another documented behaviour runs again with both opt-outs.
    """
    checked: dict[str, dict] = {}
    for run, tests in regressions.items():
        pending = {test: documented(error) for test, error in tests.items() if documented(error)}
        while pending:
            groups: dict[frozenset[str], list[str]] = collections.defaultdict(list)
            for test, optouts in pending.items():
                groups[frozenset(optouts)].append(test)
            pending = {}
            for optouts, ids in groups.items():
                again = run_suite(sdk, src, run, None, prism, ",".join(sorted(optouts)), ids)
                how = "; ".join(sorted({h for _, o, h in DOCUMENTED if o in optouts}))
                for test in ids:
                    entry = again.get(test, {})
                    passed = entry.get("outcome") == "passed"
                    more = documented(entry.get("error", "")) - optouts
                    if not passed and more:
                        pending[test] = set(optouts) | more
                        continue
                    checked.setdefault(run, {})[test] = {"optout": how, "passes_with_it": passed}
    return checked


def git_head() -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read only: never refresh the index
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, env=env)
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "-uno", "--", "breaker", "integrations"],
                           capture_output=True, text=True, env=env)
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdk", choices=[*SDKS, "all"], default="all")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated, from: " + ",".join(RUNS))
    parser.add_argument("-k", dest="k", help="pytest -k expression")
    parser.add_argument("--keep", action="store_true", help="reuse the cache instead of rebuilding it")
    parser.add_argument("--prism-tests", action="store_true", help="run the tests that need Prism even without it")
    args = parser.parse_args()
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    if unknown := set(runs) - set(RUNS):
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    sdks = SDKS if args.sdk == "all" else (args.sdk,)
    os.nice(19)  # pip and pytest inherit it: this must not slow the rest of a 2-core machine
    if not args.keep and CACHE.exists():
        shutil.rmtree(CACHE)
    CACHE.mkdir(parents=True, exist_ok=True)

    versions = {sdk: importlib.metadata.version(sdk) for sdk in sdks}
    sources = {sdk: fetch(sdk, version) for sdk, version in versions.items()}
    make_venv([r for sdk in sdks for r in test_requirements(sdk, versions[sdk], sources[sdk])])

    report: dict = {"breaker": git_head(), "k": args.k, "sdks": {}}
    print(f"\nbreaker at {report['breaker']}; -k {args.k!r}" if args.k else f"\nbreaker at {report['breaker']}")
    for sdk in sdks:
        results = {}
        for run in RUNS:
            kept = CACHE / "results" / f"{sdk}-{run}.json"
            if run in runs:
                results[run] = run_suite(sdk, sources[sdk], run, args.k, args.prism_tests)
            elif args.keep and kept.exists():
                results[run] = json.loads(kept.read_text())
                print(f"  {sdk:9} {run:9} (kept from the last run) {summary(results[run])}")
        failing = collections.Counter(cause(test, e["error"]) for test, e in results.get("alone", {}).items()
                                      if e["outcome"] in ("failed", "error"))
        for error, n in failing.most_common(5):
            print(f"  {sdk:9} alone fails {n:5} x {error}")
        regressions, clusters = compare(results)
        explained = verify_optouts(sdk, sources[sdk], regressions, args.prism_tests)
        unexplained = {run: {t: e for t, e in tests.items() if not explained.get(run, {}).get(t, {}).get(
            "passes_with_it")} for run, tests in regressions.items()}
        report["sdks"][sdk] = {
            "version": versions[sdk],
            "counts": {run: collections.Counter(e["outcome"] for e in r.values()) for run, r in results.items()},
            "regressions": regressions,
            "documented": explained,
            "unexplained": unexplained,
            "clusters": clusters,
        }
        print(f"\n{sdk} {versions[sdk]}: "
              + ", ".join(f"{len(tests)} regressions in {run} ({len(unexplained[run])} not explained by a "
                          f"documented opt-out)" for run, tests in regressions.items()))
        for cluster in clusters:
            hits = ", ".join(f"{run} {n}" for run, n in cluster["runs"].items())
            print(f"\n  [{hits}] {cluster['cause']}")
            for test, errors in list(cluster["tests"].items())[:SHOWN]:
                print(f"      {test}  ({', '.join(errors)})")
                if cluster["cause"].startswith("AssertionError in "):
                    print(f"          {next(iter(errors.values()))[:150]}")
            if len(cluster["tests"]) > SHOWN:
                print(f"      ... and {len(cluster['tests']) - SHOWN} more")
        print()

    (CACHE / "report.json").write_text(json.dumps(report, indent=1))
    print(f"report: {CACHE / 'report.json'}; pytest output: {CACHE / 'logs'}")
    return 1 if any(r for sdk in report["sdks"].values() for r in sdk["unexplained"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
