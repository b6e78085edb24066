"""Budgets: what may be spent, by whom, over what window, and what happens past it.

A rolling window is kept as 60 buckets of ``window / 60`` (at least one
second each): spend counts against the window for at least the whole window
and at most one bucket longer. It is never forgotten early, so a rolling
budget can only be stricter than exact, by at most 1/60 of its window.

Everything is checked at construction, because a budget that is wrong in a way
nothing notices (a typo in ``per``, a limit that rounds to zero) either never
applies or fails inside a user's call. The rule for ``per``: the four scope words,
``"tag:NAME"`` for the value of a session tag (always a tag), or a bare tag name as
the README has always documented it (``per="team"``), unless that name is a
near-miss of a scope word (``"sesion"``, ``"users"``, ``"Global"``): then it is
refused with the word meant, and ``"tag:NAME"`` is how to say it really is a tag.
Bare names stay valid (no deprecation) because ``per="team"`` is the documented form
and is unambiguous; only the near-misses, which were silent no-op budgets, are refused.

A calendar period (``period="day" | "week" | "month"``, ``tz="UTC"``) resets at the period's
start in that time zone: midnight, Monday midnight, midnight on the first, by the zone's own
clock (so a day may last 23 or 25 hours across a DST change). It needs no arithmetic of its
own in any ledger: each period is a lifetime counter whose key names it
(``"feature:search@month:2026-11-01:America/New_York"``, ``period_label``), so a new period
starts from zero, and a trip marker set in one period ends with it. ``window=`` and ``period=``
are exclusive: one budget either rolls or resets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Context, Decimal
from typing import Literal, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .checks import MAX_LIMIT, near_miss, shown
from .errors import ConfigError
from .pricing import NANO

__all__ = ["Budget", "PERIODS", "grant_amount", "normalize_per", "parse_window", "period_bounds", "period_label",
           "USD", "TOKENS", "CALLS", "METRICS"]

USD, TOKENS, CALLS = 0, 1, 2
METRICS = ("usd", "tokens", "calls")
SCOPES = ("session", "feature", "user", "global")
ACTIONS = ("kill", "degrade", "warn")
PERIODS = ("day", "week", "month")
_EXACT = Context(prec=60)
TAG = "tag:"  # per="tag:team": a budget per value of the session tag "team"
MAX_WINDOW = 3650 * 86_400
"""The longest window (ten years): longer is a unit mistake, and ledgers keep a
window's counters with an expiry of about twice its length, which must stay in range."""

_WINDOW = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(window: str | timedelta | int | None, *, what: str = "window") -> int:
    """Seconds in ``window`` (``"30s"``, ``"10m"``, ``"1h"``, ``"1d"``, ``"30d"``, a
    ``timedelta`` or whole seconds); 0 for ``None`` (the whole life of the scope)."""
    if window is None:
        return 0
    given = f"{what[:-1]}={shown(window)})" if what.endswith(")") else f"{what}={shown(window)}"
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
    elif isinstance(window, int) and not isinstance(window, bool):
        seconds = window
    elif isinstance(window, str) and (m := _WINDOW.match(window)):
        digits = m.group(1).lstrip("0") or "0"
        # more digits than ten years of seconds has is out of range (and int() refuses 4,300+ digits)
        seconds = int(digits) * _UNIT_SECONDS[m.group(2)[0].lower()] if len(digits) <= 10 else MAX_WINDOW + 1
    else:
        raise ConfigError(
            f"{given} is not a window; write a string like '30s', '10m', '1h', '1d', "
            f"'30d', a datetime.timedelta, or None for the whole life of the scope"
        )
    if not 1 <= seconds <= MAX_WINDOW or seconds != int(seconds):
        raise ConfigError(
            f"{given} must be a whole number of seconds from 1s to {MAX_WINDOW // 86_400}d (ten years)"
        )
    return int(seconds)


def normalize_per(per: object) -> str:
    """The scope ``per`` names, checked: a scope word, or a tag's name (``"tag:team"`` -> ``"team"``)."""
    if not isinstance(per, str) or not per:
        raise ConfigError(f"Budget(per={per!r}): use 'session', 'feature', 'user', 'global' or 'tag:NAME'")
    if per in SCOPES:
        return per
    if per.startswith(TAG):
        return _tag(per, per[len(TAG):])
    near = near_miss(per, SCOPES)
    if near is not None:
        raise ConfigError(
            f"Budget(per={per!r}) is not a scope: did you mean per={near!r}? (The scopes are 'session', "
            f"'feature', 'user' and 'global'; for a budget per value of a session tag named {per!r}, "
            f"write per={TAG + per!r}.)"
        )
    return _tag(per, per)


def _tag(per: str, name: str) -> str:
    """A tag's name as counters key it: ``"tag:NAME=VALUE"``, so no ``=`` (it would be ambiguous)."""
    if not name or name != name.strip() or "=" in name:
        raise ConfigError(
            f"Budget(per={per!r}): a tag name must be non-empty, without '=' or surrounding spaces, "
            f"e.g. per='tag:team' with guard.session(tags={{'team': 'search'}})"
        )
    if name in SCOPES:
        raise ConfigError(
            f"Budget(per={per!r}): a tag cannot be named like the scope {name!r}; use per={name!r} for "
            f"that scope, or rename the tag"
        )
    return name


def _fractions(warn_at: object) -> tuple[float, ...]:
    """``warn_at`` as a tuple: one fraction (``0.8``) or several (``(0.5, 0.8)``), ``None`` for none."""
    if warn_at is None:
        return ()
    if isinstance(warn_at, (int, float)) and not isinstance(warn_at, bool):
        return (warn_at,)
    if isinstance(warn_at, (str, bytes)) or not hasattr(warn_at, "__iter__"):
        raise ConfigError(f"Budget(warn_at={warn_at!r}): a fraction or fractions between 0 and 1, e.g. (0.5, 0.8)")
    return tuple(warn_at)


def zone(tz: object, *, what: str = "Budget") -> ZoneInfo:
    """The time zone ``tz`` names (an IANA name such as ``"Europe/Paris"``, or a ``ZoneInfo``), checked."""
    if isinstance(tz, ZoneInfo):
        return tz
    fix = ("use an IANA time zone name such as 'UTC', 'Europe/Paris' or 'America/New_York' "
           "(where the system has no time zone database: pip install tzdata)")
    if not isinstance(tz, str) or not tz.strip():
        raise ConfigError(f"{what}(tz={tz!r}) is not a time zone: {fix}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path-like or malformed key
        raise ConfigError(f"{what}(tz={tz!r}) is not a time zone this system knows: {fix}") from None


def _midnight(day: date, tz: ZoneInfo) -> float:
    """When ``day`` starts in ``tz``. A midnight the zone skips (a DST gap at 00:00) is read with
    the offset before the change (PEP 495, fold=0): the day then starts at the change itself."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def period_bounds(period: str, tz: ZoneInfo, now: float) -> tuple[float, float, date]:
    """The period holding ``now``: ``(start, end, first day)``, start and end in epoch seconds.

    Days start at midnight, weeks at Monday midnight, months at midnight on the first, all
    by ``tz``'s clock.
    """
    today = datetime.fromtimestamp(now, tz).date()
    if period == "day":
        first, after = today, today + timedelta(days=1)
    elif period == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    return _midnight(first, tz), _midnight(after, tz), first


def period_label(period: str, tz: ZoneInfo, first: date) -> str:
    """What a period's counter key ends with, after ``@``: ``"month:2026-11-01:America/New_York"``.

    The zone is part of it: the same day in two zones is two periods (they start and end apart).
    """
    return f"{period}:{first.isoformat()}:{tz.key}"


def parse_period_key(key: str) -> tuple[str, str, float, str] | None:
    """A period counter's key read back: ``(scope key, period, end, zone)``, or ``None`` for any other key.

    For ``breaker trips``: a trip marker on a period that has ended has ended with it.
    """
    scope, at, label = key.rpartition("@")
    if not at:
        return None
    period, _, rest = label.partition(":")
    day, _, tz = rest.partition(":")
    if period not in PERIODS:
        return None
    try:
        first = date.fromisoformat(day)
        end = period_bounds(period, ZoneInfo(tz), _midnight(first, ZoneInfo(tz)))[1]
    except (ValueError, ZoneInfoNotFoundError, OSError):
        return None
    return scope, period, end, tz


def grant_amount(usd: object = None, tokens: object = None, calls: object = None) -> tuple[int, int, int]:
    """An operator grant's headroom as ``(nano-USD, tokens, calls)``, checked like a budget's limits."""
    nano = 0
    if usd is not None:
        if isinstance(usd, bool) or not isinstance(usd, (int, float, Decimal, str)):
            raise ConfigError(f"grant(usd={usd!r}) must be a number of dollars, e.g. grant(usd=1.00, key='ticket-42')")
        try:
            dec = Decimal(str(usd).strip())
        except ArithmeticError:
            raise ConfigError(f"grant(usd={usd!r}) must be a number of dollars, e.g. grant(usd=1.00)") from None
        if not dec.is_finite() or dec <= 0:
            raise ConfigError(f"grant(usd={usd!r}) must be more than 0, e.g. grant(usd=1.00)")
        nano = int(_EXACT.multiply(dec, NANO))
        if not 1 <= nano <= MAX_LIMIT:
            raise ConfigError(f"grant(usd={usd!r}) must be from one nano-dollar (1e-9) to $1,000,000,000")
    out = [nano]
    for name, value in (("tokens", tokens), ("calls", calls)):
        if value is None:
            out.append(0)
            continue
        if type(value) is not int or not 0 < value <= MAX_LIMIT:
            raise ConfigError(f"grant({name}={value!r}) must be a whole number from 1 to 10**18, e.g. {name}=1000")
        out.append(value)
    if not any(out):
        raise ConfigError("grant() needs an amount: grant(usd=1.00, key='ticket-42'), tokens=... or calls=...")
    return out[0], out[1], out[2]


def bucket_seconds(window_s: int) -> int:
    """The bucket width for a rolling window: 1/60 of it, at least one second."""
    return max(1, window_s // 60)


@dataclass(frozen=True, init=False)
class Budget:
    """A limit on USD, tokens and/or calls for one kind of scope.

    Args:
        usd, tokens, calls: the limits (at least one). ``tokens`` counts input
            plus output tokens; ``calls`` counts requests sent, failed ones included.
            ``usd`` is counted in nano-dollars: from $0.000000001 to $1,000,000,000;
            ``tokens`` and ``calls`` up to 10¹⁸.
        per: ``"session"``, ``"feature"``, ``"user"``, ``"global"``, or a session
            tag: ``"tag:team"`` (or the bare ``"team"``) with
            ``session(tags={"team": "search"})``. A near-miss of a scope word
            (``"sesion"``) is refused with the word meant (see the module docstring).
        key: only this feature / user / tag value; ``None`` means each key separately.
        window: a rolling window (``"1m"``, ``"1h"``, ``"30d"``, a ``timedelta``, up to
            ten years), ``None`` for the whole life of the scope. See the module
            docstring for its precision.
        period: a calendar period instead: ``"day"``, ``"week"`` (from Monday) or
            ``"month"``, resetting at its start in ``tz``; a trip ends with its period.
        tz: the IANA time zone of ``period`` (``"Europe/Paris"``); only with ``period``.
        warn_at: fractions of the limit at which a ``threshold`` event fires
            (once per scope key per window): one (``0.8``) or several (``(0.5, 0.8)``).
        degrade_at: from this fraction on, calls are degraded (see ``Degrade``).
        on_exceed: ``"kill"`` refuses the call that would pass the limit and
            trips the scope; ``"degrade"`` first tries the degraded call and
            kills only if even that cannot fit; ``"warn"`` never refuses, it
            fires a ``threshold`` event at 100%.
    """

    usd: float | int | Decimal | None = None
    tokens: int | None = None
    calls: int | None = None
    per: str = "session"
    key: str | None = None
    window: str | timedelta | int | None = None
    warn_at: tuple[float, ...] = (0.5, 0.8, 0.95)
    degrade_at: float | None = None
    on_exceed: Literal["kill", "degrade", "warn"] = "kill"
    period: Literal["day", "week", "month"] | None = None
    tz: str = "UTC"
    # Derived, integer forms used by the engine.
    limits: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    window_s: int = field(init=False, repr=False, compare=False)
    zone: ZoneInfo | None = field(init=False, repr=False, compare=False)  # the ZoneInfo of ``tz`` with a period

    def __init__(
        self,
        usd: float | int | Decimal | None = None,
        tokens: int | None = None,
        calls: int | None = None,
        per: str = "session",
        key: str | None = None,
        window: str | timedelta | int | None = None,
        warn_at: Sequence[float] | float | None = (0.5, 0.8, 0.95),
        degrade_at: float | None = None,
        on_exceed: Literal["kill", "degrade", "warn"] = "kill",
        period: Literal["day", "week", "month"] | None = None,
        tz: str = "UTC",
    ) -> None:
        # Written out rather than generated: ``warn_at`` takes one fraction as well as several,
        # and is kept as a sorted tuple, which a generated __init__ could not type.
        for name, value in (("usd", usd), ("tokens", tokens), ("calls", calls), ("per", per), ("key", key),
                            ("window", window), ("warn_at", warn_at), ("degrade_at", degrade_at),
                            ("on_exceed", on_exceed), ("period", period), ("tz", tz)):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        limits: list[tuple[int, int]] = []
        if self.usd is not None:
            if isinstance(self.usd, bool) or not isinstance(self.usd, (int, float, Decimal)):
                raise ConfigError(f"Budget(usd={self.usd!r}) must be a number of dollars, e.g. Budget(usd=2.50)")
            dec = Decimal(str(self.usd))
            if not dec.is_finite() or dec <= 0:
                raise ConfigError(f"Budget(usd={self.usd!r}) must be more than 0, e.g. Budget(usd=2.50)")
            # whole nano-dollars, rounded down (never more than was written), in a context of our own:
            # the host application's decimal precision must not round a limit
            nano = int(_EXACT.multiply(dec, NANO))
            if nano < 1:  # a limit of 0 would refuse everything (and divide by zero in the thresholds)
                raise ConfigError(
                    f"Budget(usd={self.usd!r}) is less than one nano-dollar, the smallest amount a ledger "
                    f"counts; write at least Budget(usd=1e-9), e.g. Budget(usd=0.01) for a cent")
            if nano > MAX_LIMIT:
                raise ConfigError(
                    f"Budget(usd={self.usd!r}) is more than a ledger can count ($1,000,000,000 at most); "
                    f"for no USD limit leave usd out, e.g. Budget(tokens=1_000_000)")
            limits.append((USD, nano))
        for name, metric in (("tokens", TOKENS), ("calls", CALLS)):
            value = getattr(self, name)
            if value is None:
                continue
            if type(value) is not int or not 0 < value <= MAX_LIMIT:
                raise ConfigError(
                    f"Budget({name}={value!r}) must be a whole number from 1 to 10**18, e.g. Budget({name}=1000)")
            limits.append((metric, value))
        if not limits:
            raise ConfigError("Budget() needs a limit: Budget(usd=2.0), Budget(tokens=100_000) or Budget(calls=50)")
        object.__setattr__(self, "per", normalize_per(self.per))
        if self.per == "global" and self.key is not None:
            raise ConfigError("Budget(per='global') takes no key: there is only one global scope")
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ConfigError(f"Budget(key={self.key!r}) must be a non-empty string (or None for each key separately)")
        if self.on_exceed not in ACTIONS:
            near = near_miss(self.on_exceed, ACTIONS) if isinstance(self.on_exceed, str) else None
            hint = f"did you mean {near!r}? " if near else ""
            raise ConfigError(f"Budget(on_exceed={self.on_exceed!r}): {hint}use 'kill', 'degrade' or 'warn'")
        warn_at = _fractions(self.warn_at)
        for fraction in warn_at:
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
                raise ConfigError(f"Budget(warn_at={self.warn_at!r}): fractions between 0 and 1, e.g. (0.5, 0.8)")
        object.__setattr__(self, "warn_at", tuple(sorted(warn_at)))
        if self.degrade_at is not None:
            d = self.degrade_at
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1 or math.isnan(d):
                raise ConfigError(f"Budget(degrade_at={d!r}) must be a fraction between 0 and 1, e.g. 0.8")
            if self.on_exceed == "warn":
                raise ConfigError(
                    "Budget(degrade_at=..., on_exceed='warn') would degrade but never stop; "
                    "use on_exceed='degrade' (or 'kill') with degrade_at"
                )
        object.__setattr__(self, "limits", tuple(limits))
        object.__setattr__(self, "window_s", parse_window(self.window, what="Budget(window)"))
        object.__setattr__(self, "zone", self._zone())

    def _zone(self) -> ZoneInfo | None:
        """The period's time zone, checked with the period (``None`` without a period)."""
        period, tz = self.period, self.tz
        if period is None:
            if not (isinstance(tz, str) and tz == "UTC"):
                raise ConfigError(
                    f"Budget(tz={tz!r}) applies to a calendar period: add period='day', 'week' or 'month' "
                    f"(a rolling window= has no time zone)")
            return None
        if period not in PERIODS:
            near = near_miss(period, PERIODS) if isinstance(period, str) else None
            hint = f"did you mean {near!r}? " if near else ""
            raise ConfigError(
                f"Budget(period={period!r}): {hint}use 'day', 'week' or 'month' (a calendar period), "
                f"or window= for a rolling one like '30d'")
        if self.window is not None:
            raise ConfigError(
                f"Budget(window={shown(self.window)}, period={period!r}): choose one: window= rolls (the spend "
                f"of the last {shown(self.window)} at any moment), period= resets at the start of each {period} in tz")
        tzinfo = zone(tz)
        if not tzinfo.key:
            raise ConfigError(f"Budget(tz={tz!r}): give the zone by its IANA name, e.g. tz='Europe/Paris'")
        object.__setattr__(self, "tz", tzinfo.key)
        return tzinfo

    @property
    def hard(self) -> bool:
        """Whether this budget refuses calls (``kill`` or ``degrade``) rather than only warning."""
        return self.on_exceed != "warn"

    def describe(self) -> str:
        """A short human description, e.g. ``"$2.00 per session"`` or ``"1,000 tokens per user per 1h"``."""
        parts = []
        for metric, limit in self.limits:
            parts.append(format_amount(metric, limit))
        scope = f"per {self.per}" if self.key is None else f"for {self.per} {self.key!r}"
        if self.per == "global":
            scope = "globally"
        window = f" per {self.window}" if isinstance(self.window, str) else (
            f" per {format_seconds(self.window_s)}" if self.window_s else "")
        if self.period is not None:
            window = f" per {self.period} ({self.tz})"
        return f"{' / '.join(parts)} {scope}{window}"


def format_amount(metric: int, amount: int | float) -> str:
    """A person's way of writing an amount of ``metric`` (nano-USD for USD)."""
    if metric == USD:
        usd = amount / NANO
        return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:,.4f}"
    return f"{int(amount):,} {METRICS[metric]}"


def format_seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
