"""pytest plugin that run.py loads into the SDKs' own test suites (``-p sdk_suites_plugin``).

It does this, as the environment variables that run.py sets ask:

* ``SDK_SUITES_MODE``: ``alone`` leaves the SDK untouched; ``nosession`` calls
  ``Breaker(budgets=[Budget(usd=1000)], unknown_price="warn").instrument()``
  when pytest starts; ``session`` does the same and runs every test function
  inside ``guard.session()``.
* ``SDK_SUITES_OUT``: where to write the outcome of every test (JSON, one
  entry per node id, with the first line of its error).
* ``SDK_SUITES_OPTOUT``: comma-separated documented opt-outs to apply to the
  guard: ``loops`` (``Breaker(loops=None)``: no loop detection) and
  ``telemetry`` (``Breaker(telemetry=False)``: breaker emits no OpenTelemetry).

Tests that need the Prism mock server (the generated ``tests/api_resources``
ones that talk to the ``client`` fixtures on 127.0.0.1:4010 rather than to a
respx mock) are skipped when nothing listens there: they would fail in every
run, and their retries cost 1.4 s each, hours for the two suites.
``SDK_SUITES_PRISM=run`` runs them anyway.

Why the session wraps the test function rather than living in an autouse
fixture: a fixture's ``with guard.session()`` sets a ContextVar in the main
thread's context. pytest-asyncio (1.x) copies that context for each test, so
it would reach those tests; but anyio's pytest plugin awaits every test in one
long-lived runner task, whose context was copied when the first anyio test or
fixture started, so a session that a fixture enters later never reaches it.
Wrapping the test function enters the session inside whatever task runs the
test, under pytest-asyncio, anyio and trio alike. Every admission the guard
makes is counted, and in the session run those made outside the running
test's session too, so the report shows whether this cover was complete.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
from typing import Any

import pytest

MODE = os.environ.get("SDK_SUITES_MODE", "alone")
OUT = os.environ.get("SDK_SUITES_OUT")

guard: Any = None
current: str | None = None  # id of the session the running test is in
counts = {"calls": 0, "outside": 0}
results: dict[str, dict[str, Any]] = {}
is_worker = False
PRISM = "needs the Prism mock server on 127.0.0.1:4010"
MOCKS = {"respx_mock", "respx2_mock", "snapshot_client", "async_snapshot_client"}


def pytest_configure(config: pytest.Config) -> None:
    global guard, is_worker
    is_worker = hasattr(config, "workerinput")  # an xdist worker: the controller writes the outcomes
    if MODE == "alone":
        return
    import breaker

    optouts = {o for o in os.environ.get("SDK_SUITES_OPTOUT", "").split(",") if o}
    options: dict[str, Any] = {}
    if "loops" in optouts:
        options["loops"] = None
    if "telemetry" in optouts:
        options["telemetry"] = False
    guard = breaker.Breaker(budgets=[breaker.Budget(usd=1000)], unknown_price="warn", **options).instrument()
    admit, admit_async = guard.admit, guard.admit_async

    def seen() -> None:
        counts["calls"] += 1
        if MODE == "session" and guard.current_session().id != current:
            counts["outside"] += 1

    def counted(call: Any, session: Any = None) -> Any:
        seen()
        return admit(call, session)

    async def counted_async(call: Any, session: Any = None) -> Any:
        seen()
        return await admit_async(call, session)

    guard.admit, guard.admit_async = counted, counted_async


def prism_is_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4010), timeout=1).close()
        return True
    except OSError:
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("SDK_SUITES_PRISM") == "run" or "TEST_API_BASE_URL" in os.environ or prism_is_up():
        return
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "api_resources" in item.path.parts and names & {"client", "async_client"} and not names & MOCKS:
            item.add_marker(pytest.mark.skip(reason=PRISM))


def in_session(fn: Any) -> Any:
    """``fn`` run inside a fresh ``guard.session()`` (entered in the test's own task if async)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            global current
            async with guard.session() as session:
                current = session.id
                return await fn(*args, **kwargs)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        global current
        with guard.session() as session:
            current = session.id
            return fn(*args, **kwargs)

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global current
    counts.update(calls=0, outside=0)
    current = None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    if MODE != "session" or not isinstance(item, pytest.Function):
        yield
        return
    original = item.obj
    item.obj = in_session(original)
    try:
        yield
    finally:
        item.obj = original


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown" and guard is not None:
        seen = [("breaker_calls", counts["calls"])]
        if MODE == "session":
            seen.append(("breaker_outside", counts["outside"]))
        report.user_properties = [*report.user_properties, *seen]


def first_line(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if is_worker:
        return
    entry = results.setdefault(report.nodeid, {"outcome": "passed", "error": ""})
    if report.failed:
        if entry["outcome"] not in ("failed", "error"):
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["error"] = first_line(report)
    elif report.skipped and entry["outcome"] == "passed":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        entry["outcome"] = ("xfailed" if hasattr(report, "wasxfail")
                            else "skipped (needs Prism)" if PRISM in reason else "skipped")
    for key, value in report.user_properties:
        if key.startswith("breaker_"):
            entry[key[len("breaker_"):]] = value


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed and not is_worker:
        results[report.nodeid or "(collection)"] = {"outcome": "error", "error": first_line(report)}


def pytest_sessionfinish(session: pytest.Session) -> None:
    if OUT and not is_worker:
        with open(OUT, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
