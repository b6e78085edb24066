"""What "degrade" does to a request: the ladder, as data.

The engine decides *when* (a budget past ``degrade_at``, a budget that
cannot pay for the full call with ``on_exceed="degrade"``, or a loop detector
whose action is ``degrade``); this object says *what*, as a ``Patch``; the
provider adapter applies it to the request shape it knows (trimming in
``providers/trim.py``, reasoning effort and thinking budgets in
``providers/effort.py``). Nothing here knows a request shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .adapter import Call, Patch
from .checks import near_miss, whole
from .errors import ConfigError
from .providers.effort import EFFORTS
from .usage import MAX_UNITS

__all__ = ["Degrade"]


@dataclass(frozen=True)
class Degrade:
    """How to make a call cheaper.

    Args:
        model_map: model to switch to, by requested model (``{"gpt-5": "gpt-5-mini"}``).
        max_output_tokens: cap output at this many tokens.
        reasoning_effort: OpenAI ``reasoning_effort`` / ``reasoning.effort``; for
            Anthropic, the extended-thinking budget is scaled down to match
            (``breaker.providers.effort.thinking_budget_for``).
        keep_last_messages: keep system messages and the last N messages, never
            separating a tool call from its result (``breaker.providers.trim``).
        hook: ``hook(request_kwargs) -> request_kwargs`` for anything else.
    """

    model_map: Mapping[str, str] | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None
    keep_last_messages: int | None = None
    hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        # Whether each target model has a price is checked by the Breaker, which holds the prices.
        if self.model_map is not None and (
            not isinstance(self.model_map, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in self.model_map.items())
        ):
            raise ConfigError(
                f"Degrade(model_map={self.model_map!r}) must map model names to model names, "
                f"e.g. model_map={{'gpt-4o': 'gpt-4o-mini'}}")
        for name in ("max_output_tokens", "keep_last_messages"):
            value = getattr(self, name)
            if value is not None:
                whole(name, value, owner="Degrade", high=MAX_UNITS, example="1024" if name[0] == "m" else "20")
        if self.reasoning_effort is not None and self.reasoning_effort not in EFFORTS:
            near = near_miss(self.reasoning_effort, EFFORTS) if isinstance(self.reasoning_effort, str) else None
            hint = f"did you mean {near!r}? " if near else ""
            raise ConfigError(f"Degrade(reasoning_effort={self.reasoning_effort!r}): {hint}use one of {EFFORTS}")
        if self.hook is not None and not callable(self.hook):
            raise ConfigError("Degrade(hook=...) must be a function taking and returning the request kwargs")

    def patch(self, call: Call) -> Patch:
        """The patch that degrades ``call``."""
        model = (self.model_map or {}).get(call.model)
        return Patch(
            model=model if model and model != call.model else None,
            max_output_tokens=self.max_output_tokens,
            reasoning_effort=self.reasoning_effort,
            keep_last_messages=self.keep_last_messages,
            hook=self.hook,
        )
