"""Reasoning effort: one vocabulary for every provider, and how a degrade lowers it.

OpenAI takes ``reasoning_effort`` (chat) or ``reasoning.effort`` (Responses);
Anthropic has no effort, only an extended-thinking token budget; frameworks
pass either through. ``Degrade(reasoning_effort=...)`` names a level in
``EFFORTS``, and every adapter and plugin applies it with ``lower_effort``
(never raising what the caller chose) or, for Anthropic, ``thinking_budget_for``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EFFORTS", "lower_effort", "thinking_budget_for"]

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""Effort levels, lowest first."""


def lower_effort(current: Any, wanted: str) -> str:
    """``wanted`` unless the caller already asked for less (a degrade never raises effort)."""
    if isinstance(current, str) and current in EFFORTS and EFFORTS.index(current) < EFFORTS.index(wanted):
        return current
    return wanted


_THINKING_MIN = 1024  # Anthropic's smallest extended-thinking budget
_THINKING_SHARE = {"xhigh": 1.0, "high": 1.0, "medium": 0.5, "low": 0.25}


def thinking_budget_for(effort: str, current: int, *, max_tokens: int | None = None) -> int | None:
    """The Anthropic ``thinking.budget_tokens`` a degraded call should use, or ``None`` to turn thinking off.

    Why: Anthropic has no ``reasoning_effort``; thinking tokens are billed as
    output, so degrading means shrinking the budget the caller set. ``high``
    keeps it, ``medium`` halves it, ``low`` quarters it, ``minimal`` and
    ``none`` turn thinking off. Never raises the caller's budget; never goes
    under the API's minimum of 1024 (below that, thinking is off); and stays
    under ``max_tokens`` when given, as the API requires.
    """
    if effort not in EFFORTS:
        raise ValueError(f"thinking_budget_for(effort={effort!r}): use one of {EFFORTS}")
    share = _THINKING_SHARE.get(effort)
    if share is None or current < _THINKING_MIN:
        return None
    budget = max(_THINKING_MIN, int(current * share))
    budget = min(budget, current)
    if max_tokens is not None:
        if max_tokens <= _THINKING_MIN:
            return None
        budget = min(budget, max_tokens - 1)
    return budget
