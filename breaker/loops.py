"""Runaway-loop detection, per session.

Shaped like tenacity's strategies: each signal is a small ``Detector`` with
two methods over one per-session ``LoopState`` (what tenacity's
``RetryCallState`` is to a stop strategy): ``check`` runs before a call is
sent and may refuse, degrade or warn; ``observe`` runs after the call settles
(or after a retry is reported by ``breaker.retry.before_sleep``). Detectors
compose with ``|``, and a plain function ``fn(state, call, now) -> Detection |
None`` works wherever a detector does. ``LoopPolicy`` bundles the defaults with
the thresholds of DESIGN.md. Every detector's memory is bounded, so a session
that runs for days costs the same few kilobytes as one that runs a minute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Sequence, Union

from .budgets import format_seconds, parse_window
from .call import Call, Outcome
from .errors import ConfigError

__all__ = [
    "ContextGrowth",
    "Detection",
    "Detector",
    "Detectors",
    "ErrorStorm",
    "IdenticalRequests",
    "LoopPolicy",
    "LoopState",
    "NoBackoff",
    "SpendSpike",
    "StepCap",
    "ToolThrash",
]

ACTIONS = ("kill", "degrade", "warn")
_SEVERITY = {"warn": 1, "degrade": 2, "kill": 3}
_MAX_TRACKED = 256  # distinct fingerprints / tool calls remembered per session (LRU)


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's verdict: which ``signal``, what ``action``, and a sentence for a person.

    ``count`` is what was seen, ``limit`` the threshold it passed; no prompt
    or completion text ever goes in here (it ends up in events).
    """

    signal: str
    action: str
    message: str
    count: int = 0
    limit: int = 0


class LoopState:
    """Everything detectors remember about one session, bounded.

    Shared facts are plain attributes: ``calls`` admitted so far, and
    ``last_error_at``, when the latest settled call (or reported retry) failed,
    ``None`` once one succeeds. Each detector keeps its own memory in
    ``memory(detector, factory)``. Detectors run under ``lock``.

    The built-in detectors run on every call, so they skip ``memory()`` (a
    method call, an ``id()`` and often a factory closure per use) and read
    ``_memory`` directly, keyed by the detector object itself, and only when
    there is something to remember. ``_open`` counts the failure memories
    they hold open (an ``ErrorStorm`` window with failures in it, a
    ``NoBackoff`` hot-retry run): while it is 0 and ``last_error_at`` is
    ``None``, their checks have nothing to do and ``Detectors`` skips them.
    """

    __slots__ = ("lock", "calls", "last_error_at", "pending", "_token", "_memory", "_open")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.last_error_at: float | None = None
        self.pending: Detection | None = None  # a kill/degrade seen after a call, applied at the next
        self._token = object()  # marks the exceptions this session has counted
        self._memory: dict[object, Any] = {}
        self._open = 0

    def memory(self, owner: object, factory: Callable[[], Any]) -> Any:
        """``owner``'s private memory in this session, made by ``factory`` on first use."""
        key = id(owner)
        mem = self._memory.get(key)
        if mem is None:
            mem = self._memory[key] = factory()
        return mem

    def _failed(self, error: BaseException | None, now: float) -> None:
        self.last_error_at = now
        if error is not None:
            try:  # marked on the exception itself: ids get reused, and holding exceptions holds their frames
                error.__dict__[_MARK] = self._token
            except (AttributeError, TypeError):  # an exception without a __dict__: may be counted twice
                pass

    def _seen(self, error: BaseException) -> bool:
        """Whether ``error`` (or an exception it wraps) was already recorded as a failure here."""
        e: BaseException | None = error
        for _ in range(8):  # exception chains can be cyclic; a few links are enough
            if e is None:
                return False
            if getattr(e, "__dict__", {}).get(_MARK) is self._token:
                return True
            e = e.__cause__ or e.__context__
        return False


_MARK = "_breaker_loop_failure"


CheckFn = Callable[[LoopState, Call, float], Union[Detection, None]]


class Detector:
    """One signal. Override ``check`` and/or ``observe``; both default to "nothing seen".

    ``a | b`` runs both and reports the most severe verdict.
    """

    signal = "custom"

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        return None

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        return None

    def __or__(self, other: DetectorLike) -> Detectors:
        return Detectors(self, other)

    def __ror__(self, other: DetectorLike) -> Detectors:
        return Detectors(other, self)


DetectorLike = Union[Detector, CheckFn]


class _Function(Detector):
    """A plain ``fn(state, call, now) -> Detection | None`` used as a check-only detector."""

    def __init__(self, fn: CheckFn) -> None:
        self.fn = fn
        self.signal = getattr(fn, "__name__", "custom")

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        return self.fn(state, call, now)

    def __repr__(self) -> str:
        return f"detector({self.fn!r})"


def as_detector(obj: DetectorLike) -> Detector:
    """A detector from a ``Detector``, any object with ``check``/``observe``, or a plain check function."""
    if isinstance(obj, Detector):
        return obj
    if callable(getattr(obj, "check", None)) or callable(getattr(obj, "observe", None)):
        return obj  # type: ignore[return-value]  # duck-typed detector
    if callable(obj):
        return _Function(obj)
    raise ConfigError(f"{obj!r} is not a detector: pass a Detector or a function (state, call, now) -> Detection | None")


def _hook(detector: Any, name: str) -> Callable[..., Detection | None] | None:
    """``detector.<name>`` as a bound method, or ``None`` when it is missing or the base class's no-op."""
    method = getattr(detector, name, None)
    if method is None or getattr(type(detector), name, None) is getattr(Detector, name):
        return None
    return method


def _worst(found: Detection | None, other: Detection | None) -> Detection | None:
    if other is None:
        return found
    if found is None or _SEVERITY.get(other.action, 0) > _SEVERITY.get(found.action, 0):
        return other
    return found


def _unchanged(detector: Any, cls: type, *names: str) -> bool:
    """Whether ``detector`` is a ``cls`` whose ``names`` methods are ``cls``'s own (not overridden)."""
    kind = type(detector)
    return issubclass(kind, cls) and all(getattr(kind, n) is getattr(cls, n) for n in names)


class Detectors(Detector):
    """Several detectors as one: the most severe verdict wins.

    Each runs every time (each keeps its memory up to date), except where
    running it is known to change nothing: an unmodified ``ErrorStorm`` or
    ``NoBackoff`` check while no failure is open (see ``LoopState``), an
    unmodified ``ErrorStorm`` or ``ToolThrash`` observe of a success that
    asked for no tool. This runs on every call, and those are most calls.
    """

    def __init__(self, *detectors: DetectorLike) -> None:
        flat: list[Detector] = []
        for d in detectors:
            flat.extend(d.detectors if isinstance(d, Detectors) else (as_detector(d),))
        for d in flat:
            if isinstance(d, _KEYED) and (type(d).__hash__ is None or type(d).__eq__ is not object.__eq__):
                raise ConfigError(
                    f"{type(d).__name__} keeps its per-session memory under the detector object itself, so it "
                    f"must compare by identity (two equal detectors would share one memory, an unhashable one "
                    f"fails on every call): declare the subclass with @dataclass(eq=False), or drop its __eq__."
                )
        self.detectors: tuple[Detector, ...] = tuple(flat)
        # bound methods, skipping the base class's no-ops: this runs on every call's hot path
        checks = [(d, _hook(d, "check")) for d in flat]
        observes = [(d, _hook(d, "observe")) for d in flat]
        self._checks = tuple(c for _, c in checks if c is not None)
        self._calm_checks = tuple(
            c for d, c in checks
            if c is not None and not _unchanged(d, ErrorStorm, "check", "observe")
            and not _unchanged(d, NoBackoff, "check", "observe")
        )
        self._observes = tuple(o for _, o in observes if o is not None)
        self._success_observes = tuple(
            o for d, o in observes
            if o is not None and not _unchanged(d, ErrorStorm, "observe") and not _unchanged(d, ToolThrash, "observe")
        )

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        found = None
        for check in self._checks if state._open or state.last_error_at is not None else self._calm_checks:
            verdict = check(state, call, now)
            if verdict is not None:
                found = verdict if found is None else _worst(found, verdict)
        return found

    def observe(self, state: LoopState, call: Call | None, outcome: Outcome, now: float) -> Detection | None:
        found = None
        for observe in self._success_observes if outcome.ok and not outcome.tool_calls else self._observes:
            verdict = observe(state, call, outcome, now)
            if verdict is not None:
                found = verdict if found is None else _worst(found, verdict)
        return found

    def __repr__(self) -> str:
        return " | ".join(repr(d) for d in self.detectors)


def _positive(what: str, value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{what}={value!r} must be a whole number of at least 1")


def _action(what: str, value: str) -> None:
    if value not in ACTIONS:
        raise ConfigError(f"{what}={value!r}: use 'kill', 'degrade' or 'warn'")


def _window_text(window: str | timedelta | int) -> str:
    return window if isinstance(window, str) else format_seconds(parse_window(window))


# --------------------------------------------------------------------------- detectors
class IdenticalRequests(Detector):
    """The same request (content-free fingerprint of model + messages + tools) sent again and again.

    ``max`` identical requests within ``window`` are sent; the next one is
    refused. An agent re-asking the exact same thing gets the same answer:
    redundant identical calls are the +30% of the seed problem.
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
            seen: OrderedDict[object, float | deque[float]] = state._memory[self]
        except KeyError:
            seen = state._memory[self] = OrderedDict()
        key = (call.model, fingerprint)
        if key not in seen:
            # Most requests are new (a growing history changes the fingerprint at every
            # step), and this runs on every call: a first sighting is remembered as its
            # bare timestamp, and becomes a deque only if the same request comes again.
            seen[key] = now
            if len(seen) > _MAX_TRACKED:
                seen.popitem(False)  # the least recently used (positional: no keyword parsing)
            return None
        times = seen[key]
        seen.move_to_end(key)
        if type(times) is not deque:  # seen once, at `times`
            if times <= now - self.window:
                seen[key] = now
                return None
            if self.max > 1:
                seen[key] = deque((times, now), maxlen=self.max)
                return None
            times = deque((times,))
        else:
            while times and times[0] <= now - self.window:
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


class NoBackoff(Detector):
    """Calls fired right after a failure, with no backoff in between.

    A call admitted less than ``min_backoff`` seconds after the session's last
    failure is a *hot retry*; ``max`` hot retries in a row are sent, the next
    one is refused. A call after a real pause, or after a success, resets the
    count (a success clears ``last_error_at``, unless a retry library then
    reports the step as failed: a parse error after a paid call is a failure).
    0.5 s is the OpenAI SDK's own first retry delay: anything faster is not a
    backoff. Error-retry loops without backoff are the +40% of the seed problem,
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


class ContextGrowth(Detector):
    """A history that keeps growing: each request's input bound larger than the last, past a size.

    Fires once per session when a call's ``input_tokens`` is at least
    ``limit`` and has risen ``rising`` calls in a row. An agent that resends
    its whole history pays for it again at every step, so its spend grows with
    the square of the steps; ``degrade`` (the default) makes later calls
    follow ``Degrade`` (``keep_last_messages`` trims the history). 100,000 is
    the input *bound* (UTF-8 bytes in strict mode, ~25-50k real tokens): past
    that, every further step costs cents on a frontier model.
    """

    signal = "context_growth"

    def __init__(self, limit: int = 100_000, rising: int = 3, action: str = "degrade") -> None:
        _positive("ContextGrowth(limit)", limit)
        _positive("ContextGrowth(rising)", rising)
        _action("ContextGrowth(action)", action)
        self.limit, self.rising, self.action = limit, rising, action

    def check(self, state: LoopState, call: Call, now: float) -> Detection | None:
        size = call.input_tokens
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


# --------------------------------------------------------------------------- the policy
# The built-in detectors that key LoopState._memory by the detector object (see LoopState).
_KEYED = (IdenticalRequests, ErrorStorm, NoBackoff, ToolThrash, ContextGrowth, SpendSpike)


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
            pending = state.pending
            # self.detectors.check(state, call, now), inlined: one Python call less on every call
            detectors = self.detectors
            found = None
            for check in (detectors._checks if state._open or state.last_error_at is not None
                          else detectors._calm_checks):
                verdict = check(state, call, now)
                if verdict is not None:
                    found = verdict if found is None else _worst(found, verdict)
            if pending is not None:
                state.pending = None
                found = _worst(pending, found)
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

