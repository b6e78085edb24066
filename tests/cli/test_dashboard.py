"""``breaker dashboard`` over HTTP and in a real browser, against a SQLite ledger a real guard wrote.

The figures are compared with ``breaker report --format json`` run on the same
file (the two must agree), and with what the engine returned while writing it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import openai
import pytest

from breaker import Breaker, Budget, SessionKilled, Usage
from breaker.adapter import Call
from breaker.budgets import USD, format_amount
from breaker.cli._common import CliError
from breaker.cli.dashboard import Dashboard, is_loopback
from breaker.cli.dashboard_data import OTHER, SERIES_KEYS
from breaker.cli.dashboard_server import CSP
from breaker.ledgers import SQLite
from breaker.testing import FakeLLM
from tests.cli.conftest import ROOT, assert_user_error, cli
from tests.cli.history import populate
from tests.conftest import genai_nano

# Ids are whatever the caller chose: these would run script in a page that did not escape them.
EVIL_SESSION = '<script>document.title="owned"</script>'
EVIL_FEATURE = '"><img src=x onerror=alert(1)>'
EVIL_USER = "<svg onload=alert(2)>"
EVIL_OUTCOME = "</td><b>bold</b>"
SECRET_PROMPT = "PROMPT-TEXT-7f3a: the customer's card number is 4111"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Written:
    """What the engine returned while it wrote the ledger."""

    def __init__(self) -> None:
        self.cost = 0
        self.calls = 0


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[str, Written]:
    path = tmp_path_factory.mktemp("dashboard") / "breaker.db"
    store = SQLite(str(path))
    written = Written()
    try:
        truth = populate(store)  # the report tests' history: features, users, models, outcomes, degraded calls
        written.cost, written.calls = truth.total, sum(n for (by, _), n in truth.calls.items() if by == "session")
        guard = Breaker(budgets=[Budget(usd=0.01)], ledger=store, alerts=[], loops=None)
        with guard.session(EVIL_SESSION, feature=EVIL_FEATURE, user=EVIL_USER) as s:
            written.cost += _nano(guard.record("gpt-4o-mini", Usage(1000, 100)))
            written.calls += 1
            s.outcome(EVIL_OUTCOME)
        for n in range(3):  # more features than the chart draws one by one
            with guard.session(f"small-{n}", feature=f"minor-{n}"):
                written.cost += _nano(guard.record("gpt-4o-mini", Usage(100 + n, 10)))
                written.calls += 1
        with pytest.raises(SessionKilled):  # a runaway stopped by its $0.01 budget: a trip
            with guard.session("runaway", feature="agent"):
                for step in range(50):
                    ticket = guard.admit(Call("gpt-4o", "openai", input_tokens=2000, max_output_tokens=500,
                                              fingerprint=step))
                    written.cost += guard.settle(ticket, Usage(2000, 500)) or 0  # nano-USD
                    written.calls += 1
        with FakeLLM() as fake:  # a real SDK call: its prompt and answer must appear nowhere
            client = guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0))
            with guard.session("sdk-1", feature="chat") as s:
                reply = client.chat.completions.create(model="gpt-4o-mini", max_tokens=50,
                                                       messages=[{"role": "user", "content": SECRET_PROMPT}])
                charged = genai_nano(Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens),
                                     "gpt-4o-mini", "openai")
                assert round(s.cost_usd * 1e9) == charged  # the reference price, to the nano-dollar
                written.cost += charged
                written.calls += 1
            assert fake.count == 1 and SECRET_PROMPT in json.dumps(fake.requests[0].body)
    finally:
        store.close()
    return str(path), written


def _nano(usd: float | None) -> int:
    return round((usd or 0) * 1e9)


@pytest.fixture(scope="module")
def served(ledger):
    with Dashboard(ledger[0], port=0) as dashboard:
        yield dashboard


@pytest.fixture(scope="module")
def report(ledger) -> dict:
    result = cli("report", "--ledger", ledger[0], "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def get(url: str, *, host: str | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_only_our_markup(page: str) -> None:
    """No element or attribute an id could have smuggled in: no script, image, handler, bold text."""
    parser = _Elements()
    parser.feed(page)
    tags = {tag for tag, _ in parser.found}
    assert not tags & {"script", "img", "b", "iframe", "object"}, tags
    handlers = [(tag, name) for tag, attrs in parser.found for name, _ in attrs if name.startswith("on")]
    assert not handlers, handlers
    assert tags >= {"table", "svg", "rect", "meter", "form"}  # the page's own markup is there


def summary(served: Dashboard, query: str = "") -> dict:
    status, headers, body = get(served.url + "api/summary" + query)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


# ------------------------------------------------------------------ the JSON agrees with the report


def test_summary_agrees_with_report_json(served, report, ledger):
    data = summary(served)
    assert data["totals"] == report["totals"]
    assert data["by"] == report["by"]
    assert data["tripped"] == report["trips"]
    assert data["ledger"] == report["ledger"]
    for key in ("cost_usd", "cost_nano_usd", "calls", "sessions", "trips", "degraded_calls", "unpriced_calls"):
        assert data[key] == report["totals"][key], key
    # and both are what the engine charged while writing the ledger
    _, written = ledger
    assert data["cost_nano_usd"] == written.cost and data["calls"] == written.calls
    assert data["trips"] == 1 and data["tripped"][0]["session"] == "runaway"
    assert data["tripped"][0]["reason"] == "budget"
    assert data["degraded_calls"] == 3 and len(data["degraded"]) == 3
    assert {d["model"] for d in data["degraded"]} == {"gpt-4o-mini"}  # sent cheaper than the gpt-4o asked for


def test_since_and_top_select_like_the_report(served, ledger):
    result = cli("report", "--ledger", ledger[0], "--format", "json", "--since", "1d", "--top", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    data = summary(served, "?since=1d&top=2")
    assert data["totals"] == report["totals"] and data["by"] == report["by"]
    assert "old-1" not in {r["key"] for r in summary(served, "?since=1d")["by"]["session"]}  # 10 days old
    assert all(len(rows) <= 2 for rows in data["by"].values())


def test_chart_series_add_up_to_the_totals(served):
    data = summary(served)
    series = data["series"]
    assert len(series["starts"]) <= 48 and series["step_seconds"] == 6 * 3600  # ten days in 6-hour bars
    for by in ("feature", "model"):
        drawn = sum(sum(line["cost_nano_usd"]) for line in series[by])
        assert drawn == data["cost_nano_usd"], by
        keys = {row["key"] for row in data["by"][by]}
        assert {line["key"] for line in series[by]} <= keys | {OTHER}
    for by in ("feature", "model"):
        lines = {line["key"]: sum(line["cost_nano_usd"]) for line in series[by]}
        rows = data["by"][by]
        for row in rows[:SERIES_KEYS]:
            assert lines[row["key"]] == row["cost_nano_usd"], (by, row["key"])
        assert lines.get(OTHER, 0) == sum(row["cost_nano_usd"] for row in rows[SERIES_KEYS:]), by
    assert len(data["by"]["feature"]) > SERIES_KEYS and OTHER in {line["key"] for line in series["feature"]}


# ------------------------------------------------------------------ the page


def test_page_shows_the_figures_with_every_id_escaped(served, report):
    status, headers, body = get(served.url)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    total = report["totals"]
    assert format_amount(USD, total["cost_nano_usd"]) in page
    assert f">{total['calls']:,}<" in page and "runaway" in page and "budget" in page
    for evil in (EVIL_SESSION, EVIL_FEATURE, EVIL_USER, EVIL_OUTCOME):
        assert evil not in page
        assert html.escape(evil) in page
    assert_only_our_markup(page)
    assert "<svg class=\"chart\"" in page and "<rect" in page


def test_strict_headers_on_every_response(served):
    for path in ("", "api/summary", "dashboard.css", "nowhere"):
        _, headers, _ = get(served.url + path)
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
        assert "Python" not in headers.get("Server", "")
    assert "script-src" not in CSP and "default-src 'none'" in CSP  # no script may run at all


def test_no_prompt_or_completion_text_anywhere(served):
    seen = b"".join(get(served.url + path)[2] for path in ("", "api/summary", "?since=1h"))
    assert b"PROMPT-TEXT-7f3a" not in seen and b"4111" not in seen
    assert b"Hello from FakeLLM" not in seen  # FakeLLM's answer
    assert b"sdk-1" in seen  # the call itself is there


def test_read_only_and_answers_to_its_own_host_only(served):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = get(served.url + "api/summary", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, _, body = get(served.url + "api/summary", host="attacker.example")  # DNS rebinding
    assert status == 421 and b"cost" not in body
    assert get(served.url + "api/summary", host=f"localhost:{served.port}")[0] == 200
    assert get(served.url + "nowhere")[0] == 404
    status, _, body = get(served.url + "api/summary?since=yesterdayish")
    assert status == 400 and b"--since" in body
    assert get(served.url + "api/summary?top=-1")[0] == 400
    assert get(served.url + "api/summary?top=%C2%B2")[0] == 400  # "²" is a digit to str.isdigit, not to int()


def test_a_range_with_no_calls_is_a_page_that_says_so(tmp_path):
    path = tmp_path / "empty.db"
    SQLite(str(path)).close()
    with Dashboard(str(path), port=0) as dashboard:
        status, _, body = get(dashboard.url)
        assert status == 200 and b"holds no call records" in body
        status, _, body = get(dashboard.url + "api/summary")
        assert status == 404 and "holds no call records" in json.loads(body)["error"]


# ------------------------------------------------------------------ the command


def test_registered_on_the_command_line():
    assert "dashboard" in cli("--help").stdout
    help_text = cli("dashboard", "--help").stdout
    assert "--public" in help_text and "/api/summary" in help_text and "8765" in help_text


def test_loopback_only_unless_public(ledger):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20") and not is_loopback("example.com")
    with pytest.raises(CliError, match="--public"):
        Dashboard(ledger[0], host="0.0.0.0")
    Dashboard(ledger[0], host="0.0.0.0", public=True)  # allowed when asked for (not started)
    assert_user_error(cli("dashboard", "--ledger", ledger[0], "--host", "0.0.0.0"), "--public", "no login")
    assert_user_error(cli("dashboard", "--ledger", str(Path(ledger[0]).parent / "missing.db")), "no ledger at")


def test_command_serves_until_interrupted(ledger, report):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "breaker", "dashboard", "--ledger", ledger[0], "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        status, _, body = get(url.group(0) + "api/summary")
        assert status == 200 and json.loads(body)["totals"] == report["totals"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err


# ------------------------------------------------------------------ a real browser


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make system-deps` installs it)")
def test_browser_renders_the_page_and_a_screenshot(served, report, tmp_path):
    dom = _chromium("--dump-dom", served.url, tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    spend = re.search(r'data-figure="spend">([^<]+)<', rendered)
    assert spend and spend.group(1) == format_amount(USD, report["totals"]["cost_nano_usd"])
    assert re.search(r'data-figure="trips">1<', rendered)
    assert_only_our_markup(rendered)  # after the browser parsed it: the hostile ids stayed text
    assert html.escape(EVIL_FEATURE, quote=False) in rendered

    shot = tmp_path / "dashboard.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,2000", served.url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with tables and charts, not a blank
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1200, 2000)


def test_the_page_shows_cache_and_waste_per_feature(tmp_path):
    path = tmp_path / "cache.db"
    guard = Breaker(ledger=SQLite(str(path)), alerts=[])
    for i in range(3):  # 600 of 1,000 input tokens read from the cache: a 60% hit rate
        with guard.session(f"s{i}", feature="support"):
            guard.record("gpt-4o", Usage(1000, 20, cache_read_tokens=600), provider="openai")
    guard.ledger.close()
    with Dashboard(str(path), port=0) as dashboard:
        status, _, body = get(dashboard.url)
        summary = json.loads(get(dashboard.url + "api/summary")[2])
    page = body.decode()
    assert status == 200 and "Cache and waste" in page
    section = page.split("Cache and waste", 1)[1].split("</section>", 1)[0]
    assert "support" in section and "60%" in section
    saved = 3 * 600 * (2_500 - 1_250)  # nano-USD: cached tokens at the full input rate, minus what they cost
    (support,) = [r for r in summary["by"]["feature"] if r["key"] == "support"]
    assert support["cache_savings_nano_usd"] == saved
