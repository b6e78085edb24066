"""Small helpers the request-shape adapters share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..estimate import ESTIMATOR

__all__ = ["SENTINELS", "cap_value", "count", "field", "given", "register_sentinels", "tool_names", "value"]

_MISSING = object()

SENTINELS: set[type] = set()
"""The SDKs' "argument not given" types (``openai.Omit``, ``NotGiven``...), filled when patching."""


def given(v: Any) -> bool:
    return v is not None and v.__class__ not in SENTINELS


def value(kwargs: Mapping[str, Any], key: str) -> Any:
    """``kwargs[key]`` if it was given, else ``None``."""
    v = kwargs.get(key)
    return v if v is not None and v.__class__ not in SENTINELS else None


def field(obj: Any, name: str) -> Any:
    """``obj.name`` of an SDK object, or ``obj[name]`` of a plain dict (usage read from JSON)."""
    v = getattr(obj, name, _MISSING)  # SDK objects (the usual case) first: no isinstance on the hot path
    if v is _MISSING:
        return obj.get(name) if isinstance(obj, dict) else None
    return v


def count(obj: Any, name: str) -> int:
    """A usage count that may be absent (0 then)."""
    v = field(obj, name)
    return 0 if v is None else v


def register_sentinels(module: Any) -> None:
    for name in ("Omit", "NotGiven"):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            SENTINELS.add(cls)


def tool_names(tools: Any) -> tuple[str, ...]:
    """Names of the tools offered (OpenAI chat, Responses and Anthropic shapes), read once per tool
    list: kept with the list's measure (``ESTIMATOR.names``), also for a list rebuilt per call."""
    if not tools:
        return ()
    return ESTIMATOR.names(tools, _tool_names)


def _tool_names(tools: Any) -> tuple[str, ...]:
    names = []
    for t in tools:
        if isinstance(t, Mapping):
            fn = t.get("function")
            name = fn.get("name") if isinstance(fn, Mapping) else t.get("name")
            names.append(str(name or t.get("type") or "tool"))
        else:
            names.append(str(getattr(t, "name", None) or type(t).__name__))
    return tuple(names)


def cap_value(kwargs: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str | None, int | None]:
    """The output-cap field the request uses and its value."""
    for f in fields:
        v = kwargs.get(f)
        if v is not None and v.__class__ not in SENTINELS:
            return f, v
    return None, None
