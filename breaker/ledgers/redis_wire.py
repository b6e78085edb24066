"""The Redis ledger's own path for its scripts: ``EVALSHA`` written straight onto a connection of its
client's pool.

Why: redis-py's command path (``Script.__call__`` → ``execute_command``: the pool's checkout with its
pending-data poll, retry and event wrappers, its metrics hooks, its general argument packer) costs the
client more than the round trip's own work, about 40 µs of CPU a command on the 2-vCPU VM of
``benchmarks/bench_ledgers.py``, and a call is two commands. This path sends the same bytes and reads
the reply with redis-py's own connection and parser; what it leaves out is what the ledger does not
need: its connections are used by one thread at a time and left clean (a reply read whole, or the
connection dropped on an error, by redis-py's ``Connection``; one the server closed is made again
before use), and it does not retry (a client the ledger builds is made with ``retries=0``: the journal
in ``ledgers.resilient`` is the retry).

Used only on a plain client the ledger built from a URL, whose pool it owns; a client passed in (its
own retries, pool limits or hooks) and a cluster client keep redis-py's path.
"""

from __future__ import annotations

from typing import Any, Sequence

from redis.exceptions import NoScriptError, ResponseError  # this module is imported with redis installed

__all__ = ["Wire", "pack"]


def _fresh(conn: Any) -> None:
    """A kept connection (it read its last reply whole) that the server closed since (a restart, its idle
    ``timeout``), or that holds data nobody asked for, is made again before a command goes on it, as
    redis-py's pool checks each connection it hands out: a command sent on it would fail though the server
    is up, and fail as "maybe applied" (the error comes after the send). One poll of the socket, ~4 µs."""
    try:
        if not conn.can_read():
            return
    except Exception:  # redis-py's ConnectionError/TimeoutError: the socket is gone
        pass
    conn.disconnect()


def pack(args: Sequence[Any]) -> bytes:
    """``args`` as one RESP array of bulk strings: text as UTF-8, numbers as ``repr`` (as redis-py's
    encoder writes them)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bytes):
            b = a
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            b = repr(a).encode()
        else:
            raise TypeError(f"a Redis command argument must be text, bytes or a number, not {type(a).__name__}")
        out += (b"$%d\r\n" % len(b), b, b"\r\n")
    return b"".join(out)


class Wire:
    """Scripts run on connections made by ``pool`` (``ConnectionPool.make_connection``, so with its host,
    credentials, TLS and timeouts) and kept idle in a list: ``list.pop``/``append`` are atomic, so
    threads share it without a lock, and no connection is used by two threads at once."""

    def __init__(self, pool: Any, load: Any) -> None:
        self._pool = pool
        self._load = load  # load(script): SCRIPT LOAD on this server (after NOSCRIPT: a restart, SCRIPT FLUSH)
        self._idle: list[Any] = []

    def evalsha(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``script`` (a redis-py ``Script``: its ``sha`` and source) on ``keys`` and ``args``; the reply
        as redis-py parses it. Errors are redis-py's own (``ResponseError``, ``ConnectionError``, ...)."""
        command = pack(["EVALSHA", script.sha, len(keys), *keys, *args])
        try:
            return self._send(command)
        except NoScriptError:
            self._load(script)
            return self._send(command)

    def _send(self, command: bytes) -> Any:
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self._pool.make_connection()
        else:
            _fresh(conn)
        try:
            conn.send_packed_command([command], check_health=False)
            reply = conn.read_response()
        except ResponseError:  # the error reply was read whole: the connection is clean
            self._idle.append(conn)
            raise
        except BaseException:  # not kept: redis-py has dropped its socket, or a reply may be half read
            conn.disconnect()
            raise
        self._idle.append(conn)
        return reply

    def forget(self) -> None:
        """In a forked child: the parent's connections are left unused (redis-py's ``disconnect`` does not
        shut down a socket another process made)."""
        self._idle = []

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.disconnect()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
