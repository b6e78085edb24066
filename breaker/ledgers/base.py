"""The ledger protocol: atomic integer arithmetic on counters, nothing else.

A *counter* is one scope's running totals over a window: three integers
(nano-USD, tokens, calls) settled, and three reserved by calls in flight. A
*limit* is one budget's check on one metric of one counter. The engine turns
budgets into counters and limits; a ledger only has to make ``reserve`` and
``settle`` atomic, whichever store it keeps them in. Every ledger
(``Memory``, ``SQLite``, ``Redis``) passes the same contract tests.

``reserve`` grants *output units* (tokens) rather than a fixed amount: the
call's worst case is ``fixed + per_unit * units`` on each metric, and the
ledger grants the most units every limit can pay for, up to ``units_max``.
That is how ``max_tokens`` gets lowered to what the budget can still pay for
atomically, with no read-then-write race between concurrent callers.

Also here, because more than one ledger uses them: ``LedgerBase`` (defaults
for the optional parts of the protocol), and, for the persistent ledgers and
the ``Resilient`` wrapper around them, ``LedgerUnavailable``, ``Hold`` and
``new_id``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

from ..errors import LedgerError

__all__ = [
    "Ask", "CallRecord", "Counter", "Grant", "Hold", "Ledger", "LedgerBase", "LedgerUnavailable", "Limit",
    "OutcomeRow", "Totals", "decide", "new_id",
]

Vec = tuple[int, int, int]  # (nano-USD, tokens, calls)
OutcomeRow = tuple[float, str, str | None, str | None, str]  # (at, session, feature, user, name)


@dataclass(frozen=True, slots=True)
class Counter:
    """One scope's totals: ``key`` like ``"session:ticket-42"``; ``window`` in seconds (0 = whole life)."""

    key: str
    window: int = 0


@dataclass(frozen=True, slots=True)
class Limit:
    """A check: ``counters[counter]``'s ``metric`` (0 USD, 1 tokens, 2 calls) may not pass ``limit``."""

    counter: int
    metric: int
    limit: int


@dataclass(slots=True)
class Ask:
    """A reservation request: worst case ``fixed + per_unit * units`` per metric."""

    counters: tuple[Counter, ...]
    limits: tuple[Limit, ...]
    fixed: Vec
    per_unit: Vec
    units_max: int
    units_min: int
    patient: bool = True  # refuse ("busy") rather than accept a grant cut short by others' reservations
    ttl: float = 600.0  # how long an unsettled reservation may hold the budget (crashed workers)


@dataclass(slots=True)
class Grant:
    """The answer to ``reserve``.

    ``status`` is ``"ok"`` (``units`` granted, ``handle`` for ``settle``),
    ``"over"`` (settled spend alone cannot pay for ``units_min``: a real
    refusal), ``"busy"`` (only other calls' reservations stand in the way:
    wait and ask again) or ``"tripped"`` (a sticky trip marker is set).
    ``blocked`` is the index of the limit that refused; ``settled`` holds the
    settled amount of every limit's metric, in order.
    """

    status: str
    units: int = -1
    blocked: int = -1
    settled: tuple[int, ...] = ()
    reserved: int = 0
    handle: Any = None


@dataclass(slots=True)
class Totals:
    """A counter's figures: settled and reserved, each ``(nano-USD, tokens, calls)``."""

    settled: Vec = (0, 0, 0)
    reserved: Vec = (0, 0, 0)


@dataclass(slots=True)
class CallRecord:
    """One settled call, kept by ledgers that keep history (for ``breaker report``).

    Holds no prompt or completion text.
    """

    at: float
    session: str
    feature: str | None
    user: str | None
    model: str
    provider: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int | None = 0  # None: unpriced
    outcome: str = "ok"  # ok | error | partial | refused
    degraded: bool = False
    tripped: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Ledger(Protocol):
    """What the engine needs from a store. All amounts are integers.

    Implement it from scratch, or subclass ``LedgerBase`` for the optional
    parts (``blocking``, ``wants_records``, ``sweep``, ``add_outcome``,
    ``records``, ``close``).
    """

    @property
    def blocking(self) -> bool:
        """Whether each call is an I/O round trip (``SQLite``, ``Redis``: True; ``Memory``: False).

        The engine runs a blocking ledger's calls in worker threads for async
        callers, so that waiting for the store never stalls the event loop; a
        ledger that answers from memory is called on the caller's thread.
        """

    @property
    def wants_records(self) -> bool:
        """Whether ``settle`` should be given a ``CallRecord`` to keep (for ``breaker report``)."""

    def reserve(self, ask: Ask, now: float) -> Grant:
        """Atomically check every limit and, if all can pay, reserve on every counter."""

    def settle(
        self,
        handle: Any,
        counters: tuple[Counter, ...],
        limits: tuple[Limit, ...],
        actual: Vec,
        now: float,
        record: CallRecord | None = None,
    ) -> tuple[int, ...]:
        """Replace a reservation (``handle``; ``None`` if there was none) with ``actual``.

        Returns the settled amount of each limit's metric afterwards.
        """

    def trip(self, counter: Counter, metric: int, needed: int, now: float) -> None:
        """Set a sticky trip marker: ``reserve`` refuses ``counter``'s ``metric`` from now on.

        For a windowed counter the marker lifts once settled spend plus
        ``needed`` fits under the limit again (the window has freed enough).
        """

    def read(self, counters: Iterable[Counter], now: float) -> list[Totals]:
        """Current totals of each counter (zeros for one never seen)."""

    def sweep(self, now: float) -> None:
        """Forget idle state now (``Memory``: idle counters holding no reservation).

        A no-op for stores whose data expires on its own (``SQLite``, ``Redis``).
        ``Breaker.sweep`` calls it.
        """

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float) -> None:
        """Record a session outcome (``Session.outcome``) for cost-per-outcome reports."""

    def records(self, since: float | None = None) -> Iterable[CallRecord]:
        """Kept call records (may be empty for ledgers that keep none)."""

    def close(self) -> None:
        """Release connections and files."""


class LedgerBase:
    """Defaults for the optional parts of ``Ledger``; a subclass writes ``reserve``, ``settle``, ``trip``, ``read``.

    ``blocking`` defaults to True (the safe answer for a store the library
    does not know: the engine keeps it off the event loop); a ledger that
    answers from memory sets it to False. The other defaults keep nothing:
    no records, outcomes dropped, nothing to sweep or close.
    """

    __slots__ = ()

    blocking: bool = True
    wants_records: bool = False

    def sweep(self, now: float) -> None:
        """Nothing to do by default: ``SQLite`` and ``Redis`` drop expired window buckets and
        reservations as they touch them (and keep lifetime spend: it never expires)."""

    def add_outcome(self, session: str, feature: str | None, user: str | None, name: str, now: float) -> None:
        """Outcomes are not kept."""

    def records(self, since: float | None = None) -> Iterable[CallRecord]:
        """No call records are kept."""
        return []

    def close(self) -> None:
        """Nothing to release."""


class LedgerUnavailable(LedgerError):
    """The store could not be reached or written; the message says what to check.

    ``maybe_applied`` is False when the store certainly did not apply the
    write (no connection, a rolled-back transaction); True when the answer was
    lost and the write may have landed.
    """

    def __init__(self, message: str, *, maybe_applied: bool = True) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation in a persistent ledger: its id and the amount it holds on each counter.

    ``amount=None`` names a reservation whose answer was lost: the ledger
    finds it by id to give it back.
    """

    id: str
    amount: Vec | None


def new_id() -> str:
    """A random id for a reservation or a settlement (96 bits: no collisions in practice)."""
    return os.urandom(12).hex()


def decide(
    ask: Ask,
    state: list[tuple[int, int, bool]],
) -> Grant:
    """The admission arithmetic every ledger shares, given each limit's
    ``(settled, reserved, trip_marker_blocks)``, read inside the ledger's own
    atomic section. Returns the grant (without a handle) or the refusal.

    Written for speed (positional arguments, no helper calls): it runs on
    every call's admission.
    """
    fixed = ask.fixed
    per_unit = ask.per_unit
    units_max = ask.units_max
    units = units_settled = units_max
    cut_at = over_at = -1
    i = 0
    settled_out = []
    for lim in ask.limits:
        s, r, tripped = state[i]
        settled_out.append(s)
        if tripped:
            return Grant("tripped", -1, i, tuple(settled_out) + tuple(x[0] for x in state[i + 1:]), r)
        m = lim.metric
        avail_s = lim.limit - s - fixed[m]
        avail = avail_s - r
        pu = per_unit[m]
        if pu:
            u_s = avail_s // pu
            u = avail // pu
        else:
            u_s = units_max if avail_s >= 0 else -1
            u = units_max if avail >= 0 else -1
        if u_s < units_settled:
            units_settled = u_s
            over_at = i
        if u < units:
            units = u
            cut_at = i
        i += 1
    settled = tuple(settled_out)
    units_min = ask.units_min
    if units_settled < units_min:
        return Grant("over", -1, over_at, settled, state[over_at][1])
    if units < units_min or (ask.patient and units < units_settled):
        return Grant("busy", -1, cut_at, settled, state[cut_at][1])
    return Grant("ok", units, -1, settled)
