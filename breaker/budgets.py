"""Budgets: what may be spent, by whom, over what window, and what happens past it.

A rolling window is kept as 60 buckets of ``window / 60`` (at least one
second each): spend counts against the window for at least the whole window
and at most one bucket longer. It is never forgotten early, so a rolling
budget can only be stricter than exact, by at most 1/60 of its window.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from .errors import ConfigError
from .pricing import NANO

__all__ = ["Budget", "parse_window", "USD", "TOKENS", "CALLS", "METRICS"]

USD, TOKENS, CALLS = 0, 1, 2
METRICS = ("usd", "tokens", "calls")
SCOPES = ("session", "feature", "user", "global")
ACTIONS = ("kill", "degrade", "warn")

_WINDOW = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(window: str | timedelta | int | None, *, what: str = "window") -> int:
    """Seconds in ``window`` (``"30s"``, ``"10m"``, ``"1h"``, ``"1d"``, ``"30d"``, a
    ``timedelta`` or whole seconds); 0 for ``None`` (the whole life of the scope)."""
    if window is None:
        return 0
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
    elif isinstance(window, int) and not isinstance(window, bool):
        seconds = window
    elif isinstance(window, str) and (m := _WINDOW.match(window)):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)[0].lower()]
    else:
        raise ConfigError(
            f"{what}={window!r} is not a window; write a string like '30s', '10m', '1h', '1d', "
            f"'30d', a datetime.timedelta, or None for the whole life of the scope"
        )
    if seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"{what}={window!r} must be a whole number of seconds, at least 1s")
    return int(seconds)


def bucket_seconds(window_s: int) -> int:
    """The bucket width for a rolling window: 1/60 of it, at least one second."""
    return max(1, window_s // 60)


@dataclass(frozen=True)
class Budget:
    """A limit on USD, tokens and/or calls for one kind of scope.

    Args:
        usd, tokens, calls: the limits (at least one). ``tokens`` counts input
            plus output tokens; ``calls`` counts requests sent, failed ones included.
        per: ``"session"``, ``"feature"``, ``"user"``, ``"global"``, or the name
            of a tag (``session(tags={"team": "search"})`` with ``per="team"``).
        key: only this feature / user / tag value; ``None`` means each key separately.
        window: a rolling window (``"1m"``, ``"1h"``, ``"30d"``, a ``timedelta``),
            ``None`` for the whole life of the scope. See the module docstring for
            its precision.
        warn_at: fractions of the limit at which a ``threshold`` event fires
            (once per scope key per window).
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

    def __post_init__(self) -> None:
        limits: list[tuple[int, int]] = []
        if self.usd is not None:
            if isinstance(self.usd, bool) or not isinstance(self.usd, (int, float, Decimal)):
                raise ConfigError(f"Budget(usd={self.usd!r}) must be a number of dollars, e.g. Budget(usd=2.50)")
            dec = Decimal(str(self.usd))
            if not dec.is_finite() or dec <= 0:
                raise ConfigError(f"Budget(usd={self.usd!r}) must be more than 0, e.g. Budget(usd=2.50)")
            limits.append((USD, int(dec * NANO)))
        for name, metric in (("tokens", TOKENS), ("calls", CALLS)):
            value = getattr(self, name)
            if value is None:
                continue
            if type(value) is not int or value <= 0:
                raise ConfigError(f"Budget({name}={value!r}) must be a whole number above 0, e.g. Budget({name}=1000)")
            limits.append((metric, value))
        if not limits:
            raise ConfigError("Budget() needs a limit: Budget(usd=2.0), Budget(tokens=100_000) or Budget(calls=50)")
        if not isinstance(self.per, str) or not self.per:
            raise ConfigError(f"Budget(per={self.per!r}): use 'session', 'feature', 'user', 'global' or a tag name")
        if self.per == "global" and self.key is not None:
            raise ConfigError("Budget(per='global') takes no key: there is only one global scope")
        if self.key is not None and not isinstance(self.key, str):
            raise ConfigError(f"Budget(key={self.key!r}) must be a string (or None for each key separately)")
        if self.on_exceed not in ACTIONS:
            raise ConfigError(f"Budget(on_exceed={self.on_exceed!r}): use 'kill', 'degrade' or 'warn'")
        warn_at = tuple(self.warn_at or ())
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
