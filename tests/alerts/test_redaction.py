"""Secrets in alerts (issue 19): a webhook URL's token never shows, a store URL's password is scrubbed.

Slack and most webhook URLs carry their token in the path; a Redis URL carries its
password in the user-info. Neither may reach a log line, an error, a ``repr`` or a
payload sent elsewhere. Delivery goes to real loopback servers.
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from breaker import ConfigError, Event
from breaker.alerts import Log
from breaker.redact import scrub

PATH_SECRET = "T0/B0/XOXB-PATH-S3CRET"
STORE_URL = "redis://default:hunter2-S3CRET@cache.internal:6379/0"


@pytest.mark.parametrize("text, shown", [
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("at redis://default:p@ss@cache/0: refused", "at redis://default:***@cache/0: refused"),
    ("rediss://tok3n@cache/0", "rediss://***@cache/0"),
    ("rediss://cache/0?password=pw&db=1", "rediss://cache/0?password=***&db=1"),
    ("https://x.example/a?access_token=abc&q=1", "https://x.example/a?access_token=***&q=1"),
    ("Session 't-1' has spent 80% ($1.60 of $2.00)", "Session 't-1' has spent 80% ($1.60 of $2.00)"),
    ("mail ops@example.com", "mail ops@example.com"),
])
def test_scrub_hides_exactly_the_credentials(text, shown):
    assert scrub(text) == shown


def test_the_log_sink_scrubs_a_store_password(caplog):
    with caplog.at_level(logging.DEBUG, logger="breaker"):
        Log()(Event("ledger_error", f"The ledger at {STORE_URL} is unreachable"))
    assert caplog.records[0].getMessage() == (
        "ledger_error: The ledger at redis://default:***@cache.internal:6379/0 is unreachable")


def test_a_webhook_payload_is_scrubbed(receivers, webhooks):
    receiver = receivers()
    for fmt in ("json", "slack"):
        sink = webhooks(f"{receiver.url}/{PATH_SECRET}", format=fmt)
        sink(Event("ledger_error", f"The ledger at {STORE_URL} is unreachable", data={"url": STORE_URL}))
        assert sink.flush(5) and sink.delivered == 1
    json_body, slack_body = (r["json"] for r in receiver.requests)
    assert json_body["message"] == "The ledger at redis://default:***@cache.internal:6379/0 is unreachable"
    assert json_body["data"] == {"url": "redis://default:***@cache.internal:6379/0"}
    assert "hunter2-S3CRET" not in repr(slack_body) and "redis://default:***@" in slack_body["text"]


@pytest.mark.parametrize("url", [
    f"https://hooks.slack.com/services/{PATH_SECRET}\x00",
    f"https://hooks.slack.com/services/{PATH_SECRET}\n",
    f"https://hooks.slack.com/services/{PATH_SECRET} ",
    f"https://hooks.slack.com:{PATH_SECRET}",  # a bad port: urllib's message would quote it
    f"https://[hooks.slack.com/services/{PATH_SECRET}",
])
def test_a_malformed_webhook_url_is_refused_without_echoing_it(url):
    from breaker.alerts.webhook import Webhook

    with pytest.raises(ConfigError) as info:
        Webhook(url)
    assert "S3CRET" not in str(info.value)


def _garbage_server() -> tuple[socket.socket, threading.Thread]:
    """Answers every connection with a status line that is not HTTP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT-HTTP " + PATH_SECRET.encode() + b"\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_a_garbled_answer_is_retried_and_logged_without_the_url(webhooks, caplog):
    server, _ = _garbage_server()
    try:
        port = server.getsockname()[1]
        sink = webhooks(f"http://127.0.0.1:{port}/services/{PATH_SECRET}", attempts=2)
        with caplog.at_level(logging.DEBUG, logger="breaker"):
            sink(Event("tripped", "stopped"))
            assert sink.flush(5)
    finally:
        server.close()
    assert sink.dropped_failed == 1 and sink.retries == 1
    assert "BadStatusLine (after 2 attempts)" in caplog.text
    assert "S3CRET" not in caplog.text and "S3CRET" not in repr(sink)
