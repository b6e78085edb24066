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

**Operator grants** (``grant``, ``grants``, ``trips``: optional, every bundled ledger has
them). A grant adds headroom to one scope: it is kept on each lifetime counter of the scope
(its whole-life counter and its calendar-period counters, ``"KEY@period:…"``) as *granted*
amounts beside the settled ones, and ``reserve`` and ``settle`` count a limit against
settled minus granted. Settled spend itself is never changed (``read`` shows what was
really spent), and a period's grant ends with the period, as its counter does. A grant
also lifts the scope's trip markers (every window), and is logged (who, when, how much).
Rolling windows get no headroom: they free by themselves.

Also here, because more than one ledger uses them: ``LedgerBase`` (defaults
for the optional parts of the protocol), and, for the persistent ledgers and
the ``Resilient`` wrapper around them, the three kinds of store failure
(below), ``Hold``, ``new_id`` and the text and number checks of what a store
can hold.

**Every store failure is one of three kinds**, and each is handled its own way:

* ``LedgerUnavailable``: the store cannot be used *now* (unreachable, out of
  memory, locked, corrupt, lost its data). An outage: ``on_ledger_error``
  decides whether calls are refused or allowed, and every write is journaled
  and replayed when the store is back.
* ``LedgerMisconfigured``: the store answers, but is set up so that budgets
  cannot be kept in it (a wrong password, an eviction policy that deletes
  budget keys, a cluster node reached as a plain server, a file that is not a
  database). Nothing gets better by waiting, so it is never an outage:
  raised at construction or at the first call, with the fix in the message.
* ``LedgerDataError``: a value this store cannot hold (text that is not valid
  Unicode, an amount past its integer range), found before the call is sent.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Iterable, Protocol, runtime_checkable

from ..budgets import parse_window
from ..errors import ConfigError, LedgerError

__all__ = [
    "Ask", "CallRecord", "Counter", "Grant", "GrantRecord", "Hold", "Ledger", "LedgerBase", "LedgerDataError",
    "LedgerMisconfigured", "LedgerUnavailable", "Limit", "OutcomeRow", "Totals", "TripMark", "decide", "new_id",
    "RECORD_FIELDS", "fit", "in_scope", "record_dict", "seconds", "storable", "storable_counters", "storable_record",
    "unstorable", "unstorable_key",
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
    # How long an unsettled reservation holds the budget unless renewed (a crashed worker's is given
    # back then); None: the ledger's own ``hold_ttl``. ``Resilient`` renews those of live calls.
    ttl: float | None = None


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
    """A counter's figures: settled, reserved and granted (an operator's headroom: a limit on this counter
    counts settled minus granted), each ``(nano-USD, tokens, calls)``."""

    settled: Vec = (0, 0, 0)
    reserved: Vec = (0, 0, 0)
    granted: Vec = (0, 0, 0)


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
    price_variant: str | None = None  # the price variant billed ("priority", "flex", "batch"), None: standard
    requested_model: str | None = None  # the model the caller asked for, when another was sent (route, degrade)
    fingerprint: str | None = None  # content-free hash of the request, salted per process: repeats and retries
    flags: str | None = None  # comma-separated: "routed", "loop:<signal>" (sent past a loop verdict), "extends"


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """One operator grant, as the ledger logs it (``Breaker.grant``, ``breaker grant``; shown by ``breaker report``).

    ``scope`` is the scope's counter key (``"session:ticket-42"``, ``"feature:search"``, ``"global"``);
    ``counters`` how many of its lifetime and period counters got the headroom; ``lifted`` how many
    trip markers the grant lifted.
    """

    at: float
    scope: str
    usd_nano: int
    tokens: int
    calls: int
    by: str
    counters: int = 0
    lifted: int = 0

    @property
    def usd(self) -> float:
        return self.usd_nano / 1_000_000_000


@dataclass(frozen=True, slots=True)
class TripMark:
    """A trip marker a ledger holds: ``counter``'s ``metric`` is refused (``breaker trips``).

    ``needed``: what the refused call needed at least; ``at``: when the marker was set (``None``
    when the ledger did not log it); ``settled`` and ``granted``: that metric's amounts on the counter.
    A marker on a rolling window lifts at the next call the window can pay for; one on a period's
    counter ends with the period.
    """

    counter: Counter
    metric: int
    needed: int
    at: float | None
    settled: int
    granted: int


def in_scope(key: str, scope: str) -> bool:
    """Whether counter ``key`` belongs to ``scope``: its whole-life key or one of its periods (``scope@…``)."""
    return key == scope or (key.startswith(scope) and key[len(scope):len(scope) + 1] == "@")


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

    def grant(self, scope: str, amount: Vec, now: float, by: str) -> GrantRecord:
        """Add ``amount`` of headroom to ``scope``'s lifetime and period counters, lift its trip markers and
        log it (see the module docstring). A ledger that keeps no grants refuses."""
        raise LedgerMisconfigured(
            f"{type(self).__name__} keeps no operator grants; use ledgers.Memory, SQLite or Redis for Breaker.grant")

    def grants(self, since: float | None = None) -> list[GrantRecord]:
        """Logged grants, oldest first (none by default)."""
        return []

    def trips(self, now: float, counters: Iterable[Counter] | None = None) -> list[TripMark]:
        """The trip markers held on ``counters`` (all of them when ``None``).

        By default the ledger cannot say (``NotImplementedError``): a trip is then never taken for
        lifted, and ``breaker trips`` says it cannot list them.
        """
        raise NotImplementedError(f"{type(self).__name__} does not list its trip markers")


class LedgerUnavailable(LedgerError):
    """The store cannot be used now (an outage); the message says what to check.

    ``maybe_applied`` is False when the store certainly did not apply the
    write (no connection, a rolled-back transaction, a write refused before
    it started); True when the answer was lost and the write may have landed.
    ``state`` says what is wrong in a few words ("unreachable", "out of
    memory", "corrupt", "lost its data"), for the outage's messages.
    """

    reason = "ledger_unavailable"  # BudgetExceeded.reason of a call refused for it

    def __init__(self, message: str, *, maybe_applied: bool = True, state: str = "unreachable") -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.state = state


class LedgerMisconfigured(LedgerError, ConfigError):
    """The store answers but cannot keep budgets as it is set up; the message says what to change.

    Not an outage (waiting does not fix it, and ``on_ledger_error="open"``
    does not let calls through with it): raised at construction or at the
    first call that finds it, and the call is not sent.
    """

    reason = "ledger_misconfigured"


class LedgerDataError(LedgerError, ValueError):
    """A value the store cannot hold (invalid Unicode text, an amount past its range), found before the call."""

    reason = "ledger_data"


@dataclass(frozen=True)  # not slots: ``Resilient`` renews a hold only while its call keeps a (weak) reference
class Hold:
    """A reservation in a persistent ledger: its id and the amount it holds on each counter.

    ``amount=None`` names a reservation whose answer was lost: the ledger
    finds it by id to give it back.
    """

    id: str
    amount: Vec | None


def seconds(value: str | timedelta | float, *, what: str) -> float:
    """A positive, finite duration in seconds from ``"90s"``/``"10m"``, a ``timedelta`` or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, timedelta):
        out = value.total_seconds()
    elif isinstance(value, str):
        out = float(parse_window(value, what=what))
    else:
        raise ConfigError(f"{what}={value!r}: give seconds (a number), a string like '10m' or a timedelta")
    if not math.isfinite(out) or out <= 0:
        raise ConfigError(f"{what}={value!r} must be a positive, finite number of seconds")
    return out


def unstorable(text: str) -> bool:
    """Whether ``text`` cannot be written as UTF-8 (it holds a lone surrogate such as ``'\\ud800'``)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def storable(text: str) -> str:
    """``text`` as a store can hold it: unchanged, or with lone surrogates written as ``\\udXXX``.

    For what is written after a call was served (call records, the keys of a
    settlement without a reservation): such a write must never fail on text.
    ``reserve`` refuses unstorable keys before the call instead (``LedgerDataError``).
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if unstorable(text) else text


def fit(ask: Ask, most: int, store: str) -> Ask:
    """``ask`` with ``units_max`` lowered so that no metric's worst case passes ``most``, the largest
    amount ``store`` counts (a cap of 10**18 output tokens is a request, not a number to overflow on).

    The same ``ask`` in the usual case; ``LedgerDataError`` (before the call) when even ``units_min``
    output tokens do not fit.
    """
    f, p, u = ask.fixed, ask.per_unit, ask.units_max
    if f[0] + p[0] * u <= most and f[1] + p[1] * u <= most and f[2] + p[2] * u <= most:
        return ask
    cut = u
    for m in range(3):
        if p[m]:
            cut = min(cut, (most - f[m]) // p[m])
        elif f[m] > most:
            cut = -1
    if cut < ask.units_min:
        raise LedgerDataError(
            f"This call's worst case ({f[0] + p[0] * ask.units_min:,} nano-USD, {f[1] + p[1] * ask.units_min:,} "
            f"tokens at the least output) is more than {store} ({most:,}); it was not sent. Send less input.")
    return replace(ask, units_max=cut)


def unstorable_key(key: str) -> LedgerDataError:
    """The error for a scope key that is not valid Unicode (raised by ``reserve``, before the call)."""
    return LedgerDataError(
        f"The scope key {key!r} cannot be stored: it is not valid Unicode text (it holds a lone surrogate, as "
        f"text decoded with errors='surrogateescape' does), so this call was not sent. Pass session ids, "
        f"features, users and tags that are valid text, e.g. bytes decoded with errors='replace'.")


def storable_counters(counters: tuple[Counter, ...]) -> tuple[Counter, ...]:
    """``counters`` with every key ``storable`` (the same tuple in the usual case)."""
    if not any(unstorable(c.key) for c in counters):
        return counters
    return tuple(Counter(storable(c.key), c.window) for c in counters)


_TEXT_FIELDS = tuple(f.name for f in fields(CallRecord) if f.name in (
    "session", "feature", "user", "model", "provider", "outcome", "tripped", "price_variant"))


RECORD_FIELDS = tuple(f.name for f in fields(CallRecord))
"""``CallRecord``'s fields in order: the columns of SQLite's ``records``, the keys of Redis's JSON."""


def record_dict(record: CallRecord) -> dict[str, Any]:
    """``record``'s fields by name, as a store keeps them: read one by one, where ``dataclasses.asdict``
    deep-copies every value first (on every settlement)."""
    return {name: getattr(record, name) for name in RECORD_FIELDS}


def storable_record(record: CallRecord) -> CallRecord:
    """``record`` with every text in it ``storable`` (the same object when it already is)."""
    changed: dict[str, Any] = {
        name: storable(value) for name in _TEXT_FIELDS
        if isinstance(value := getattr(record, name), str) and unstorable(value)
    }
    if any(unstorable(k) or unstorable(v) for k, v in record.tags.items()):
        changed["tags"] = {storable(k): storable(v) for k, v in record.tags.items()}
    return replace(record, **changed) if changed else record


def new_id() -> str:
    """An id for a reservation or a settlement: the time in milliseconds (12 hex digits), then 80
    random bits (no collisions in practice: a collision would make a settlement look like a replay
    of another). Time first so that ids written in a row sort together: a SQLite ledger's ``ops``
    B-tree of days of ids takes each new one on its last page (cached) instead of a random one."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


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
