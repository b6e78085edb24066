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


class RedisClusterServers:
    """A Redis Cluster of ``n`` primaries on loopback, the hash slots split evenly between them.

    Each node also listens on its port + 10000 (the cluster bus), so ports are drawn where both are free.
    """

    def __init__(self, n: int = 2) -> None:
        self.ports = [_cluster_port() for _ in range(n)]
        self.dir = tempfile.mkdtemp(prefix="breaker-cluster-")
        self.procs: list[subprocess.Popen[bytes]] = []

    def url(self, node: int) -> str:
        return f"redis://127.0.0.1:{self.ports[node]}/0"

    def start(self) -> "RedisClusterServers":
        import redis

        for port in self.ports:
            where = os.path.join(self.dir, str(port))
            os.mkdir(where)
            self.procs.append(subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", os.path.join(where, "nodes.conf"), "--dir", where, "--save", "",
                 "--appendonly", "no", "--protected-mode", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        nodes = []
        for port in self.ports:
            node = redis.Redis(port=port, socket_timeout=2)
            deadline = time.monotonic() + 10
            while True:
                try:
                    node.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            nodes.append(node)
        per = 16384 // len(nodes)
        for i, node in enumerate(nodes):
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, 16383 if i == len(nodes) - 1 else (i + 1) * per - 1)
        for node in nodes[1:]:
            node.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            infos = [node.execute_command("CLUSTER", "INFO").decode() for node in nodes]
            if all("cluster_state:ok" in i and f"cluster_known_nodes:{len(nodes)}" in i for i in infos):
                return self
            time.sleep(0.05)
        raise RuntimeError("the Redis Cluster did not form within 15s")

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_port() -> int:
    import random

    while True:
        port = random.randint(20_000, 50_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
