"""LangChain plugins for agent-cost-breaker.

- ``BreakerMiddleware(guard)`` for ``langchain.agents.create_agent`` (LangChain v1).
- ``BreakerCallbackHandler(guard)`` for any LangChain runnable or legacy agent.

LangChain is imported only when one of them is first used; without it the
import fails with the command that installs it
(``pip install 'agent-cost-breaker[langchain]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._callbacks import BreakerCallbackHandler
    from ._messages import usage_from_message
    from ._middleware import BreakerMiddleware

__all__ = ["BreakerCallbackHandler", "BreakerMiddleware", "usage_from_message"]

_WHERE = {
    "BreakerMiddleware": "._middleware",
    "BreakerCallbackHandler": "._callbacks",
    "usage_from_message": "._messages",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'breaker_langchain' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value
