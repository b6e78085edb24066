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
from ..checks import near_miss, provider_ids, seconds, similar_models, whole
from ..degrade import Degrade
from ..errors import ConfigError
from ..ledgers.base import Ledger
from ..loops import LoopPolicy
from ..pricing import PriceBook
from ..routing import resolve, targets
from ..usage import MAX_UNITS

__all__ = ["DEFAULT", "Settings", "check_degrade_targets", "configure", "route_rule"]

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
    _choice("unknown_price", unknown_price, ("error", "warn"), "'error' or 'warn'")
    _choice("on_ledger_error", on_ledger_error, ("closed", "open"), "'closed' (refuse calls) or 'open' (allow, alert)")
    _choice("input_estimate", input_estimate, ("strict", "loose"), "'strict' (no overshoot) or 'loose'")
    if not isinstance(stream_usage, bool):
        raise ConfigError(f"stream_usage={stream_usage!r}: use True (ask streams for their usage) or False")
    whole("min_output_tokens", min_output_tokens, owner="Breaker", high=MAX_UNITS, example="16")
    # NaN would wait forever (no comparison with it is ever true); past a day is a unit mistake
    wait = seconds("reservation_wait", reservation_wait, owner="Breaker", example="60.0")
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
        min_output_tokens, wait, parse_window(session_ttl, what="session_ttl"), stream_usage,
    )


def _choice(name: str, value: object, choices: tuple[str, ...], use: str) -> None:
    if value not in choices:
        near = near_miss(value, choices) if isinstance(value, str) else None
        hint = f"did you mean {near!r}? " if near else ""
        raise ConfigError(f"{name}={value!r}: {hint}use {use}")


def _priced_somewhere(prices: PriceBook, model: str) -> bool:
    """Whether ``model`` has a price at some provider: the call's provider is known only at call
    time, and some names are priced only there (Bedrock's ``us.anthropic.…`` ids, at ``aws``)."""
    return prices.lookup(model) is not None or any(prices.lookup(model, p) is not None for p in provider_ids())


def check_degrade_targets(degrade: Degrade | None, prices: PriceBook, unknown_price: str) -> None:
    """Every model ``degrade`` switches to must have a price (checked once, at construction).

    Why: a degraded call is priced before it is sent; a typo'd target (``"gpt-4o-mnii"``)
    would otherwise be found only when a budget first asks to degrade, as an
    ``UnknownPrice`` inside the user's call, at the moment money is tight. With
    ``unknown_price="warn"`` an unpriced target is allowed (such calls are sent and
    counted in tokens and calls), unless its name is a near-miss of a priced model,
    which is a typo either way.
    """
    if degrade is None or not degrade.model_map:
        return
    for source, target in degrade.model_map.items():
        if source != target:
            _require_price(target, f"Degrade(model_map={{{source!r}: {target!r}}})", "degraded", prices,
                           unknown_price)


def _require_price(target: str, where: str, verb: str, prices: PriceBook, unknown_price: str) -> None:
    """A ``ConfigError`` for a model a Degrade or Route sends calls to that has no price (with
    ``unknown_price="warn"``, only when its name is a near-miss of a priced model: a typo)."""
    if _priced_somewhere(prices, target):
        return
    close = similar_models(target)
    if unknown_price == "warn" and not close:
        return
    mean = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"{where}: no price is known for {target!r}, so calls {verb} to it could not be "
        f"priced.{mean} If the name is right, give its price: "
        f"Breaker(prices={{{target!r}: {{'input': 0.15, 'output': 0.6}}}}) (USD per million tokens)."
    )


def route_rule(route: Any, prices: PriceBook, unknown_price: str) -> Callable[[Any], str | None] | None:
    """``Breaker(route=...)`` as one function (``breaker.routing.resolve``), with every model its
    ``Route`` rules name checked for a price now, as degrade targets are: a typo'd target would
    otherwise surface as ``UnknownPrice`` on the first call it routes. (What a plain function
    returns is known only per call; an unpriced answer is ``UnknownPrice`` then, before sending.)"""
    rule = resolve(route)
    for target in targets(route):
        _require_price(target, f"Route({target!r})", "routed", prices, unknown_price)
    return rule
