"""Provider adapters: they know request and response shapes, nothing about money.

``instrument(guard)`` patches the installed SDKs, ``uninstrument(guard)``
restores them, ``wrap(guard, client)`` instruments one client object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import Breaker

__all__ = ["instrument", "uninstrument", "wrap"]


def instrument(guard: Breaker) -> None:
    raise NotImplementedError("SDK instrumentation arrives with the provider adapters")


def uninstrument(guard: Breaker) -> None:
    raise NotImplementedError("SDK instrumentation arrives with the provider adapters")


def wrap(guard: Breaker, client: Any) -> Any:
    raise NotImplementedError("SDK instrumentation arrives with the provider adapters")
