"""``NoBackoff``: calls fired right after a failure, with no pause in between.

A retry loop without backoff fires its attempts within a second of each
failure, many of them before a per-minute error window has seen enough to
trip. This counts the calls sent too soon after a failure, in a row, and
refuses the next one.
"""

from __future__ import annotations

from ..adapter import Call
from ..errors import ConfigError
from .base import Detection, Detector, LoopState, _action, _builtin, _positive


@_builtin(calm_check=True)
class NoBackoff(Detector):
    """Calls fired right after a failure, with no backoff in between.

    A call admitted less than ``min_backoff`` seconds after the session's last
    failure is a *hot retry*; ``max`` hot retries in a row are sent, the next
    one is refused. A call after a real pause, or after a success, resets the
    count (a success clears ``last_error_at``, unless a retry library then
    reports the step as failed: a parse error after a paid call is a failure).
    0.5 s is the OpenAI SDK's own first retry delay: anything faster is not a
    backoff. Retry loops added about 40% to every run of one audited agent,
    and they outrun a per-minute error window.
    """

    signal = "no_backoff"

    def __init__(self, max: int = 3, min_backoff: float = 0.5, action: str = "kill") -> None:
        _positive("NoBackoff(max)", max)
        _action("NoBackoff(action)", action)
        if not isinstance(min_backoff, (int, float)) or min_backoff <= 0:
            raise ConfigError(f"NoBackoff(min_backoff={min_backoff!r}) must be a positive number of seconds")
        self.max, self.min_backoff, self.action = max, float(min_backoff), action

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        last = state.last_error_at
        hot: list[int] | None = state._memory.get(self)  # [hot retries in a row], made at the first one
        if last is None or now - last >= self.min_backoff:
            if hot is not None and hot[0]:  # a success or a real pause: the count starts afresh
                hot[0] = 0
                state._open -= 1
            return None
        if hot is None:
            hot = state._memory[self] = [0]
        elif hot[0] >= self.max:
            return Detection(
                self.signal, self.action,
                f"{hot[0] + 1} calls in a row were fired less than {self.min_backoff:g}s after a failure "
                f"(max_hot_retries={self.max}): a retry loop without backoff",
                hot[0] + 1, self.max,
            )
        if not hot[0]:
            state._open += 1  # a hot-retry run starts: checks run until it is reset
        hot[0] += 1
        return None

    def __repr__(self) -> str:
        return f"NoBackoff(max={self.max}, min_backoff={self.min_backoff:g}, action={self.action!r})"
