"""``SpendSpike``: one call costing far more than the session's running average.

A history dump or a runaway generation shows up as a single call costing
many times the usual; it can be legitimate, so it warns by default, but a
person should know.
"""

from __future__ import annotations

from ..adapter import Call, Outcome
from ..errors import ConfigError
from .base import Detection, Detector, LoopState, _action, _builtin, _positive


@_builtin()
class SpendSpike(Detector):
    """One call costing far more than the session's running average.

    After ``min_calls`` priced calls, a call costing more than ``factor`` times
    the average of the calls before it is flagged (``warn`` by default: large
    calls can be legitimate, but a person should know). 10x after 5 calls
    ignores ordinary variation in output length and still catches a history
    dump or a runaway generation.
    """

    signal = "spend_spike"

    def __init__(self, factor: float = 10.0, min_calls: int = 5, action: str = "warn") -> None:
        if not isinstance(factor, (int, float)) or factor <= 1:
            raise ConfigError(f"SpendSpike(factor={factor!r}) must be a number above 1")
        _positive("SpendSpike(min_calls)", min_calls)
        _action("SpendSpike(action)", action)
        self.factor, self.min_calls, self.action = float(factor), min_calls, action

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        cost = outcome.cost_nano
        if not outcome.ok or cost is None:
            return None
        try:
            mem: list[int] = state._memory[self]  # total nano-USD, calls
        except KeyError:  # the first priced call: no average to compare with yet
            state._memory[self] = [cost, 1]
            return None
        total = mem[0]
        n = mem[1]
        mem[0] = total + cost
        mem[1] = n + 1
        # `0 <= cost * n <= total` (exact ints) implies `cost * n <= factor * total` for any
        # factor > 1, even rounded: this runs on every call, and settles most without the float product
        if n < self.min_calls or 0 <= cost * n <= total or total == 0 or cost * n <= self.factor * total:
            return None
        ratio = cost * n / total
        return Detection(
            self.signal, self.action,
            f"one call to {call.model if call else 'the model'} cost ${cost / 1e9:,.4f}, {ratio:,.0f}x this "
            f"session's average of ${total / n / 1e9:,.4f}",
            int(ratio), int(self.factor),
        )

    def __repr__(self) -> str:
        return f"SpendSpike(factor={self.factor:g}, min_calls={self.min_calls}, action={self.action!r})"
