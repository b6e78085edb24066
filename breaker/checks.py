"""Numbers and names checked at construction, with one kind of message for each mistake.

Why a module of its own: every constructor (``Budget``, ``Breaker``, ``LoopPolicy``,
``Degrade``, ``Webhook``) takes seconds, counts and names, and each must refuse the
same mistakes the same way: NaN (every comparison with it is false, so a wait of
``nan`` seconds never ends), infinity, a bool where a number is meant, a value past
what a ledger or a timer can hold, and a near-miss of a known word (``"sesion"``),
which is answered with the word meant. Written once here, so each constructor says
only *what* it accepts.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from typing import Iterable

from .errors import ConfigError

__all__ = ["MAX_LIMIT", "MAX_WAIT", "close_matches", "near_miss", "provider_ids", "seconds", "shown", "similar_models",
           "whole"]

MAX_LIMIT = 10**18
"""The largest budget limit (nano-USD, tokens or calls): a ledger holds signed 64-bit integers
(SQLite, Redis: about 9.2 × 10¹⁸), and a limit must leave room for the call that would pass it."""

MAX_WAIT = 86_400.0
"""The longest wait or timeout a constructor accepts, in seconds (a day): anything longer is a
unit mistake, and past ``threading.TIMEOUT_MAX`` a wait raises ``OverflowError`` at call time."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def shown(value: object) -> str:
    """``repr(value)``, cut short: a message quotes what was given, not 5,000 digits of it."""
    return _SHORT.repr(value)


def _arg(owner: str, name: str, value: str) -> str:
    return f"{owner}({name}={value})" if owner else f"{name}={value}"


def seconds(name: str, value: object, *, owner: str = "", high: float = MAX_WAIT, zero: bool = True,
            example: str = "5.0") -> float:
    """``value`` as a finite number of seconds in ``[0, high]`` (``(0, high]`` unless ``zero``).

    ``owner`` names the constructor in the message (``LoopPolicy(min_backoff=nan)``).
    """
    given, fix = _arg(owner, name, shown(value)), _arg(owner, name, example)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{given} must be a number of seconds, e.g. {fix}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero) or value > high:
        span = f"from 0 to {high:g}" if zero else f"more than 0 and at most {high:g}"
        raise ConfigError(f"{given} must be a finite number of seconds, {span}, e.g. {fix}")
    return float(value)


def whole(name: str, value: object, *, owner: str = "", low: int = 1, high: int = MAX_LIMIT,
          example: str = "1000") -> int:
    """``value`` as an ``int`` (not a bool, not a float) in ``[low, high]``."""
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(
            f"{_arg(owner, name, shown(value))} must be a whole number from {low:,} to {high:,}, "
            f"e.g. {_arg(owner, name, example)}"
        )
    return value


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.75) -> list[str]:
    """The choices that look like ``word`` (a typo is the usual cause of an unknown name)."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def near_miss(word: str, choices: Iterable[str]) -> str | None:
    """The one choice ``word`` was almost certainly meant to be: the same but for case and
    spaces, or one or two letters off (``"sesion"``, ``"users"``, ``"Global "``); else ``None``."""
    choices = list(choices)
    folded = word.strip().lower()
    if folded in choices:
        return folded
    found = difflib.get_close_matches(folded, choices, n=1, cutoff=0.8)
    return found[0] if found else None


def provider_ids() -> list[str]:
    """The providers the bundled genai-prices data knows (``openai``, ``aws``, ``google``...)."""
    try:
        from genai_prices import data_snapshot

        return [p.id for p in data_snapshot.get_snapshot().providers]
    except Exception:
        return []


def similar_models(model: str, provider: str | None = None) -> list[str]:
    """Model ids in the bundled genai-prices data that look like ``model`` (``gpt-4o-mnii``)."""
    try:
        from genai_prices import data_snapshot

        names = {m.id for p in data_snapshot.get_snapshot().providers
                 if provider is None or p.id == provider.lower() for m in p.models}
    except Exception:  # suggestions are a courtesy: never the reason a constructor fails
        return []
    return close_matches(model.split("/")[-1], sorted(names))
