"""A real ``redis-server`` for the tests: started on a free loopback port in a tmp dir, stopped after.

No persistence (``--save "" --appendonly no``): an outage test that stops and
restarts it starts from an empty store, like a cache that lost its memory --
the harshest case for the journal -- unless it asks to keep the data (``keep=True``
dumps to an RDB file on shutdown and loads it on start).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process (``start``, ``stop``, ``restart`` on the same port)."""

    def __init__(self, port: int | None = None, *, keep: bool = False) -> None:
        self.port = port or free_port()
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="breaker-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        save = ["--save", "", "--dbfilename", "dump.rdb"] if self.keep else ["--save", ""]
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no", *save],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.keep:
            try:  # SHUTDOWN SAVE writes the RDB the next start loads
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"SHUTDOWN SAVE\r\n")
                    s.recv(16)
            except OSError:
                pass
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
