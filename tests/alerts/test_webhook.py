"""The webhook sink against a real loopback HTTP receiver: delivery, retries, hangs, floods, secrets."""

from __future__ import annotations

import logging
import threading

import pytest

from breaker import Breaker, Budget, ConfigError, Event, Usage, alerts
from breaker.adapter import Call
from breaker.alerts.webhook import Webhook

SECRET = "Bearer sk-live-HEADER-S3CRET"
PATH_SECRET = "SECRET-PATH-T0K3N"


def ev(kind: str = "threshold", n: int = 0) -> Event:
    return Event(kind, f"Session 't-{n}' has spent 80% of its budget of $2.00 ($1.60).", scope="session",
                 key=f"t-{n}", session=f"t-{n}", feature="support", user="acme", spent_usd=1.6, limit_usd=2.0,
                 fraction=0.8, data={"metric": "usd"})


def test_webhook_is_exported_lazily_from_alerts():
    assert alerts.Webhook is Webhook


@pytest.mark.parametrize("url", ["http://example.com/hook", "http://10.0.0.8/x", "http://hooks.internal:8080/x"])
def test_plain_http_is_refused_unless_loopback(url):
    with pytest.raises(ConfigError, match="https is required unless the host is loopback"):
        Webhook(url)


@pytest.mark.parametrize("url", ["https://hooks.example/x", "http://localhost:9/x", "http://127.0.0.1:9/x",
                                 "http://127.8.0.1/x", "http://[::1]:9/x"])
def test_https_and_loopback_urls_are_accepted(url):
    Webhook(url).close(0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"url": "hooks.example/x"}, "absolute https:// URL"),
        ({"url": "ftp://hooks.example/x"}, "absolute https:// URL"),
        ({"url": "https://user:pw@hooks.example/x"}, "credentials"),
        ({"url": "https://hooks.example/x", "format": "xml"}, "'json' or 'slack'"),
        ({"url": "https://hooks.example/x", "kinds": ("tripd",)}, "unknown kinds"),
        ({"url": "https://hooks.example/x", "attempts": 0}, "attempts"),
        ({"url": "https://hooks.example/x", "max_queue": 0}, "max_queue"),
        ({"url": "https://hooks.example/x", "timeout": 0}, "timeout"),
        ({"url": "https://hooks.example/x", "headers": {"X-Token": "a\r\nInjected: 1"}}, "line break"),
    ],
)
def test_bad_configuration_says_how_to_fix_it(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Webhook(**kwargs)


def test_header_values_never_appear_in_config_errors():
    with pytest.raises(ConfigError) as info:
        Webhook("https://hooks.example/x", headers={"Authorization": SECRET + "\n"})
    assert SECRET not in str(info.value)


def test_json_delivery_with_headers(receivers, webhooks):
    r = receivers()
    sink = webhooks(r.url, headers={"Authorization": SECRET})
    sink(ev())
    assert sink.flush(5)
    (req,) = r.requests
    assert req["headers"]["Authorization"] == SECRET
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["path"].endswith(PATH_SECRET)
    assert req["json"] == ev().as_dict() | {"at": req["json"]["at"]}
    assert (sink.delivered, sink.dropped, sink.retries) == (1, 0, 0)


def test_slack_format_is_a_readable_message(receivers, webhooks):
    r = receivers()
    sink = webhooks(r.url, format="slack")
    sink(Event("tripped", "Session 'a<b>' was stopped & killed.", scope="session", key="a<b>", session="a<b>",
               spent_usd=2.01, limit_usd=2.0, fraction=1.005))
    assert sink.flush(5)
    payload = r.requests[0]["json"]
    text = payload["text"]
    assert "Agent stopped" in text
    assert "Session 'a&lt;b&gt;' was stopped &amp; killed." in text  # no accidental mentions or links
    assert "$2.0100 of $2.00" in text
    assert payload["blocks"][0]["type"] == "section"
    assert "a&lt;b&gt;" in payload["blocks"][1]["elements"][0]["text"]


def test_server_errors_are_retried_until_success(receivers, webhooks):
    r = receivers([500, 503, 502])
    sink = webhooks(r.url, attempts=5)
    sink(ev())
    assert sink.flush(10)
    assert r.attempts == 4
    assert len(r.requests) == 1
    assert (sink.delivered, sink.retries, sink.dropped) == (1, 3, 0)


def test_retry_after_is_honoured_within_the_backoff_cap(receivers, webhooks):
    r = receivers([429], retry_after="0.05")
    sink = webhooks(r.url)
    sink(ev())
    assert sink.flush(10)
    assert (r.attempts, sink.delivered, sink.retries) == (2, 1, 1)


def test_exhausted_retries_are_counted_and_logged_without_secrets(receivers, webhooks, caplog):
    r = receivers([500] * 10)
    sink = webhooks(r.url, headers={"Authorization": SECRET}, attempts=3)
    with caplog.at_level(logging.DEBUG, logger="breaker"):
        sink(ev())
        assert sink.flush(10)
    assert r.attempts == 3
    assert (sink.delivered, sink.dropped_failed, sink.dropped, sink.retries) == (0, 1, 1, 2)
    assert "dropped a threshold event" in caplog.text and "HTTP 500" in caplog.text
    assert SECRET not in caplog.text and PATH_SECRET not in caplog.text
    assert PATH_SECRET not in repr(sink) and SECRET not in repr(sink)


def test_client_errors_are_not_retried(receivers, webhooks, caplog):
    r = receivers([404])
    sink = webhooks(r.url, attempts=5)
    sink(ev())
    assert sink.flush(10)
    assert (r.attempts, sink.dropped_failed, sink.retries) == (1, 1, 0)
    assert "HTTP 404" in caplog.text


def test_a_refused_connection_is_retried_then_dropped(webhooks, caplog):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    sink = webhooks(f"http://127.0.0.1:{port}/hook/{PATH_SECRET}", attempts=2)
    sink(ev())
    assert sink.flush(10)
    assert (sink.dropped_failed, sink.retries) == (1, 1)
    assert PATH_SECRET not in caplog.text


def test_a_hanging_receiver_never_blocks_the_agent(receivers, webhooks):
    r = receivers(hang=True)
    sink = webhooks(r.url, timeout=0.3, attempts=2)
    guard = Breaker(budgets=[Budget(usd=1.0, warn_at=(0.000001,))], alerts=[sink], telemetry=False)
    with guard.session("t-hang"):
        ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=1000, max_output_tokens=500, fingerprint=1))
        guard.settle(ticket, Usage(1000, 500))  # fires a threshold event
        assert r.got_request.wait(5)  # the worker is now stuck in the receiver...
        for i in range(3):  # ...and the agent goes on, its calls answered at once
            ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=5, fingerprint=i + 2))
            guard.settle(ticket, Usage(10, 5))
        assert not r.release.is_set()  # still hanging while the agent made those calls
    assert sink.flush(10)  # bounded: the per-attempt timeout gives up
    assert r.attempts == 4  # threshold and session_end, two attempts each
    assert (sink.delivered, sink.dropped_failed) == (0, 2)


def test_a_flood_is_bounded_and_drops_are_counted(receivers, webhooks, caplog):
    r = receivers(hang=True)
    sink = webhooks(r.url, max_queue=5, timeout=5.0)
    sink(ev(n=0))
    assert r.got_request.wait(5)  # the worker holds event 0; the queue is empty
    with caplog.at_level(logging.WARNING, logger="breaker"):
        for n in range(1, 101):
            sink(ev(n=n))
    assert sink.dropped_queue_full == 95  # 5 fit in the queue
    drop_lines = [rec for rec in caplog.records if "queue of 5 events is full" in rec.getMessage()]
    assert len(drop_lines) == 1  # logged, but not 95 times
    r.release.set()
    assert sink.flush(10)
    assert sink.delivered == 6
    assert [q["json"]["key"] for q in r.requests] == [f"t-{n}" for n in range(6)]


def test_close_flushes_then_later_events_are_dropped(receivers, webhooks):
    r = receivers()
    sink = webhooks(r.url)
    for n in range(3):
        sink(ev(n=n))
    assert sink.close(5)
    assert sink.delivered == 3
    sink(ev(n=9))
    assert sink.dropped_queue_full == 1
    assert len(r.requests) == 3


def test_close_cuts_retries_short(receivers, webhooks):
    r = receivers([500] * 100)
    sink = webhooks(r.url, attempts=100, backoff=5.0, max_backoff=5.0)
    sink(ev())
    assert r.got_request.wait(5)
    assert sink.flush(0.05) is False  # waiting out a 5 s backoff
    assert sink.close(0.05) is False
    assert sink.flush(5)  # the backoff wait was interrupted and the event given up
    assert sink.dropped_failed == 1 and r.attempts < 100


def test_kinds_filter(receivers, webhooks):
    r = receivers()
    sink = webhooks(r.url, kinds=("tripped",))
    sink(ev("threshold"))
    sink(ev("tripped"))
    assert sink.flush(5)
    assert [q["json"]["kind"] for q in r.requests] == ["tripped"]


def test_a_sink_is_safe_to_call_from_many_threads(receivers, webhooks):
    r = receivers()
    sink = webhooks(r.url, max_queue=1000)
    threads = [threading.Thread(target=lambda k=k: [sink(ev(n=k * 10 + i)) for i in range(10)]) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sink.flush(10)
    assert sink.delivered == 80 and len({q["json"]["key"] for q in r.requests}) == 80


def test_close_with_a_backlog_drops_and_counts_what_is_left(receivers, webhooks):
    r = receivers(hang=True)
    sink = webhooks(r.url, max_queue=10, timeout=5.0)
    sink(ev(n=0))
    assert r.got_request.wait(5)
    for n in range(1, 11):
        sink(ev(n=n))  # the queue is now full behind the hanging delivery
    assert sink.close(0.05) is False
    r.release.set()  # the first delivery completes; the ten behind it are given up
    assert sink.flush(10)
    assert sink.delivered == 1 and sink.dropped_queue_full == 10
    assert len(r.requests) == 1
