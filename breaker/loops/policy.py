"""``LoopPolicy``: the default detectors with their thresholds, and the entry points the engine calls.

Most agents need protection from runaway loops without composing detectors
themselves: one policy object turns each default on or off with one
threshold, adds custom detectors, and runs them all under the session's lock
(``check`` before a call, ``observe`` after it, ``retried`` from a retry
hook), with the combinator's loop inlined because it runs on every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence

from ..adapter import Call, Outcome
from ..budgets import parse_window
from ..checks import seconds, whole
from ..errors import ConfigError
from .base import ACTIONS, Detection, Detector, DetectorLike, Detectors, LoopState, _worst
from .context_growth import ContextGrowth
from .error_storm import ErrorStorm
from .identical import IdenticalRequests
from .no_backoff import NoBackoff
from .spend_spike import SpendSpike
from .step_cap import StepCap
from .tool_thrash import ToolThrash


@dataclass(frozen=True)
class LoopPolicy:
    """Runaway-loop detection per session: the default detectors, tuned by their thresholds.

    Any threshold set to ``None`` turns its detector off; ``extra`` adds your
    own detectors (``Detector`` objects or functions ``(state, call, now) ->
    Detection | None``). ``on_detect`` is the action of the loop signals
    (identical requests, error storms, hot retries, tool thrash, step cap);
    context growth and spend spikes have their own, milder, defaults.

    Args:
        max_identical: identical requests within ``identical_window`` that are
            sent; the next one is refused (3: a 4th identical ask gets the same answer).
        max_errors: failures within ``error_window``; the call after the Nth is
            refused (5 covers a flaky minute without hammering a dead endpoint).
        max_tool_repeats: the same tool with the same arguments may be asked
            for this many times; once more is thrash (4).
        max_calls: a step cap per session (``None``: no cap).
        on_detect: ``"kill"``, ``"degrade"`` or ``"warn"``.
        max_hot_retries: calls in a row fired less than ``min_backoff`` seconds
            after a failure that are sent; the next is refused (3).
        context_limit: input-token bound past which a still-growing history is
            flagged, after ``context_rising`` rising calls in a row.
        context_action: what a growing history does (``"degrade"``: later calls
            follow ``Degrade``, whose ``keep_last_messages`` trims it).
        spike_factor: a call costing this many times the session average
            (after ``spike_min_calls`` calls) is flagged with ``spike_action``.
        extra: more detectors, run after the defaults.
    """

    max_identical: int | None = 3
    identical_window: str | timedelta | int = "5m"
    max_errors: int | None = 5
    error_window: str | timedelta | int = "1m"
    max_tool_repeats: int | None = 4
    max_calls: int | None = None
    on_detect: str = "kill"
    max_hot_retries: int | None = 3
    min_backoff: float = 0.5
    context_limit: int | None = 100_000
    context_rising: int = 3
    context_action: str = "degrade"
    spike_factor: float | None = 10.0
    spike_min_calls: int = 5
    spike_action: str = "warn"
    extra: Sequence[DetectorLike] = ()
    detectors: Detectors = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_identical", "max_errors", "max_tool_repeats", "max_calls", "max_hot_retries", "context_limit"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(f"LoopPolicy({name}={value!r}) must be a whole number of at least 1, or None to turn it off")
        # Numbers NaN or infinity would turn into a detector that fires on everything or nothing
        # (every comparison with NaN is false): a hot retry would be any call after a failure.
        seconds("min_backoff", self.min_backoff, owner="LoopPolicy", high=3600.0, zero=False, example="0.5")
        for name in ("identical_window", "error_window"):
            parse_window(getattr(self, name), what=f"LoopPolicy({name})")
        whole("context_rising", self.context_rising, owner="LoopPolicy", example="3")
        whole("spike_min_calls", self.spike_min_calls, owner="LoopPolicy", example="5")
        f = self.spike_factor
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 1 < f < math.inf):
            raise ConfigError(f"LoopPolicy(spike_factor={f!r}) must be a finite number above 1, e.g. 10.0, "
                              f"or None to turn it off")
        for name in ("on_detect", "context_action", "spike_action"):
            if getattr(self, name) not in ACTIONS:
                raise ConfigError(f"LoopPolicy({name}={getattr(self, name)!r}): use 'kill', 'degrade' or 'warn'")
        act = self.on_detect
        parts: list[DetectorLike] = []
        if self.max_calls is not None:
            parts.append(StepCap(self.max_calls, act))
        if self.max_errors is not None:
            parts.append(ErrorStorm(self.max_errors, self.error_window, act))
        if self.max_hot_retries is not None:
            parts.append(NoBackoff(self.max_hot_retries, self.min_backoff, act))
        if self.max_identical is not None:
            parts.append(IdenticalRequests(self.max_identical, self.identical_window, act))
        if self.max_tool_repeats is not None:
            parts.append(ToolThrash(self.max_tool_repeats, act))
        if self.context_limit is not None:
            parts.append(ContextGrowth(self.context_limit, self.context_rising, self.context_action))
        if self.spike_factor is not None:
            parts.append(SpendSpike(self.spike_factor, self.spike_min_calls, self.spike_action))
        if isinstance(self.extra, (Detector,)) or callable(self.extra):
            raise ConfigError("LoopPolicy(extra=...) takes a list of detectors, e.g. extra=[my_detector]")
        parts.extend(self.extra)
        object.__setattr__(self, "detectors", Detectors(*parts))

    @classmethod
    def only(cls, *detectors: DetectorLike) -> LoopPolicy:
        """A policy running just ``detectors`` (every default off): replace the defaults wholesale."""
        return cls(max_identical=None, max_errors=None, max_tool_repeats=None, max_calls=None,
                   max_hot_retries=None, context_limit=None, spike_factor=None, extra=detectors)

    def new_state(self) -> LoopState:
        """A fresh per-session memory."""
        return LoopState()

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        """Before sending: the most severe verdict of all detectors, or ``None``.

        A call that is not refused (no ``kill``) counts as made.
        """
        lock = state.lock
        lock.acquire()  # this runs on every call: acquire/release costs half of a `with` block
        try:
            # A verdict held since the last call comes first, and wins ties: then
            # self.detectors.check(state, call, now), inlined (one Python call less on every call).
            found = state.pending
            if found is not None:
                state.pending = None
            detectors = self.detectors
            for check in (detectors._checks if state._open or state.last_error_at is not None
                          else detectors._calm_checks):
                verdict = check(state, call, now)
                if verdict is not None:
                    found = _worst(found, verdict)
            if found is None or found.action != "kill":
                state.calls += 1
            return found
        finally:
            lock.release()

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        """After a call settles: remember what it did.

        A ``warn`` verdict is returned (the engine emits it now); a ``kill`` or
        ``degrade`` is held and returned by the next ``check``, where the engine
        acts on it before that call is sent (one ``loop`` event either way).
        """
        lock = state.lock
        lock.acquire()  # as in check: on every call
        try:
            # self.detectors.observe(state, call, outcome, now), inlined as in check
            detectors = self.detectors
            if outcome.ok:
                state.last_error_at = None
                observes = detectors._observes if outcome.tool_calls else detectors._success_observes
            else:
                state._failed(outcome.error, now)
                observes = detectors._observes
            found = None
            for observe in observes:
                verdict = observe(state, call, outcome, now)
                if verdict is not None:
                    found = verdict if found is None else _worst(found, verdict)
            if found is not None and found.action != "warn":
                state.pending = _worst(state.pending, found)
                return None
            return found
        finally:
            lock.release()

    def retried(self, state: LoopState, error: BaseException | None, now: float) -> Detection | None:
        """A retry loop is about to retry after ``error``: count it as a failure, once.

        Unlike ``observe``, every verdict is returned at once (the caller, a
        ``before_sleep`` hook, acts on it before the retry is even attempted).

        A failure the provider adapter already settled (the same exception, or
        one wrapping it) is not counted again; an error of the agent's own
        (a parse failure, ``retry_if_result``) is.
        """
        with state.lock:
            if error is not None and state._seen(error):
                return None
            state._failed(error, now)
            return self.detectors.observe(state, None, Outcome(False, error=error), now)

    def describe(self) -> str:
        return repr(self.detectors)
