"""``breaker dashboard``: a local, read-only page of where the money went.

It serves one page and one JSON document from a ledger's call records, with
the standard library only (``http.server`` in a thread): ``/`` (spend over
time by feature and model, spend per scope, trips, top sessions, cost per
outcome, degraded calls) and ``/api/summary`` (the same figures as
``breaker report --format json``, built by the same code). Every request
reads the ledger afresh, so the page is live; nothing is ever written.

It listens on loopback unless told otherwise, because the page has no login:
a ``--host`` that other machines can reach needs ``--public``. On loopback it
also refuses requests that name another host in their ``Host`` header (a web
page that re-points its own domain at 127.0.0.1 cannot read the figures).
The ledger's ids are untrusted text: the page escapes them, the JSON is
``json.dumps``'d, and every response carries a Content-Security-Policy that
allows no script at all.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..redact import scrub
from ._common import CliError, add_ledger_arguments, open_ledger, parse_since, read_history

if TYPE_CHECKING:
    from .dashboard_server import Server

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Dashboard", "add_parser", "is_loopback", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_REFRESH = 30
HELP = "a local, read-only web page of spend, trips and outcomes, from a ledger"
DESCRIPTION = """\
Serve a read-only dashboard of a ledger on this machine: spend over time by
feature and by model, spend per scope, trips, the dearest sessions, cost per
outcome and degraded calls, refreshed as calls are recorded. GET /api/summary
returns the same figures as JSON (those of `breaker report --format json`).

It listens on 127.0.0.1 by default. The page has no login: to let other
machines see it, pass a --host they can reach *and* --public."""

EXAMPLES = """\
examples:
  breaker dashboard --ledger breaker.db
  breaker dashboard --ledger redis://localhost:6379/0 --since 7d --port 9000
  curl -s http://127.0.0.1:8765/api/summary"""


def add_parser(sub: Any) -> None:
    """Register ``breaker dashboard``."""
    p = sub.add_parser("dashboard", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--host", default=DEFAULT_HOST, metavar="ADDR",
                   help=f"the address to listen on (default: {DEFAULT_HOST}; anything but loopback needs --public)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, metavar="N",
                   help=f"the port (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--public", action="store_true",
                   help="allow a --host other machines can reach: anyone who reaches it sees the figures (no login)")
    p.add_argument("--since", metavar="WHEN", help="the range shown by default: a duration back from now (1h, 7d) "
                   "or an ISO date/time (UTC); the page can change it")
    p.add_argument("--refresh", type=_refresh, default=DEFAULT_REFRESH, metavar="SECONDS",
                   help=f"how often the page reloads itself (default: {DEFAULT_REFRESH})")
    p.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 (any free port) and 65535")
    return n


def _refresh(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 second or more")
    return n


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 (via ``CliError``) for a bad ledger, host or port."""
    dashboard = Dashboard(args.ledger, prefix=args.prefix, host=args.host, port=args.port, since=args.since,
                          public=args.public, refresh=args.refresh)
    url = dashboard.start()
    print(f"breaker dashboard: serving {scrub(args.ledger)} at {url} (read-only; Ctrl-C stops it)", flush=True)
    if args.public:
        print(f"breaker dashboard: --public: anyone who can reach {args.host}:{dashboard.port} sees these figures; "
              f"the page has no login", file=sys.stderr, flush=True)
    try:
        dashboard.wait()
    except KeyboardInterrupt:
        print("breaker dashboard: stopped", file=sys.stderr)
    finally:
        dashboard.stop()
    return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, ``127.x.x.x``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The dashboard server: ``start()`` listens and serves in a daemon thread, ``stop()`` ends it.

    Construction checks what the user can get wrong (the host, ``since``,
    the ledger itself), so a mistyped path is a ``CliError`` before anything
    listens rather than an error page later.
    """

    def __init__(
        self, ledger: str, *, prefix: str = "breaker:", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
        since: str | None = None, public: bool = False, refresh: int = DEFAULT_REFRESH,
    ) -> None:
        if not public and not is_loopback(host):
            raise CliError(
                f"--host {host} is reachable from other machines and the dashboard has no login; "
                f"keep the default (--host {DEFAULT_HOST}) and reach it through an SSH tunnel, "
                f"or pass --public to serve it there anyway"
            )
        parse_since(since, time.time())
        ledger_obj = open_ledger(ledger, prefix)
        close = getattr(ledger_obj, "close", None)
        if close is not None:
            close()
        self.ledger, self.prefix, self.host, self.since = ledger, prefix, host, since
        self.public, self.refresh = public, refresh
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one picked, after ``start()`` with port 0)."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        return f"http://{self._named_host}:{self.port}/"

    @property
    def _named_host(self) -> str:
        """The host as a URL (and a ``Host`` header) writes it: ``[::1]`` for IPv6."""
        return f"[{self.host.strip('[]')}]" if ":" in self.host else self.host.lower()

    def start(self) -> str:
        """Listen and serve in a background thread; returns the page's URL."""
        from .dashboard_server import Handler, Server  # http.server: only when a dashboard runs

        if self._server is not None:
            return self.url
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("BoundServer", (Server,), {"address_family": family})
        try:
            self._server = server_class((self.host.strip("[]"), self._port), Handler)
        except OSError as e:
            raise CliError(f"cannot listen on {self.host}:{self._port}: {e.strerror or e}; "
                           f"pass another --port (0 picks a free one)") from None
        self._server.dashboard = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="breaker-dashboard", daemon=True)
        self._thread.start()
        return self.url

    def wait(self) -> None:
        """Block until the server stops (in short joins, so Ctrl-C reaches the main thread)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self, since: str | None, top: int = 0) -> dict[str, Any]:
        """``/api/summary``: the ledger read now (``CliError`` when there is nothing to show)."""
        from .dashboard_data import summary

        history = read_history(self.ledger, since, prefix=self.prefix)
        return summary(history, self.ledger, top=top)

    def allowed_host(self, header: str | None) -> bool:
        """Whether a request's ``Host`` header names this server (any, with ``--public``)."""
        if self.public:
            return True
        if not header:
            return False
        names = {"127.0.0.1", "localhost", "[::1]", self._named_host}
        return header.lower() in {f"{name}:{self.port}" for name in names}
