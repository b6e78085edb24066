"""Reservations that last as long as their call: renewed while the call is alive.

A persistent ledger gives every reservation an expiry (``hold_ttl``), so
that a worker that crashes mid-call does not hold the budget forever. But a
call may legitimately outlive any fixed expiry (a long reasoning request, a
stream read for an hour): once its reservation lapses, another call is
admitted against the same money, and both are billed. So ``Resilient``
tracks the reservations of the calls in flight in this process and pushes
their expiry back, every third of ``hold_ttl``, to a full ``hold_ttl`` from
now:

* by a background thread (one per ledger, started with the first
  reservation, gone after a minute with none), on the engine's clock;
* and, when that thread is late by another third of ``hold_ttl`` (a paused
  process, a clock moved by ``Breaker(clock=...)``), by the next call of this
  process before it reserves, so no call is ever admitted against a hold its
  own process let lapse.

A reservation is renewed only while its call still references it (the
``Ticket`` holds the ``Hold``; this module keeps a weak reference), and for
at most ``MAX_HOLD`` seconds: a call abandoned without settling stops being
renewed once it is garbage, and then expires like a crashed worker's.

What this cannot do: renew for a process that is stopped (SIGSTOP, a VM
paused, a laptop asleep) longer than two thirds of ``hold_ttl``; its
reservations lapse and are given back, as a crashed worker's would be.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from typing import Any, Callable

from ..forks import after_fork
from .base import Counter, Hold

__all__ = ["MAX_HOLD", "Renewer"]

log = logging.getLogger("breaker")

MAX_HOLD = 86_400.0
"""Seconds a reservation is renewed at most (a call that outlives a day is treated as abandoned)."""

_IDLE_EXIT = 60.0  # wall seconds the thread lingers with nothing to renew
_MAX_SLEEP = 30.0  # wall seconds between checks at most (the engine's clock may be a test's)


class _Live:
    __slots__ = ("ref", "counters", "ttl", "born", "due")

    def __init__(self, hold: Hold, counters: tuple[Counter, ...], ttl: float, now: float) -> None:
        self.ref = weakref.ref(hold)
        self.counters = counters
        self.ttl = ttl
        self.born = now
        self.due = now + ttl / 3


class Renewer:
    """Renews the reservations of one ledger's calls in flight (see the module docstring).

    ``ledger.renew(holds, now)`` takes ``[(hold, counters, ttl), ...]``, sets
    each expiry to ``now + ttl`` and returns the ids it still held.
    """

    def __init__(self, ledger: Any, clock: Callable[[], float]) -> None:
        self.ledger = ledger
        self.clock = clock
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._late = math.inf  # engine time from which the thread counts as late: callers renew
        self._failing = False
        self.lapsed = 0  # reservations found given back when renewed (for tests and diagnostics)
        after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the parent renews its own calls' reservations; the child has none yet."""
        self._live = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._late = math.inf

    # ------------------------------------------------------------------ the calls' side
    def track(self, hold: Hold, counters: tuple[Counter, ...], ttl: float, now: float) -> None:
        """Keep ``hold`` (just granted, expiring at ``now + ttl``) alive while its call is."""
        entry = _Live(hold, counters, ttl, now)
        start = False
        with self._lock:
            self._live[hold.id] = entry
            self._late = min(self._late, entry.due + ttl / 3)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="breaker-renew", daemon=True)
                start = True
        if start:
            self._thread.start()  # type: ignore[union-attr]

    def forget(self, handle: Any) -> None:
        """The call settled (or gave its reservation back): stop renewing it."""
        if isinstance(handle, Hold) and handle.id in self._live:
            with self._lock:
                self._live.pop(handle.id, None)

    def renew_if_late(self, now: float) -> None:
        """Renew on the caller's path when the thread is late (see the module docstring)."""
        if now >= self._late:
            self.renew(now)

    # ------------------------------------------------------------------ the work
    def renew(self, now: float | None = None) -> int:
        """Renew every tracked reservation that is due; returns how many the store still held."""
        now = self.clock() if now is None else now
        due: list[tuple[Hold, _Live]] = []
        with self._lock:
            for hid, entry in list(self._live.items()):
                hold = entry.ref()
                if hold is None or now - entry.born >= MAX_HOLD:  # abandoned: let it expire
                    del self._live[hid]
                elif entry.due <= now:
                    due.append((hold, entry))
            if not due:
                self._late = self._next_late()
                return 0
        try:
            found = self.ledger.renew([(hold, entry.counters, entry.ttl) for hold, entry in due], now)
        except Exception as e:  # the store is down or refusing: try again at the next tick
            if not self._failing:
                self._failing = True
                log.warning("breaker: could not renew %d reservation(s) of calls in flight (%s); retrying. A call "
                            "that outlives its reservation while this lasts may be joined by others on the same "
                            "budget.", len(due), e)
            with self._lock:
                retry = min(entry.ttl for _, entry in due) / 6
                for _, entry in due:
                    entry.due = now + retry
                self._late = self._next_late()
            return 0
        self._failing = False
        lapsed = 0
        with self._lock:
            for hold, entry in due:
                if hold.id in found:
                    entry.due = now + entry.ttl / 3
                elif self._live.pop(hold.id, None) is not None:  # given back already: nothing to renew
                    lapsed += 1
            self._late = self._next_late()
        if lapsed:
            self.lapsed += lapsed
            log.warning("breaker: %d reservation(s) of calls still in flight had expired and been given back "
                        "before they could be renewed (this process was paused, or could not reach the store, for "
                        "longer than their hold_ttl); those calls are billed when they settle, but others may have "
                        "been admitted against the same budget meanwhile.", lapsed)
        return len(found)

    def _next_late(self) -> float:
        return min((e.due + e.ttl / 3 for e in self._live.values()), default=math.inf)

    def _run(self) -> None:
        idle = 0.0
        while True:
            with self._lock:
                if self._closed or (not self._live and idle >= _IDLE_EXIT):
                    self._thread = None
                    return
                now = self.clock()
                wait = min((e.due - now for e in self._live.values()), default=_IDLE_EXIT)
            wait = min(max(wait, 0.01), _MAX_SLEEP)
            started = time.monotonic()
            self._wake.wait(wait)
            self._wake.clear()
            idle = idle + (time.monotonic() - started) if not self._live else 0.0
            try:
                self.renew()
            except Exception:  # pragma: no cover - never let the thread die
                log.exception("breaker: renewing reservations failed")

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
