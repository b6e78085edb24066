"""``IdenticalRequests``: the same request sent again and again.

An agent stuck re-asking the exact same thing (same model, same messages,
same tools) gets the same answer every time, and pays for every one. The
request is known only by a content-free fingerprint, and memory is a bounded
LRU of the fingerprints seen within the window (those seen before it are
forgotten as new ones arrive), so a long session costs no more than a short one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import timedelta
from typing import cast

from ..adapter import Call
from ..budgets import parse_window
from .base import _MAX_TRACKED, Detection, Detector, LoopState, _action, _builtin, _positive, _window_text


class _Seen(OrderedDict):  # type: ignore[type-arg]
    """The requests a session sent, least recently seen first, and ``oldest``: when the first of
    them was last seen, or earlier (every change to the order puts a later one first), so that a
    new request looks at the oldest only once the window may have left it behind."""

    __slots__ = ("oldest",)
    oldest: float


@_builtin()
class IdenticalRequests(Detector):
    """The same request (content-free fingerprint of model + messages + tools) sent again and again.

    ``max`` identical requests within ``window`` are sent; the next one is
    refused. An agent re-asking the exact same thing gets the same answer:
    redundant context reloads added about 30% to every run of one audited agent.
    """

    signal = "identical"

    def __init__(self, max: int = 3, window: str | timedelta | int = "5m", action: str = "kill") -> None:
        _positive("IdenticalRequests(max)", max)
        _action("IdenticalRequests(action)", action)
        self.max, self.action, self.window_text = max, action, _window_text(window)
        self.window = parse_window(window, what="IdenticalRequests(window)")

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        fingerprint = call.fingerprint
        if fingerprint is None:
            return None
        try:  # a subscript is cheaper than .get(), and a miss happens once per session
            seen: _Seen = state._memory[self]
        except KeyError:
            seen = state._memory[self] = _Seen()
            seen.oldest = now
        key = (call.model, fingerprint)
        horizon = now - self.window
        if key not in seen:
            # Most requests are new (a growing history changes the fingerprint at every
            # step), and this runs on every call: a first sighting is remembered as its
            # bare timestamp, and becomes a deque only if the same request comes again.
            seen[key] = now
            if len(seen) > _MAX_TRACKED:
                seen.popitem(False)  # the least recently used (positional: no keyword parsing)
            elif seen.oldest <= horizon:  # the least recently used may be outside the window: forget
                while True:  # those that are, so memory follows the window, not the session's length
                    last = next(iter(seen.values()))
                    at = last if type(last) is not deque else (last[-1] if last else horizon)
                    if at > horizon:
                        seen.oldest = at
                        break
                    seen.popitem(False)  # never the request just added: it was seen now
            return None
        times = seen[key]
        seen.move_to_end(key)
        if type(times) is not deque:  # seen once, at `times`
            times = cast(float, times)  # what `type() is not deque` means, which mypy cannot infer
            if times <= horizon:
                seen[key] = now
                return None
            if self.max > 1:
                seen[key] = deque((times, now), maxlen=self.max)
                return None
            times = deque((times,))
        else:
            while times and times[0] <= horizon:
                times.popleft()
        if len(times) >= self.max:
            return Detection(
                self.signal, self.action,
                f"the same request to {call.model} was sent {len(times)} times within {self.window_text} "
                f"(max_identical={self.max})",
                len(times) + 1, self.max,
            )
        times.append(now)
        return None

    def __repr__(self) -> str:
        return f"IdenticalRequests(max={self.max}, window={self.window_text!r}, action={self.action!r})"
