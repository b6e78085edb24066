"""``ErrorStorm``: failed calls piling up within a window.

A dead endpoint, a revoked key or a request the API will always reject makes
an agent fail call after call, and a retry loop keeps it at it. Past a few
failures within a short window, the next call is refused instead of sent.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from ..adapter import Call, Outcome
from ..budgets import parse_window
from .base import Detection, Detector, LoopState, _action, _builtin, _positive, _window_text


@_builtin(calm_check=True, success_observe=True)
class ErrorStorm(Detector):
    """Failed calls piling up: after ``max`` failures within ``window`` the next call is refused.

    Failures are what ``settle(..., error=...)`` reports and the retries that
    ``breaker.retry.before_sleep`` reports (each counted once).
    """

    signal = "errors"

    def __init__(self, max: int = 5, window: str | timedelta | int = "1m", action: str = "kill") -> None:
        _positive("ErrorStorm(max)", max)
        _action("ErrorStorm(action)", action)
        self.max, self.action, self.window_text = max, action, _window_text(window)
        self.window = parse_window(window, what="ErrorStorm(window)")

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        errors: deque[float] | None = state._memory.get(self)
        if not errors:  # no failure in the window, nothing to prune or count
            return None
        while errors and errors[0] <= now - self.window:
            errors.popleft()
        if not errors:
            state._open -= 1  # this window has closed
            return None
        if len(errors) >= self.max:
            return Detection(
                self.signal, self.action,
                f"{len(errors)} calls failed within {self.window_text} (max_errors={self.max}): an error storm",
                len(errors), self.max,
            )
        return None

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        if not outcome.ok:  # a success leaves earlier failures in the window: they still count
            errors = state._memory.get(self)
            if errors is None:
                errors = state._memory[self] = deque(maxlen=self.max)
            if not errors:
                state._open += 1  # a window opens: checks run until it closes
            errors.append(now)
        return None

    def __repr__(self) -> str:
        return f"ErrorStorm(max={self.max}, window={self.window_text!r}, action={self.action!r})"
