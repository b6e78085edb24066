"""LiteLLM plugin for agent-cost-breaker: ``BreakerLogger(guard)``.

LiteLLM's own SDK budget counts neither the prompt before the call nor
cached and streamed tokens correctly, and prices unknown models at $0. This
``CustomLogger`` reserves each call's worst case before it is sent and
settles the exact cost after, with the library's prices. LiteLLM is
imported only when ``BreakerLogger`` is first used; without it the import
fails with the command that installs it (``pip install 'agent-cost-breaker[litellm]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._logger import BreakerLogger, usage_from_litellm

__all__ = ["BreakerLogger", "usage_from_litellm"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'breaker_litellm' has no attribute {name!r}")
    from . import _logger

    value = getattr(_logger, name)
    globals()[name] = value
    return value
