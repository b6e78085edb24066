"""``breaker grant`` and ``breaker trips`` from another process, on a shared SQLite file and on Redis.

A session tripped in this process (its trip kept in this process's memory too) sends its next call
once an operator runs ``breaker grant`` in a subprocess: real calls through the OpenAI SDK against
FakeLLM, counted where they arrive. ``breaker trips`` lists the trip before and not after;
``breaker report`` shows the grant (who, when, how much).
"""

from __future__ import annotations

import json
import uuid

import pytest

from breaker import Breaker, Budget, BudgetExceeded
from breaker.ledgers import Redis, SQLite
from breaker.pricing import NANO
from breaker.testing import FakeLLM, Reply
from tests.cli.conftest import assert_user_error, cli
from tests.ledgers.conftest import PRICE, SERVED, ask

LIMIT, GRANT = 500_000, 300_000  # nano-USD


@pytest.fixture
def fake():
    reply = Reply(text=" ".join(["word"] * SERVED.output_tokens), input_tokens=SERVED.input_tokens,
                  output_tokens=SERVED.output_tokens)
    with FakeLLM(default=reply) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def shared(request, tmp_path, monkeypatch):
    """``(ledger, --ledger args)`` for a store another process can open."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the Breaker's journal: not in ~
    if request.param == "sqlite":
        path = tmp_path / "breaker.db"
        return SQLite(path), ["--ledger", str(path)]
    server = request.getfixturevalue("redis_server")
    prefix = f"grant{uuid.uuid4().hex[:8]}:"
    return Redis(server.url, prefix=prefix), ["--ledger", server.url, "--prefix", prefix]


def calls_until_refused(guard, client, session: str) -> tuple[int, BudgetExceeded | None]:
    sent = 0
    with guard.session(session):
        for i in range(30):
            try:
                ask(client, f"{session} {i}")
            except BudgetExceeded as trip:
                return sent, trip
            sent += 1
    return sent, None


def test_breaker_grant_from_another_process_lets_a_tripped_session_go_on(shared, fake):
    ledger, where = shared
    guard = Breaker(budgets=[Budget(usd=LIMIT / NANO)], ledger=ledger, loops=None, alerts=[], telemetry=False)
    client = guard.wrap(fake.openai(max_retries=0))
    try:
        first, trip = calls_until_refused(guard, client, "ticket-42")
        assert trip is not None and first >= 2 and fake.count == first
        assert calls_until_refused(guard, client, "ticket-42")[0] == 0 and fake.count == first  # sticky

        listed = cli("trips", *where, "--format", "json")
        assert listed.returncode == 0, listed.stderr
        (row,) = json.loads(listed.stdout)["trips"]
        assert (row["scope"], row["per"], row["key"], row["metric"], row["budget"]) == (
            "session:ticket-42", "session", "ticket-42", "usd", "whole life")
        assert row["spent"] == pytest.approx(first * PRICE / NANO) and row["since"].endswith("UTC")
        assert "an operator's grant" in row["until"] and "usd budget" in row["why"]

        granted = cli("grant", *where, "--per", "session", "--key", "ticket-42", "--usd", f"{GRANT / NANO:.4f}",
                      "--by", "ops-alice")
        assert granted.returncode == 0, granted.stderr
        assert "Granted $0.0003 to session:ticket-42 by ops-alice" in granted.stdout and "1 trip marker lifted" in granted.stdout
        assert "No scope is tripped" in cli("trips", *where).stdout

        more, trip = calls_until_refused(guard, client, "ticket-42")  # the same process, the same session
        assert trip is not None and GRANT - PRICE < more * PRICE <= GRANT + (LIMIT - first * PRICE)
        assert fake.count == first + more
        assert round(guard.spent("session", "ticket-42").usd * NANO) == (first + more) * PRICE  # all of it

        report = cli("report", *where, "--format", "json")
        assert report.returncode == 0, report.stderr
        (g,) = json.loads(report.stdout)["grants"]
        assert (g["scope"], g["usd_nano"], g["by"], g["trips_lifted"]) == ("session:ticket-42", GRANT, "ops-alice", 1)
        text = cli("report", *where, "--by", "session", block_rich=True)
        assert "granted: $0.0003 to session:ticket-42 by ops-alice at " in text.stdout
    finally:
        guard.ledger.close()


def test_breaker_trips_shows_a_period_trip_until_its_period_ends(tmp_path, monkeypatch, fake):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "breaker.db"
    guard = Breaker(budgets=[Budget(calls=1, per="feature", period="month", tz="Europe/Paris")],
                    ledger=SQLite(path), loops=None, alerts=[], telemetry=False)
    client = guard.wrap(fake.openai(max_retries=0))
    try:
        with guard.session("a", feature="search"):
            ask(client, "one")
            with pytest.raises(BudgetExceeded):
                ask(client, "two")
        assert fake.count == 1
        (row,) = json.loads(cli("trips", "--ledger", str(path), "--format", "json").stdout)["trips"]
        assert row["scope"] == "feature:search" and row["budget"].startswith("per month (Europe/Paris)")
        assert row["until"].endswith("00:00 Europe/Paris (the month ends)") and row["metric"] == "calls"
        table = cli("trips", "--ledger", str(path), block_rich=True)
        assert "feature:search" in table.stdout and "breaker grant" in table.stdout
    finally:
        guard.ledger.close()


def test_breaker_grant_refuses_what_it_cannot_do(tmp_path):
    path = tmp_path / "breaker.db"
    SQLite(path).close()
    assert_user_error(cli("grant", "--ledger", str(path), "--key", "s"), "needs an amount")
    assert_user_error(cli("grant", "--ledger", str(path), "--usd", "1"), "needs key=")
    assert_user_error(cli("grant", "--ledger", str(path), "--per", "global", "--key", "x", "--usd", "1"),
                      "takes no key")
    assert_user_error(cli("grant", "--ledger", str(path), "--key", "s", "--usd", "lots"), "number of dollars")
    assert_user_error(cli("grant", "--ledger", str(tmp_path / "nope.db"), "--key", "s", "--usd", "1"), "no ledger at")
