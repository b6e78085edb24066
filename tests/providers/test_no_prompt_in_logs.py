"""No prompt text in any log record breaker emits, at any level, under faults (issue 19).

The provider answers 400 with an error that quotes the prompt (as OpenAI and Anthropic do for
rejected content); the real SDKs raise it with that text. Calls run under loop detection (an
error storm trips), with alerts logged, a ledger outage (a real SQLite file whose write lock another
connection holds) while the errors are settled, and OpenTelemetry spans recorded: the DEBUG
traceback of a telemetry read during the outage carried the provider's error text, chained as the
exception being handled. Every record of the ``breaker`` loggers is checked: message, args, traceback.
"""

from __future__ import annotations

import logging
import sqlite3

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import breaker
from breaker import Breaker, Budget, LoopPolicy, SessionKilled
from breaker.telemetry import OTel
from breaker.testing import Reply
from tests.providers.conftest import ANTHROPIC_MODEL, OPENAI_MODEL

SECRET = "PROMPT-SECRET-7f3a"


def _quoting(received) -> Reply:
    """A 400 whose message quotes the request's text, as a provider's content rejection does."""
    return Reply(status=400, error=f"Invalid request: the input {str(received.body)[:300]!r} was rejected")


def _breaker_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "breaker" or r.name.startswith("breaker.")]


def _leaks(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    found = []
    for r in records:
        text = " ".join((
            str(r.msg), repr(r.args), r.getMessage(), r.exc_text or "",
            formatter.formatException(r.exc_info) if r.exc_info else "",
        ))
        if SECRET in text:
            found.append(f"{r.levelname} {r.getMessage()[:200]}")
    return found


def _guard(tmp_path, **kw) -> Breaker:
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return Breaker(
        budgets=[Budget(usd=5)], loops=LoopPolicy(max_errors=3), alerts=[breaker.alerts.Log()],
        ledger=breaker.ledgers.SQLite(tmp_path / "ledger.db", busy_timeout=0.05), on_ledger_error="open",
        telemetry=OTel(tracer_provider=tracing, meter_provider=MeterProvider()), **kw,
    )


def _fail(guard, session: str, send, n: int, errors: list[BaseException]) -> None:
    """``n`` calls in ``session`` that the provider rejects, quoting them; the error storm's trip ends it."""
    try:
        with guard.session(session):
            for i in range(n):
                try:
                    send(i)
                except Exception as e:  # noqa: BLE001 - agent code swallows errors; the trip passes
                    errors.append(e)
    except SessionKilled:
        pass


def test_provider_errors_quoting_the_prompt_during_an_outage_reach_no_log_record(tmp_path, fake, caplog):
    guard = _guard(tmp_path)
    openai_client = guard.wrap(fake.openai(max_retries=0))
    anthropic_client = guard.wrap(fake.anthropic(max_retries=0))
    fake.default = _quoting
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    _fail(guard, "before-outage", lambda i: openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": f"{SECRET} step {i}"}]), 1, errors)
    lock = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the outage: another writer holds the file
    try:
        _fail(guard, "chat", lambda i: openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": f"{SECRET} chat {i}"}]), 5, errors)
        _fail(guard, "stream", lambda i: list(openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": f"{SECRET} stream {i}"}], stream=True)),
            5, errors)
        _fail(guard, "responses", lambda i: openai_client.responses.create(
            model=OPENAI_MODEL, input=f"{SECRET} responses {i}"), 5, errors)
        _fail(guard, "messages", lambda i: anthropic_client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=50, messages=[{"role": "user", "content": f"{SECRET} m {i}"}]),
            5, errors)
    finally:
        lock.rollback()
        lock.close()
    sent = fake.requests
    assert sent and all(SECRET in str(r.body) for r in sent)  # the prompt was sent ...
    provider_errors = [e for e in errors if isinstance(e, openai.APIStatusError) or "anthropic" in type(e).__module__]
    assert len(provider_errors) == len(sent) and all(SECRET in str(e) for e in provider_errors)  # ... and quoted
    records = _breaker_records(caplog)
    assert not _leaks(records), _leaks(records)
    messages = [r.getMessage() for r in records]
    # The faults were logged, by type: the outage, the trips, and the DEBUG line of the telemetry read
    # that failed while a provider's error was being settled (its traceback carried the error's text).
    assert any(r.levelno == logging.DEBUG and "remaining budget" in m and "BadRequestError (HTTP 400)" in m
               for r, m in zip(records, messages))
    assert any("The budget store" in m for m in messages) and sum("error storm" in m for m in messages) >= 4


async def test_async_provider_errors_reach_no_log_record(tmp_path, fake, caplog):
    guard = _guard(tmp_path)
    client = guard.wrap(fake.async_openai(max_retries=0))
    fake.default = _quoting
    caplog.set_level(logging.DEBUG)
    lock = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    rejected = 0
    try:
        with pytest.raises(SessionKilled):
            async with guard.session("async"):
                for i in range(5):
                    try:
                        await client.chat.completions.create(
                            model=OPENAI_MODEL, messages=[{"role": "user", "content": f"{SECRET} async {i}"}])
                    except openai.BadRequestError as e:
                        assert SECRET in str(e)
                        rejected += 1
    finally:
        lock.rollback()
        lock.close()
    assert rejected == fake.count == 3  # the error storm refused the 4th before sending
    records = _breaker_records(caplog)
    assert records and not _leaks(records), _leaks(records)


def test_a_traceback_logged_while_a_provider_error_is_handled_carries_only_its_summary(fake, caplog):
    """The net under every breaker record: ``log.exception`` anywhere in breaker (an alert sink or a
    ledger failing while a provider error is being handled, say) logs the exception's type and HTTP
    status, never the text the provider's error quotes."""
    fake.default = _quoting
    client = fake.openai(max_retries=0)
    caplog.set_level(logging.DEBUG)
    try:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": SECRET}])
    except openai.BadRequestError as provider_error:
        assert SECRET in str(provider_error)
        try:
            raise RuntimeError("a sink failed")
        except RuntimeError:
            logging.getLogger("breaker").exception("alert sink failed on a %s event", "tripped")
    (record,) = _breaker_records(caplog)
    assert not _leaks([record]) and record.exc_info is None
    assert record.getMessage() == (
        "alert sink failed on a tripped event (RuntimeError; while handling openai.BadRequestError (HTTP 400))")
    # The traceback stays, frames and types: what failed where, without the provider's text.
    trace = record.exc_text
    assert trace.count("Traceback (most recent call last):") == 2 and "During handling" in trace
    assert trace.endswith("RuntimeError") and "openai.BadRequestError (HTTP 400)\n" in trace
    assert "test_no_prompt_in_logs.py" in trace and "raise RuntimeError" in trace
