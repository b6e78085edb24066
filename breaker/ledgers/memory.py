"""The in-process ledger: a dict of counters under one lock.

Thread-safe and asyncio-safe (no operation awaits). Counters that have been
idle for ``idle_ttl`` and hold no reservation are forgotten (but not those of a calendar
period that has not ended), so a server that
sees a stream of short sessions stays flat in memory; the clock starts at a
counter's last activity, not at its creation, so an active session's spend is
never reset. For totals that outlive the process, use ``SQLite`` or ``Redis``.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import timedelta
from typing import Any, Iterable

from ..budgets import bucket_seconds, parse_period_key, parse_window
from ..forks import after_fork
from .base import (Ask, CallRecord, Counter, Grant, GrantRecord, LedgerBase, Limit, OutcomeRow, Totals, TripMark, Vec,
                   decide, in_scope)

__all__ = ["Memory"]


class _Ctr:
    __slots__ = ("settled", "reserved", "window", "bucket", "buckets", "trips", "touched", "granted")

    def __init__(self, window: int, now: float) -> None:
        self.settled = [0, 0, 0]
        self.reserved = [0, 0, 0]
        self.window = window
        self.bucket = bucket_seconds(window) if window else 0
        self.buckets: deque[list[int]] | None = deque() if window else None
        self.trips: dict[int, int] | None = None
        self.touched = now
        self.granted: list[int] | None = None  # operator grants (lifetime and period counters only)

    def expire(self, now: float) -> None:
        buckets = self.buckets
        if buckets:
            horizon = now - self.window - self.bucket
            settled = self.settled
            while buckets and buckets[0][0] <= horizon:
                _, usd, tok, calls = buckets.popleft()
                settled[0] -= usd
                settled[1] -= tok
                settled[2] -= calls

    def add(self, actual: Vec, now: float) -> None:
        settled = self.settled
        settled[0] += actual[0]
        settled[1] += actual[1]
        settled[2] += actual[2]
        buckets = self.buckets
        if buckets is not None:
            start = int(now // self.bucket) * self.bucket
            if buckets and buckets[-1][0] == start:
                b = buckets[-1]
                b[1] += actual[0]
                b[2] += actual[1]
                b[3] += actual[2]
            else:
                buckets.append([start, actual[0], actual[1], actual[2]])


def _current(key: str, now: float) -> bool:
    """Whether ``key`` is the counter of a calendar period that has not ended: kept however idle it is
    (a monthly budget must not restart after a quiet day)."""
    if "@" not in key:
        return False
    period = parse_period_key(key)
    return period is not None and period[2] > now


class Memory(LedgerBase):
    """Counters in this process's memory.

    Args:
        idle_ttl: forget a counter idle this long (and holding no reservation).
        keep_records: how many recent call records to keep for reports (0: none).
    """

    blocking = False  # no I/O, only a short lock: the engine calls it on the caller's thread, async or not

    def __init__(self, *, idle_ttl: str | timedelta | int = "24h", keep_records: int = 0) -> None:
        self.idle_ttl = parse_window(idle_ttl, what="Memory(idle_ttl)")
        self._lock = threading.Lock()
        self._ctrs: dict[tuple[str, int], _Ctr] = {}
        # A session's plan hands over the same counters tuple on every call:
        # resolve it to counter objects once (until the next sweep).
        self._resolved: dict[int, tuple[tuple[Counter, ...], list[_Ctr], list[_Ctr]]] = {}
        self._records: deque[CallRecord] = deque(maxlen=keep_records or None)
        self.wants_records = keep_records > 0
        self._outcomes: deque[OutcomeRow] = deque(maxlen=100_000)
        self._grants: deque[GrantRecord] = deque(maxlen=10_000)
        self._tripped_at: dict[tuple[str, int, int], float] = {}  # when each trip marker was set
        self._sweep_every = max(1.0, min(self.idle_ttl / 4, 60.0))
        self._next_sweep = 0.0
        after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the lock may have been held by a parent thread at the fork."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many counters are held (for memory checks)."""
        return len(self._ctrs)

    def _get(self, counter: Counter, now: float) -> _Ctr:
        key = (counter.key, counter.window)
        ctr = self._ctrs.get(key)
        if ctr is None:
            ctr = self._ctrs[key] = _Ctr(counter.window, now)
        elif ctr.buckets:
            ctr.expire(now)
        ctr.touched = now
        return ctr

    def _resolve(self, counters: tuple[Counter, ...], now: float) -> list[_Ctr]:
        """The counter objects of a plan's counters tuple, windows aged to ``now``.

        Resolved once per tuple (until the next sweep) and cached with the
        windowed ones apart, so an ordinary call's admission does no lookups
        and ages only what has a window. ``touched`` is left to ``settle``
        (every admitted call settles; a counter holding a reservation is never swept).
        """
        if now >= self._next_sweep:
            self._sweep(now)
        hit = self._resolved.get(id(counters))
        if hit is None or hit[0] is not counters:
            hit = self._resolved[id(counters)] = self._lookup(counters, now)
        for ctr in hit[2]:
            if ctr.buckets:
                ctr.expire(now)
        return hit[1]

    def _lookup(self, counters: tuple[Counter, ...], now: float) -> tuple[tuple[Counter, ...], list[_Ctr], list[_Ctr]]:
        """``_resolve``'s cache entry for ``counters``: its counter objects, and the windowed ones apart.
        (Its own method: the comprehension captures ``self`` and ``now``, which would otherwise make
        closure cells on every ``_resolve``, cache hit or not.)"""
        ctrs = [self._get(c, now) for c in counters]
        return counters, ctrs, [c for c in ctrs if c.window]

    def reserve(self, ask: Ask, now: float) -> Grant:
        """The worst case reserved on every counter, or the refusal, in one atomic step.

        The usual call fits whole: no trip marker on its counters, and every limit has room for
        ``units_max`` beside the settled and reserved amounts. That is checked first, in one pass
        with no intermediate list, and it is exactly when ``decide`` grants ``units_max``; anything
        else (a trip marker, a cut, a refusal) is answered by ``decide`` (tests/ledgers/test_memory_fast.py).
        """
        with self._lock:
            ctrs = self._resolve(ask.counters, now)
            f, p, units = ask.fixed, ask.per_unit, ask.units_max
            worst = (f[0] + p[0] * units, f[1] + p[1] * units, f[2] + p[2] * units)
            settled: list[int] | None = [] if units >= ask.units_min else None
            if settled is not None:
                for lim in ask.limits:
                    ctr = ctrs[lim.counter]
                    m = lim.metric
                    s = ctr.settled[m] if ctr.granted is None else ctr.settled[m] - ctr.granted[m]
                    if ctr.trips or s + ctr.reserved[m] + worst[m] > lim.limit:
                        settled = None
                        break
                    settled.append(s)
            if settled is not None:
                grant = Grant("ok", units, -1, tuple(settled))
            else:
                grant = decide(ask, self._state(ask, ctrs))
                if grant.status != "ok":
                    return grant
                units = grant.units
                worst = (f[0] + p[0] * units, f[1] + p[1] * units, f[2] + p[2] * units)
            usd, tokens, calls = worst
            for ctr in ctrs:
                r = ctr.reserved
                r[0] += usd
                r[1] += tokens
                r[2] += calls
            grant.handle = (ctrs, usd, tokens, calls)
            return grant

    @staticmethod
    def _state(ask: Ask, ctrs: list[_Ctr]) -> list[tuple[int, int, bool]]:
        """``decide``'s view of the limits: ``(settled less granted, reserved, a trip marker blocks)`` each;
        a rolling window's marker is lifted once the window has room for what the tripped call needed under
        every limit on it."""
        state = []
        kept: set[tuple[int, int]] = set()  # (counter, metric) of markers that still block a limit
        for lim in ask.limits:
            ctr = ctrs[lim.counter]
            m = lim.metric
            s = ctr.settled[m]
            if ctr.granted is not None:
                s -= ctr.granted[m]
            trips = ctr.trips
            blocked = False
            if trips and m in trips:
                blocked = not ctr.window or s + trips[m] > lim.limit
                if blocked:
                    kept.add((lim.counter, m))
            state.append((s, ctr.reserved[m], blocked))
        for lim in ask.limits:  # lifted only once every limit on it has room: the order of limits does not matter
            trips = ctrs[lim.counter].trips
            if trips and lim.metric in trips and (lim.counter, lim.metric) not in kept:
                del trips[lim.metric]
        return state

    def settle(
        self,
        handle: Any,
        counters: tuple[Counter, ...],
        limits: tuple[Limit, ...],
        actual: Vec,
        now: float,
        record: CallRecord | None = None,
    ) -> tuple[int, ...]:
        usd, tokens, calls = actual
        with self._lock:
            if handle is None:
                ctrs = self._resolve(counters, now)
                r_usd = r_tokens = r_calls = 0
            else:
                ctrs, r_usd, r_tokens, r_calls = handle
            for ctr in ctrs:  # one pass: give the reservation back, add the actual amounts
                r = ctr.reserved
                r[0] -= r_usd
                r[1] -= r_tokens
                r[2] -= r_calls
                if ctr.buckets is None:
                    settled = ctr.settled
                    settled[0] += usd
                    settled[1] += tokens
                    settled[2] += calls
                else:
                    ctr.expire(now)  # buckets may have aged out since the reservation
                    ctr.add(actual, now)
                ctr.touched = now
            if record is not None:
                self._records.append(record)
            out = []
            for lim in limits:
                ctr = ctrs[lim.counter]
                out.append(ctr.settled[lim.metric] - (ctr.granted[lim.metric] if ctr.granted is not None else 0))
            return tuple(out)

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        with self._lock:
            ctr = self._get(counter, now)
            if ctr.trips is None:
                ctr.trips = {}
            ctr.trips[metric] = needed
            self._tripped_at[(counter.key, counter.window, metric)] = now

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        out = []
        with self._lock:
            for c in counters:
                ctr = self._ctrs.get((c.key, c.window))
                if ctr is None:
                    out.append(Totals())
                    continue
                ctr.expire(now)
                out.append(Totals(tuple(ctr.settled), tuple(ctr.reserved),  # type: ignore[arg-type]
                                  tuple(ctr.granted) if ctr.granted is not None else (0, 0, 0)))  # type: ignore[arg-type]
        return out

    def grant(self, scope: str, amount: Vec, now: float, by: str) -> GrantRecord:
        with self._lock:
            mine = [(k, c) for k, c in self._ctrs.items() if in_scope(k[0], scope)]
            if not any(k == (scope, 0) for k, _ in mine):
                mine.append(((scope, 0), self._get(Counter(scope), now)))  # granted ahead of the scope's first call
            raised = lifted = 0
            for (key, window), ctr in mine:
                if ctr.trips:
                    lifted += len(ctr.trips)
                    for metric in ctr.trips:
                        self._tripped_at.pop((key, window, metric), None)
                    ctr.trips = None
                if window == 0:
                    g = ctr.granted = ctr.granted or [0, 0, 0]
                    g[0] += amount[0]
                    g[1] += amount[1]
                    g[2] += amount[2]
                    raised += 1
                ctr.touched = now
            record = GrantRecord(now, scope, amount[0], amount[1], amount[2], by, raised, lifted)
            self._grants.append(record)
            return record

    def grants(self, since: float | None = None) -> list[GrantRecord]:
        with self._lock:
            return [g for g in self._grants if since is None or g.at >= since]

    def trips(self, now: float, counters: Iterable[Counter] | None = None) -> list[TripMark]:
        with self._lock:
            if counters is None:
                found = list(self._ctrs.items())
            else:
                found = [((c.key, c.window), ctr) for c in counters if (ctr := self._ctrs.get((c.key, c.window)))]
            out = []
            for (key, window), ctr in found:
                if ctr.trips and ctr.buckets:
                    ctr.expire(now)
                for metric, needed in sorted((ctr.trips or {}).items()):
                    granted = ctr.granted[metric] if ctr.granted is not None else 0
                    out.append(TripMark(Counter(key, window), metric, needed,
                                        self._tripped_at.get((key, window, metric)), ctr.settled[metric], granted))
            return out

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float) -> None:
        with self._lock:
            self._outcomes.append((now, session, feature, user, name))

    def outcomes(self, since: float | None = None) -> list[OutcomeRow]:
        with self._lock:
            return [o for o in self._outcomes if since is None or o[0] >= since]

    def records(self, since: float | None = None) -> list[CallRecord]:
        with self._lock:
            return [r for r in self._records if since is None or r.at >= since]

    def sweep(self, now: float) -> None:
        """Forget idle counters now (also done every ``idle_ttl / 4``, at most every minute)."""
        with self._lock:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_every
        horizon = now - self.idle_ttl
        idle = [
            key for key, ctr in self._ctrs.items()
            if ctr.touched <= horizon and key[0] != "global" and not any(ctr.reserved) and not _current(key[0], now)
        ]
        for key in idle:
            ctr = self._ctrs.pop(key)
            if ctr.trips:
                for metric in ctr.trips:
                    self._tripped_at.pop((key[0], key[1], metric), None)
        if idle:
            # A dict never shrinks its table after deletions: copy it so a
            # server is back to baseline once a crowd of sessions has gone.
            self._ctrs = dict(self._ctrs)
        self._resolved = {}
