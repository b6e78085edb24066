"""Runaway-loop detection, per session.

Each signal is a small detector with two methods over one per-session state
object: ``check`` runs before a call is sent (and may refuse it), ``observe``
runs after it settles. ``LoopPolicy`` bundles the default detectors with the
thresholds of ``DESIGN.md``; memory per session is bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import timedelta

from .budgets import parse_window
from .call import Call, Outcome
from .errors import ConfigError

__all__ = ["Detection", "LoopPolicy", "LoopState"]

_ACTIONS = ("kill", "degrade", "warn")
_MAX_TRACKED = 256  # distinct fingerprints remembered per session


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's verdict: which ``signal``, what ``action``, and a sentence for a person."""

    signal: str
    action: str
    message: str
    count: int = 0
    limit: int = 0


class LoopState:
    """Per-session memory of recent calls (bounded)."""

    __slots__ = ("lock", "calls", "identical", "errors", "tools", "pending", "last_error_at")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.identical: OrderedDict[object, deque[float]] = OrderedDict()
        self.errors: deque[float] = deque()
        self.tools: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.pending: Detection | None = None
        self.last_error_at: float | None = None


@dataclass(frozen=True)
class LoopPolicy:
    """Thresholds for runaway-loop detection (per session).

    Args:
        max_identical: identical requests (same model, messages and tools) sent
            within ``identical_window``; the next one is refused. 3 because an
            agent re-asking the same thing a 4th time is not going to get a
            different answer.
        max_errors: failed calls within ``error_window``; the call after the
            Nth failure is refused. 5 covers the SDK's own retries of a flaky
            minute without letting a dead endpoint be hammered.
        max_tool_repeats: the model asking for the same tool with the same
            arguments this many times is allowed; once more is thrash.
        max_calls: a step cap on calls per session (``None``: no cap).
        on_detect: ``"kill"``, ``"degrade"`` or ``"warn"``.
    """

    max_identical: int | None = 3
    identical_window: str | timedelta | int = "5m"
    max_errors: int | None = 5
    error_window: str | timedelta | int = "1m"
    max_tool_repeats: int | None = 4
    max_calls: int | None = None
    on_detect: str = "kill"
    _windows: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_identical", "max_errors", "max_tool_repeats", "max_calls"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(f"LoopPolicy({name}={value!r}) must be a whole number of at least 1, or None to turn it off")
        if self.on_detect not in _ACTIONS:
            raise ConfigError(f"LoopPolicy(on_detect={self.on_detect!r}): use 'kill', 'degrade' or 'warn'")
        windows = (
            parse_window(self.identical_window, what="LoopPolicy(identical_window)"),
            parse_window(self.error_window, what="LoopPolicy(error_window)"),
        )
        object.__setattr__(self, "_windows", windows)

    def new_state(self) -> LoopState:
        return LoopState()

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        """Before sending: refuse (by returning a detection) or let the call through."""
        identical_window, error_window = self._windows
        with state.lock:
            if state.pending is not None:
                found, state.pending = state.pending, None
                return found
            if self.max_calls is not None and state.calls >= self.max_calls:
                return Detection(
                    "max_calls", self.on_detect,
                    f"this session has made {state.calls} calls, its step cap (max_calls={self.max_calls})",
                    state.calls, self.max_calls,
                )
            if self.max_errors is not None:
                errors = state.errors
                while errors and errors[0] <= now - error_window:
                    errors.popleft()
                if len(errors) >= self.max_errors:
                    return Detection(
                        "errors", self.on_detect,
                        f"{len(errors)} calls failed within {self.error_window} (max_errors={self.max_errors}): "
                        f"an error storm",
                        len(errors), self.max_errors,
                    )
            fp = call.fingerprint
            if self.max_identical is not None and fp is not None:
                key = (call.model, fp)
                seen = state.identical.get(key)
                if seen is None:
                    seen = state.identical[key] = deque()
                    if len(state.identical) > _MAX_TRACKED:
                        state.identical.popitem(last=False)
                else:
                    state.identical.move_to_end(key)
                while seen and seen[0] <= now - identical_window:
                    seen.popleft()
                if len(seen) >= self.max_identical:
                    return Detection(
                        "identical", self.on_detect,
                        f"the same request to {call.model} was sent {len(seen)} times within "
                        f"{self.identical_window} (max_identical={self.max_identical})",
                        len(seen) + 1, self.max_identical,
                    )
                seen.append(now)
            state.calls += 1
        return None

    def observe(self, state: LoopState, call: Call, outcome: Outcome, now: float) -> Detection | None:
        """After a call: remember errors and tool requests; a detection here refuses the next call."""
        with state.lock:
            if not outcome.ok:
                state.errors.append(now)
                state.last_error_at = now
                if len(state.errors) > 1024:
                    state.errors.popleft()
            if self.max_tool_repeats is not None:
                for tool in outcome.tool_calls:
                    count = state.tools.get(tool, 0) + 1
                    state.tools[tool] = count
                    state.tools.move_to_end(tool)
                    if len(state.tools) > _MAX_TRACKED:
                        state.tools.popitem(last=False)
                    if count > self.max_tool_repeats:
                        found = Detection(
                            "tool_repeat", self.on_detect,
                            f"the model asked for tool {tool[0]!r} with the same arguments {count} times "
                            f"(max_tool_repeats={self.max_tool_repeats}): tool thrash",
                            count, self.max_tool_repeats,
                        )
                        state.pending = found
                        return found
        return None
