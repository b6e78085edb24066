"""Configuration: the constructor's arguments checked once, with messages that say the fix.

Everything a typo or a wrong type could silently turn off is refused here,
at construction, as a ``ConfigError`` that names the argument and shows a
correct call; nothing is found out later on a call path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence

from ..budgets import Budget, parse_window
from ..degrade import Degrade
from ..errors import ConfigError
from ..ledgers.base import Ledger
from ..loops import LoopPolicy

__all__ = ["DEFAULT", "Settings", "configure"]

_LEDGER_METHODS = ("reserve", "settle", "trip", "read", "sweep", "add_outcome", "records", "close")
"""The ``Ledger`` protocol's methods; the engine calls them without probing."""

DEFAULT: Any = object()
"""Marks an argument left out (``loops`` is on by default, ``None`` turns it off)."""


@dataclass(frozen=True)
class Settings:
    budgets: tuple[Budget, ...]
    loops: LoopPolicy | None
    degrade: Degrade | None
    alerts: list[Callable[..., Any]]
    ledger: Ledger
    unknown_price: str
    on_ledger_error: str
    input_estimate: str
    min_output_tokens: int
    reservation_wait: float
    session_ttl: int
    stream_usage: bool


def configure(
    *, budgets: Sequence[Budget] | Budget, loops: Any, degrade: Any, alerts: Sequence[Any] | None, ledger: Any,
    unknown_price: str, on_ledger_error: str, input_estimate: str, min_output_tokens: int,
    reservation_wait: float, session_ttl: str | timedelta | int, stream_usage: bool = True,
) -> Settings:
    if isinstance(budgets, Budget):
        budgets = [budgets]
    for b in budgets:
        if not isinstance(b, Budget):
            raise ConfigError(f"budgets must be Budget objects, got {b!r}; write budgets=[Budget(usd=2.0)]")
    if loops is DEFAULT:
        loops = LoopPolicy()
    if loops is not None and not isinstance(loops, LoopPolicy):
        raise ConfigError(f"loops must be a LoopPolicy or None, got {loops!r}")
    if degrade is not None and not isinstance(degrade, Degrade):
        raise ConfigError(f"degrade must be a Degrade, got {degrade!r}; write degrade=Degrade(model_map={{...}})")
    for b in budgets:
        if (b.degrade_at is not None or b.on_exceed == "degrade") and degrade is None:
            raise ConfigError(
                f"{b!r} degrades calls, but Breaker(degrade=...) is not set: add "
                f"degrade=Degrade(model_map={{'gpt-5': 'gpt-5-mini'}}, max_output_tokens=1024)"
            )
    if unknown_price not in ("error", "warn"):
        raise ConfigError(f"unknown_price={unknown_price!r}: use 'error' or 'warn'")
    if on_ledger_error not in ("closed", "open"):
        raise ConfigError(f"on_ledger_error={on_ledger_error!r}: use 'closed' (refuse calls) or 'open' (allow, alert)")
    if input_estimate not in ("strict", "loose"):
        raise ConfigError(f"input_estimate={input_estimate!r}: use 'strict' (no overshoot) or 'loose'")
    if not isinstance(stream_usage, bool):
        raise ConfigError(f"stream_usage={stream_usage!r}: use True (ask streams for their usage) or False")
    if type(min_output_tokens) is not int or min_output_tokens < 1:
        raise ConfigError(f"min_output_tokens={min_output_tokens!r} must be a whole number of at least 1")
    if alerts is None:
        from ..alerts import Log

        alerts = [Log()]
    sinks = list(alerts)
    for sink in sinks:
        if not callable(sink):
            raise ConfigError(f"alerts must be callables taking an Event, got {sink!r}")
    if ledger is None:
        from ..ledgers.memory import Memory

        ledger = Memory()
    for method in _LEDGER_METHODS:
        if not callable(getattr(ledger, method, None)):
            raise ConfigError(
                f"ledger {ledger!r} lacks {method}(); use breaker.ledgers.Memory(), SQLite(path) or Redis(url), "
                f"or subclass breaker.ledgers.LedgerBase, which supplies the optional parts")
    for attribute in ("blocking", "wants_records"):
        if not isinstance(getattr(ledger, attribute, None), bool):
            raise ConfigError(
                f"ledger {ledger!r} lacks the boolean {attribute!r}; subclass breaker.ledgers.LedgerBase "
                f"(blocking=True: the engine keeps async callers off its round trips)")
    return Settings(
        tuple(budgets), loops, degrade, sinks, ledger, unknown_price, on_ledger_error, input_estimate,
        min_output_tokens, float(reservation_wait), parse_window(session_ttl, what="session_ttl"), stream_usage,
    )
