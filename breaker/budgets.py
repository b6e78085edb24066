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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Context, Decimal
from typing import Literal, Sequence

from .checks import MAX_LIMIT, near_miss, shown
from .errors import ConfigError
from .pricing import NANO

__all__ = ["Budget", "normalize_per", "parse_window", "USD", "TOKENS", "CALLS", "METRICS"]

USD, TOKENS, CALLS = 0, 1, 2
METRICS = ("usd", "tokens", "calls")
SCOPES = ("session", "feature", "user", "global")
ACTIONS = ("kill", "degrade", "warn")
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
    # Derived, integer forms used by the engine.
    limits: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    window_s: int = field(init=False, repr=False, compare=False)

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
    ) -> None:
        # Written out rather than generated: ``warn_at`` takes one fraction as well as several,
        # and is kept as a sorted tuple, which a generated __init__ could not type.
        for name, value in (("usd", usd), ("tokens", tokens), ("calls", calls), ("per", per), ("key", key),
                            ("window", window), ("warn_at", warn_at), ("degrade_at", degrade_at),
                            ("on_exceed", on_exceed)):
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
