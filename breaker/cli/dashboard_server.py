"""The dashboard's HTTP side: GET only, strict headers on every response, its own Host only.

Kept apart from ``dashboard`` so that ``http.server`` is imported when a
dashboard runs, not by every ``breaker`` command.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ..redact import scrub
from ._common import CliError, parse_since
from .dashboard_page import render_error, render_page, static_file

__all__ = ["CSP", "HEADERS", "Handler", "Server", "Source"]

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


class Source(Protocol):
    """What the handler asks of the dashboard (``dashboard.Dashboard``)."""

    ledger: str
    since: str | None
    refresh: int

    def summary(self, since: str | None, top: int = 0) -> dict[str, Any]: ...

    def allowed_host(self, header: str | None) -> bool: ...


class Server(ThreadingHTTPServer):
    """One thread per request (a slow ledger read does not hold up the next), none outliving the process."""

    daemon_threads = True
    dashboard: Source


class Handler(BaseHTTPRequestHandler):
    """GET only: the page, its stylesheet and the JSON summary; anything else is refused."""

    server: Server
    server_version = "breaker-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def end_headers(self) -> None:
        for name, value in HEADERS:  # on every response, error pages included
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a dashboard left open reloads every few seconds."""

    def do_GET(self) -> None:
        dashboard = self.server.dashboard
        if not dashboard.allowed_host(self.headers.get("Host")):
            self._send(421, "text/plain; charset=utf-8", b"this dashboard answers to its own address only\n")
            return
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        since = (query["since"][-1] or None) if "since" in query else dashboard.since
        try:
            parse_since(since, time.time())
        except CliError as e:
            self._send(400, "text/plain; charset=utf-8", f"{e}\n".encode())
            return
        try:
            if parts.path == "/":
                self._page(dashboard, since)
            elif parts.path == "/api/summary":
                self._summary(dashboard, since, query.get("top", ["0"])[-1])
            elif parts.path == "/dashboard.css":
                self._send(200, "text/css; charset=utf-8", static_file("dashboard.css").encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try / or /api/summary\n")
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._send(500, "text/plain; charset=utf-8", b"the dashboard failed on this request; its log says why\n")

    def _page(self, dashboard: Source, since: str | None) -> None:
        try:
            page = render_page(dashboard.summary(since), since=since, refresh=dashboard.refresh)
        except CliError as e:
            page = render_error(str(e), since=since, ledger=scrub(dashboard.ledger), refresh=dashboard.refresh)
        self._send(200, "text/html; charset=utf-8", page.encode())

    def _summary(self, dashboard: Source, since: str | None, top_text: str) -> None:
        if not (top_text.isascii() and top_text.isdigit() and len(top_text) <= 9):
            self._json(400, {"error": f"top={top_text!r}: give a whole number of rows per group (0: all)"})
            return
        try:
            data = dashboard.summary(since, int(top_text))
        except CliError as e:
            self._json(404, {"error": str(e)})
            return
        self._json(200, data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, "application/json", json.dumps(payload, indent=1, default=str).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _refuse(self) -> None:
        self.close_connection = True  # its body, if any, is left unread
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        body = b"read-only: GET and HEAD only\n"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse
