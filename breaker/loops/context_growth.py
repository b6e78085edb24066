"""``ContextGrowth``: a request history that keeps growing, past a size.

An agent that resends its whole history at every step pays for all of it
again each time, so its spend grows with the square of its steps. This flags
a history that is both large and still growing, once per session, so that
later calls can be degraded (``Degrade(keep_last_messages=...)`` trims it).
"""

from __future__ import annotations

from ..adapter import Call
from .base import Detection, Detector, LoopState, _action, _builtin, _positive


@_builtin()
class ContextGrowth(Detector):
    """A history that keeps growing: each request's input bound larger than the last, past a size.

    Fires once per session when a call's ``input_tokens`` is at least
    ``limit`` and has risen ``rising`` calls in a row. An agent that resends
    its whole history pays for it again at every step, so its spend grows with
    the square of the steps; ``degrade`` (the default) makes later calls
    follow ``Degrade`` (``keep_last_messages`` trims the history). 100,000 is
    the input's byte-count bound (``Call.input_bytes`` where the adapter gives it:
    UTF-8 bytes in strict mode, ~25-50k real tokens), not the tighter bound learned
    from the provider's reports: past that, every further step costs cents on a
    frontier model.
    """

    signal = "context_growth"

    def __init__(self, limit: int = 100_000, rising: int = 3, action: str = "degrade") -> None:
        _positive("ContextGrowth(limit)", limit)
        _positive("ContextGrowth(rising)", rising)
        _action("ContextGrowth(action)", action)
        self.limit, self.rising, self.action = limit, rising, action

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        size = call.input_tokens if call.input_bytes is None else call.input_bytes  # the byte-count bound, always
        try:
            mem: list[int] = state._memory[self]  # last size, run length, fired
        except KeyError:  # the first call: no run yet
            state._memory[self] = [size, 0, 0]
            return None
        if mem[2]:  # fires once per session: nothing left to track
            return None
        last = mem[0]
        mem[0] = size
        if not size > last >= 0:
            mem[1] = 0
            return None
        run = mem[1] = mem[1] + 1
        if size < self.limit or run < self.rising:
            return None
        mem[2] = 1
        return Detection(
            self.signal, self.action,
            f"the request history has grown {run} calls in a row, to an input bound of {size:,} tokens "
            f"(context_limit={self.limit:,}): each further step resends all of it",
            size, self.limit,
        )

    def __repr__(self) -> str:
        return f"ContextGrowth(limit={self.limit}, rising={self.rising}, action={self.action!r})"
