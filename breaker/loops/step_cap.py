"""``StepCap``: a hard cap on the calls one session may make.

The last-resort guard: whatever the runaway looks like, and whether or not
another signal catches it, a session stops at a step count no legitimate run
of the agent reaches.
"""

from __future__ import annotations

from ..adapter import Call
from .base import Detection, Detector, LoopState, _action, _positive


class StepCap(Detector):
    """A hard cap on calls per session: ``max`` calls are sent, the next is refused.

    The simplest runaway guard: a step count no legitimate run of this agent
    reaches (LangGraph's own default recursion limit is ~10,000 steps).
    """

    signal = "max_calls"

    def __init__(self, max: int, action: str = "kill") -> None:
        _positive("StepCap(max)", max)
        _action("StepCap(action)", action)
        self.max, self.action = max, action

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        if state.calls >= self.max:
            return Detection(
                self.signal, self.action,
                f"this session has made {state.calls} calls, its step cap (max_calls={self.max})",
                state.calls + 1, self.max,
            )
        return None

    def __repr__(self) -> str:
        return f"StepCap(max={self.max}, action={self.action!r})"
