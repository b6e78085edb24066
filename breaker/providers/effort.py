"""Reasoning effort: one vocabulary for every provider, and how a degrade lowers it.

OpenAI takes ``reasoning_effort`` (chat) or ``reasoning.effort`` (Responses);
Anthropic has no effort, only an extended-thinking token budget; Gemini has a
``thinking_budget`` (2.5) or a ``thinking_level`` (3); frameworks pass either
through. ``Degrade(reasoning_effort=...)`` names a level in ``EFFORTS``, and
every adapter and plugin applies it with ``lower_effort`` (never raising what
the caller chose) or, for Anthropic, ``thinking_budget_for``, for Gemini,
``gemini_thinking``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EFFORTS", "GEMINI_THINKING_BUDGETS", "gemini_thinking", "lower_effort", "thinking_budget_for"]

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


GEMINI_THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1_024, "medium": 8_192}
"""Gemini ``thinking_budget`` (thinking tokens, billed as output) per degraded effort level.

``high`` and ``xhigh`` keep the caller's budget (or the model's dynamic default). The
figures sit inside every Gemini 2.5 model's accepted range (Flash 0-24,576, Flash-Lite
0 or 512-24,576); a Pro model cannot turn thinking off, so ``none`` gives it its
minimum, ``GEMINI_PRO_MIN_BUDGET``.
"""
GEMINI_PRO_MIN_BUDGET = 128


def gemini_thinking(effort: str, model: str, budget: Any, level: Any) -> tuple[int | None, str | None]:
    """The ``(thinking_budget, thinking_level)`` a degraded Gemini call should send; ``None`` keeps a field as is.

    Why two fields: Gemini 2.5 bounds thinking by a token budget, Gemini 3 by a level
    (``MINIMAL`` ... ``HIGH``), and a request may carry only one of them. The field the
    caller set is lowered (``thinking_budget=-1``, dynamic, counts as unbounded); with
    neither set, a 2.5 model gets a budget from ``GEMINI_THINKING_BUDGETS`` and a 3 model a
    level named like the effort (a Pro model's lowest level is ``LOW``). Other models
    (1.5, 2.0) do not think: nothing is set. Never raises what the caller chose.
    """
    if effort not in EFFORTS:
        raise ValueError(f"gemini_thinking(effort={effort!r}): use one of {EFFORTS}")
    name = model.rpartition("/")[2]
    pro = "-pro" in name
    if level is not None or (budget is None and name.startswith("gemini-3")):
        current = str(getattr(level, "value", level) or "high").lower()
        wanted = "minimal" if effort == "none" else effort
        if pro and wanted == "minimal":
            wanted = "low"
        new = lower_effort(current if current in EFFORTS else "high", wanted)
        return None, (None if new == current else new.upper())
    if budget is None and not name.startswith("gemini-2.5"):
        return None, None
    cap = GEMINI_THINKING_BUDGETS.get(effort)
    if cap is None:
        return None, None
    if pro:
        cap = max(cap, GEMINI_PRO_MIN_BUDGET)
    if type(budget) is int and 0 <= budget <= cap:
        return None, None  # the caller asked for less already
    return cap, None
