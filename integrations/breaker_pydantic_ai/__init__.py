"""pydantic-ai plugin for agent-cost-breaker: ``BreakerCapability(guard)``.

pydantic-ai's ``UsageLimits`` are checked after each response and per run;
this capability reserves each request's worst case *before* it is sent,
across runs (budgets per session, feature, user, or global), and degrades or
stops the agent. pydantic-ai is imported only when ``BreakerCapability`` is
first used; without it the import fails with the command that installs it
(``pip install 'agent-cost-breaker[pydantic-ai]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._capability import BreakerCapability, usage_from_pydantic_ai

__all__ = ["BreakerCapability", "usage_from_pydantic_ai"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'breaker_pydantic_ai' has no attribute {name!r}")
    from . import _capability

    value = getattr(_capability, name)
    globals()[name] = value
    return value
