"""``ToolThrash``: the model asking for the same tool with the same arguments, over and over.

A model that keeps requesting a result it already has is looping, and every
round trip is a paid call. Counted per (tool name, arguments fingerprint)
pair in a bounded LRU.
"""

from __future__ import annotations

from collections import OrderedDict

from ..adapter import Call, Outcome
from .base import _MAX_TRACKED, Detection, Detector, LoopState, _action, _builtin, _positive


@_builtin(success_observe=True)
class ToolThrash(Detector):
    """The model asking for the same tool with the same arguments over and over.

    Reads ``outcome.tool_calls`` (``(name, arguments_fingerprint)`` pairs);
    ``max`` requests of one pair are allowed, the next is thrash and the
    action applies from the following call on. A tool that answered once will
    answer the same way the fifth time.
    """

    signal = "tool_repeat"

    def __init__(self, max: int = 4, action: str = "kill") -> None:
        _positive("ToolThrash(max)", max)
        _action("ToolThrash(action)", action)
        self.max, self.action = max, action

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        tools = outcome.tool_calls
        if not tools:  # this runs on every call; most ask for no tool
            return None
        counts: OrderedDict[tuple[str, str], int] | None = state._memory.get(self)
        if counts is None:
            counts = state._memory[self] = OrderedDict()
        found = None
        for tool in tools:
            count = counts.get(tool, 0) + 1
            counts[tool] = count
            counts.move_to_end(tool)
            if len(counts) > _MAX_TRACKED:
                counts.popitem(last=False)
            if count > self.max and found is None:
                found = Detection(
                    self.signal, self.action,
                    f"the model asked for tool {tool[0]!r} with the same arguments {count} times "
                    f"(max_tool_repeats={self.max}): tool thrash",
                    count, self.max,
                )
        return found

    def __repr__(self) -> str:
        return f"ToolThrash(max={self.max}, action={self.action!r})"
