"""The webhook sink: POST events as JSON or as Slack messages, off the calling thread.

Why the shape: an alert fires from inside an agent's model call (often at
the very moment it is being killed), so delivering it must never block or
crash that call. The sink only puts the event on a bounded queue; one daemon
thread per sink renders and POSTs it, retrying failures with tenacity
(exponential backoff with jitter, bounded attempts). When the queue is full
or the retries run out the event is dropped, counted and logged. A flood
cannot grow memory without bound, and a dead receiver costs the agent nothing.

HTTP goes through the standard library's ``urllib.request``: the sink runs in
its own thread, so a blocking client is fine, and the core library gains no
dependency. Redirects are not followed (a redirect could carry the secret
headers elsewhere), and loopback URLs never go through a proxy.

Secrets: header values and the URL's path and query (Slack webhook URLs are
secrets themselves) are never logged nor shown in ``repr``, in an error or in an
exception's text; logs name the receiver by scheme and host only. A payload has
URL credentials scrubbed (``breaker.redact``) before it leaves, in case an event's
text quotes one.
"""

from __future__ import annotations

import atexit
import http.client
import ipaddress
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Any, Mapping

from ..checks import seconds, whole
from ..errors import ConfigError
from ..events import EVENT_KINDS, Event
from ..redact import scrub
from .slack import slack_message

__all__ = ["Webhook"]

log = logging.getLogger("breaker")

_STOP = object()
_LOG_EVERY = 10.0  # seconds between two "dropped" log lines while a flood lasts
_ATEXIT_BUDGET = 3.0  # seconds, for all webhooks together, at interpreter exit


class _Retryable(Exception):
    """A delivery failure worth another attempt (network error, timeout, 408, 429, 5xx)."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class _Permanent(Exception):
    """A delivery failure that another attempt would not fix (4xx, redirects)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError, treated as permanent


class Webhook:
    """POST each event to ``url``: JSON (``Event.as_dict()``) or a Slack message.

    Args:
        url: ``https://…``; plain ``http`` is accepted only for a loopback host
            (``localhost``, ``127.0.0.0/8``, ``::1``).
        headers: extra request headers, e.g. ``{"Authorization": "Bearer …"}``.
            Their values are never logged.
        format: ``"json"`` or ``"slack"`` (an incoming-webhook payload with a
            readable ``text`` and blocks).
        kinds: only these event kinds (default: all). ``session_end`` fires
            for every session; leave it out of a Slack channel with
            ``kinds=("threshold", "degraded", "tripped", "loop", "unknown_price", "ledger_error")``.
        timeout: seconds for each HTTP attempt (connect and each read).
        attempts: attempts per event, the first included.
        backoff, max_backoff: exponential backoff with full jitter between
            attempts: a random wait up to ``backoff * 2**n``, capped.
        max_queue: events waiting for delivery; beyond it new events are dropped.

    Counters (read them, e.g. in tests or a health check): ``delivered``,
    ``retries``, ``dropped_queue_full``, ``dropped_failed`` and their sum
    ``dropped``.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        format: str = "json",
        *,
        kinds: tuple[str, ...] | None = None,
        timeout: float = 5.0,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_queue: int = 1000,
    ) -> None:
        self._url = url
        self._where = _check_url(url)
        parts = urllib.parse.urlsplit(url)
        # the URL's secret parts, longest first, so nothing that quotes them is shown whole
        self._secrets = sorted({p for p in (parts.path, parts.query, parts.fragment, url) if len(p) > 1},
                               key=len, reverse=True)
        self._loopback = _is_loopback(urllib.parse.urlsplit(url).hostname or "")
        self._headers = _check_headers(headers)
        if format not in ("json", "slack"):
            raise ConfigError(f"Webhook(format={format!r}): use 'json' or 'slack'")
        self.format = format
        if kinds is None:
            kinds = EVENT_KINDS
        unknown = set(kinds) - set(EVENT_KINDS)
        if unknown:
            raise ConfigError(f"Webhook(kinds=...) has unknown kinds {sorted(unknown)}; known: {', '.join(EVENT_KINDS)}")
        self.kinds = frozenset(kinds)
        # finite and in range: NaN would make every attempt fail (or wait) in ways nothing reports
        self.timeout = seconds("timeout", timeout, owner="Webhook", high=300.0, zero=False, example="5.0")
        self.backoff = seconds("backoff", backoff, owner="Webhook", high=3600.0, example="0.5")
        self.max_backoff = seconds("max_backoff", max_backoff, owner="Webhook", example="30.0")
        self.attempts = whole("attempts", attempts, owner="Webhook", high=100, example="5")
        self.max_queue = whole("max_queue", max_queue, owner="Webhook", high=10_000_000, example="1000")

        self.delivered = 0
        self.retries = 0
        self.dropped_queue_full = 0
        self.dropped_failed = 0

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued + being delivered
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = threading.Event()
        self._last_drop_log = float("-inf")
        self._opener = urllib.request.build_opener(
            _NoRedirect, *((urllib.request.ProxyHandler({}),) if self._loopback else ())
        )
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Webhook({self._where!r}, format={self.format!r})"

    @property
    def dropped(self) -> int:
        """Events that were never delivered: queue full plus retries exhausted."""
        return self.dropped_queue_full + self.dropped_failed

    # ------------------------------------------------------------------ the calling side
    def __call__(self, event: Event) -> None:
        """Queue ``event`` for delivery; never blocks, never raises for delivery problems."""
        if event.kind not in self.kinds:
            return
        if self._closed.is_set():
            self._drop("queue_full", "the sink is closed", event)
            return
        self._ensure_worker()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._pending -= 1
            self._drop("queue_full", f"its queue of {self.max_queue} events is full", event)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is delivered or dropped; ``False`` on timeout."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (bounded by ``timeout``), then stop the worker. Later events are dropped.

        Returns whether everything queued was delivered or dropped in time.
        """
        flushed = self.flush(timeout)
        self._closed.set()  # also cuts short any backoff wait
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass
            thread.join(max(0.0, min(timeout, self.timeout)))
        _LIVE.discard(self)
        return flushed

    # ------------------------------------------------------------------ the worker
    def _ensure_worker(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the worker did not survive; start afresh
                self._pid = os.getpid()
                self._queue = queue.Queue(self.max_queue)
                self._pending = 0
                self._thread = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"breaker-webhook-{self._where}", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._queue
        while True:
            event = q.get()
            if event is _STOP:
                self._drain(q)
                return
            try:
                if self._closed.is_set():  # close() gave up waiting: what is left is dropped, and counted
                    self._drop("queue_full", "the sink was closed before it could be sent", event)
                else:
                    self._deliver(event)
            except BaseException as e:  # the worker must outlive anything one event does
                # no traceback: an exception's text (and its chain's) can quote the secret URL
                log.error("webhook %s: unexpected error delivering a %s event: %s: %s",
                          self._where, event.kind, type(e).__name__, self._hide(str(e)))
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()
            if self._closed.is_set() and q.empty():
                return

    def _drain(self, q: queue.Queue[Any]) -> None:
        """After close: events that slipped in behind the stop marker are dropped, and counted."""
        while True:
            try:
                event = q.get_nowait()
            except queue.Empty:
                return
            if event is _STOP:
                continue
            self._drop("queue_full", "the sink is closed", event)
            with self._idle:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()

    def _deliver(self, event: Event) -> None:
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_when_event_set,
            wait_random_exponential,
        )

        body = self._render(event)

        def wait(state: Any) -> float:
            jittered = wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)(state)
            exc = state.outcome.exception() if state.outcome is not None else None
            after = getattr(exc, "retry_after", None)
            return min(max(jittered, after or 0.0), self.max_backoff)

        def before_sleep(state: Any) -> None:
            self.retries += 1

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts) | stop_when_event_set(self._closed),  # close() stops the retries
            wait=wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=False,
        )
        try:
            retrying(self._post, body)
        except RetryError as e:
            self._drop("failed", self._hide(f"{e.last_attempt.exception()} (after {e.last_attempt.attempt_number} "
                                            f"attempts)"), event)
        except _Permanent as e:
            self._drop("failed", self._hide(str(e)), event)
        else:
            self.delivered += 1

    def _sleep(self, seconds: float) -> None:
        self._closed.wait(seconds)  # close() cuts the wait short

    def _render(self, event: Event) -> bytes:
        payload = slack_message(event) if self.format == "slack" else event.as_dict()
        return scrub(json.dumps(payload, default=str, ensure_ascii=False)).encode("utf-8")

    def _hide(self, text: str) -> str:
        """``text`` with this sink's URL, path and query replaced by ``…``."""
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self._url, data=body, method="POST", headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
            if status in (408, 425, 429) or status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after(e.headers.get("Retry-After") if e.headers else None)) from None
            raise _Permanent(f"HTTP {status}") from None
        except (urllib.error.URLError, OSError) as e:  # refused, reset, DNS, timeout
            reason = getattr(e, "reason", e)
            raise _Retryable(self._hide(f"{type(reason).__name__}: {reason}")) from None
        except http.client.HTTPException as e:  # a garbled status line, a cut-off body
            raise _Retryable(type(e).__name__) from None

    def _drop(self, why: str, detail: str, event: Event) -> None:
        """Count a lost event and say so in the log (a flood logs once per ``_LOG_EVERY`` seconds)."""
        with self._lock:
            if why == "queue_full":
                self.dropped_queue_full += 1
                now = time.monotonic()
                if now - self._last_drop_log < _LOG_EVERY:
                    return
                self._last_drop_log = now
            else:
                self.dropped_failed += 1
            total = self.dropped_queue_full + self.dropped_failed
        log.warning("webhook %s dropped a %s event: %s (%d dropped so far)", self._where, event.kind, detail, total)


def _check_url(url: Any) -> str:
    """Validate ``url``; return the part safe to log (scheme, host, port)."""
    if not isinstance(url, str):
        raise ConfigError(f"Webhook(url) must be a string, got {type(url).__name__}")
    if not url.isprintable() or any(c.isspace() for c in url):  # the URL is not echoed: it is a secret
        raise ConfigError("Webhook(url) has a space or a control character in it; copy the URL again")
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port or IPv6 literal; the message would quote part of the URL
        raise ConfigError("Webhook(url) is not a valid URL (check its host and port)") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(
            "Webhook(url) must be an absolute https:// URL such as 'https://hooks.slack.com/services/…'"
        )
    if parts.username or parts.password:
        raise ConfigError("Webhook(url) must not carry credentials in the URL; pass headers={'Authorization': ...}")
    where = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            f"Webhook({where}/…): https is required unless the host is loopback (localhost, 127.0.0.1, ::1); "
            f"alerts carry spend figures and your headers carry secrets. Use an https:// URL."
        )
    return where


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {"Content-Type": "application/json", "User-Agent": "agent-cost-breaker"}
    for name, value in dict(headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"Webhook(headers=...): header {name!r} must map a string to a string")
        if any(c in name for c in "\r\n:") or not name.strip() or any(c in value for c in "\r\n"):
            # the value is not echoed: it is probably a secret
            raise ConfigError(f"Webhook(headers=...): header {name!r} has a line break or a bad name")
        out[name] = value
    return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: let the backoff decide


_LIVE: weakref.WeakSet[Webhook] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    """Give queued alerts a bounded chance to leave at exit (the one that says why the run died matters)."""
    deadline = time.monotonic() + _ATEXIT_BUDGET
    for sink in list(_LIVE):
        sink.close(max(0.0, deadline - time.monotonic()))
