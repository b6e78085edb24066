"""Log, Callback and plain callables as sinks; a failing sink never breaks the agent or another sink."""

from __future__ import annotations

import logging

import pytest

from breaker import Breaker, Budget, ConfigError, Event, Usage, alerts
from breaker.adapter import Call


def spend(guard: Breaker, n: int = 1) -> None:
    for i in range(n):
        ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=500, fingerprint=i))
        guard.settle(ticket, Usage(1000, 500))


def test_log_is_the_default_and_logs_by_level(caplog):
    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.4,))], telemetry=False)
    assert [type(s) for s in guard.alerts] == [alerts.Log]
    with caplog.at_level(logging.DEBUG, logger="breaker"):
        with guard.session("log-1"):
            spend(guard, 1)
    records = {r.getMessage().split(":")[0]: r for r in caplog.records if r.name == "breaker"}
    assert records["threshold"].levelno == logging.WARNING
    assert records["session_end"].levelno == logging.INFO
    assert "Session 'log-1' has spent 45%" in records["threshold"].getMessage()


def test_log_trip_is_an_error_and_session_end_can_be_silenced(caplog):
    sink = alerts.Log(session_end=False)
    with caplog.at_level(logging.DEBUG, logger="breaker"):
        sink(Event("tripped", "stopped"))
        sink(Event("session_end", "ended"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, "tripped: stopped")]


def test_log_to_another_logger(caplog):
    with caplog.at_level(logging.WARNING, logger="myapp.costs"):
        alerts.Log("myapp.costs")(Event("loop", "looping"))
    (record,) = caplog.records
    assert record.name == "myapp.costs" and record.getMessage() == "loop: looping"


def test_callback_and_plain_callables():
    seen: list[str] = []
    only_trips: list[str] = []
    guard = Breaker(
        budgets=[Budget(usd=0.001, warn_at=(0.4,))],
        alerts=[lambda e: seen.append(e.kind), alerts.Callback(lambda e: only_trips.append(e.kind), kinds=("tripped",))],
        telemetry=False,
    )
    with guard.session("cb"):
        spend(guard, 1)
    assert seen == ["threshold", "session_end"]
    assert only_trips == []


def test_callback_needs_a_callable():
    with pytest.raises(ConfigError, match="function taking an Event"):
        alerts.Callback("not callable")
    with pytest.raises(ConfigError, match="callables taking an Event"):
        Breaker(alerts=["https://hooks.example/x"])


def test_a_failing_sink_breaks_neither_the_agent_nor_the_next_sink(caplog):
    got: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("pager service is down")

    guard = Breaker(budgets=[Budget(usd=0.001, warn_at=(0.4,))], alerts=[broken, got.append], telemetry=False)
    with guard.session("f") as s:
        spend(guard, 1)
        assert s.calls == 1
    assert [e.kind for e in got] == ["threshold", "session_end"]
    failures = [r for r in caplog.records if "alert sink" in r.getMessage()]
    # Its traceback is logged by frame and type (breaker.logsafe: no exception text from outside breaker).
    assert len(failures) == 2 and "RuntimeError" in failures[0].getMessage() and "Traceback" in failures[0].exc_text
