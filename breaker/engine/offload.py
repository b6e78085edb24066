"""Off-loading: async callers wait for a blocking ledger off the event loop.

A SQLite or Redis ledger answers in a round trip (``ledger.blocking``); an
async caller that made it on the event loop would stall every other task.
Such round trips run in the engine's worker threads instead. Two pools, so
settlements (which free reservations) never queue behind admissions that are
retrying while reservations stand in their way.

Fork-safe: a forked child inherits the pools but not their threads, so its
work would queue forever; the child drops them and makes its own on first use
(``breaker.forks``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..forks import after_fork

__all__ = ["Offload"]

_WORKERS = 8


class Offload:
    __slots__ = ("blocking", "_pools", "_lock", "__weakref__")

    def __init__(self, blocking: bool) -> None:
        self.blocking = blocking  # False (Memory): run on the calling thread, no pool at all
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        if blocking:
            after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent's pools have no threads here (never shut them down: that
        would wait for threads that do not exist); new ones are made on first use."""
        self._pools = {}
        self._lock = threading.Lock()

    def pool(self, purpose: str) -> ThreadPoolExecutor:
        pool = self._pools.get(purpose)
        if pool is None:
            with self._lock:
                pool = self._pools.get(purpose)
                if pool is None:
                    pool = self._pools[purpose] = ThreadPoolExecutor(
                        max_workers=_WORKERS, thread_name_prefix=f"breaker-{purpose}")
        return pool

    async def run(self, purpose: str, fn: Callable[[], Any], *, orphan: Callable[[Any], Any] | None = None) -> Any:
        """Run ``fn()`` (a ledger round trip) in the ``purpose`` pool and await it.

        The work is shielded: a cancelled caller does not interrupt a reservation or a
        settlement halfway. A result whose caller is gone by the time it is ready is given
        to ``orphan`` (``release`` for a granted ticket), so a cancellation never leaks a
        reservation.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool(purpose), contextvars.copy_context().run, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if orphan is not None:
                def give_back(done: asyncio.Future[Any]) -> None:
                    if not done.cancelled() and done.exception() is None and done.result() is not None:
                        self.pool("settle").submit(orphan, done.result())

                future.add_done_callback(give_back)
            raise
