"""A real loopback HTTP receiver for webhook tests (stdlib ``http.server`` on 127.0.0.1).

Its behaviour is scripted per request: a list of status codes to answer in
turn (then 200), and an optional ``hang`` event that holds every request
until it is set (bounded, so a failing test cannot hang the suite).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int] | None = None, *, hang: bool = False, retry_after: str | None = None) -> None:
        self.statuses = list(statuses or [])
        self.retry_after = retry_after
        self.requests: list[dict[str, Any]] = []  # answered with 2xx
        self.attempts = 0
        self.release = threading.Event()
        self.got_request = threading.Event()
        if not hang:
            self.release.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.attempts += 1
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.got_request.set()
                receiver.release.wait(10)  # bounded: never hang the suite
                if status < 300:  # recorded before answering: once the sink counts it delivered, it is here
                    with receiver._lock:
                        receiver.requests.append(
                            {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                        )
                try:
                    self.send_response(status)
                    if status == 429 and receiver.retry_after is not None:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    return  # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook/SECRET-PATH-T0K3N"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
