"""OpenAI Agents SDK plugin for agent-cost-breaker: ``BreakerHooks(guard)``.

The Agents SDK stops a run only after ``max_turns``; these ``RunHooks``
enforce USD, token and call budgets and loop detection before each model
call and price each response exactly. The SDK is imported only when
``BreakerHooks`` is first used; without it the import fails with the command
that installs it (``pip install 'agent-cost-breaker[openai-agents]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._hooks import BreakerHooks, usage_from_agents

__all__ = ["BreakerHooks", "usage_from_agents"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'breaker_openai_agents' has no attribute {name!r}")
    from . import _hooks

    value = getattr(_hooks, name)
    globals()[name] = value
    return value
