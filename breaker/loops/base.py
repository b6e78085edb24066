"""What every loop detector shares: the verdict, one session's memory, the ``Detector`` base and its ``|``.

A runaway agent shows itself in several ways (the same request again and
again, failures piling up, retries with no pause, ...); each is caught by one
small detector in its own module, and a detector of your own is written
against the same few pieces, defined here. Shaped like tenacity's strategies:
each signal is a ``Detector`` with two methods over one per-session
``LoopState`` (what tenacity's ``RetryCallState`` is to a stop strategy):
``check`` runs before a call is sent and may refuse, degrade or warn;
``observe`` runs after the call settles (or after a retry is reported by
``breaker.retry.before_sleep``). Detectors compose with ``|`` into a
``Detectors``, which runs them all on every call and keeps the most severe
verdict; a plain function ``fn(state, call, now) -> Detection | None`` works
wherever a detector does. Every detector's memory is bounded, so a session
that runs for days costs the same few kilobytes as one that runs a minute.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar, Union

from ..adapter import Call, Outcome
from ..budgets import format_seconds, parse_window
from ..errors import ConfigError

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


# What ``Detectors`` knows about the built-in detectors, declared by each one with ``@_builtin`` where it
# is defined (they import this module, so it cannot import them):
_KEYED: tuple[type[Detector], ...] = ()  # keep their memory in LoopState._memory keyed by the detector object
_CALM_CHECK: tuple[type[Detector], ...] = ()  # check: nothing to do while no failure is open (see LoopState)
_SUCCESS_OBSERVE: tuple[type[Detector], ...] = ()  # observe: nothing to do for a success that asked for no tool

_D = TypeVar("_D", bound=Detector)


def _builtin(*, calm_check: bool = False, success_observe: bool = False) -> Callable[[type[_D]], type[_D]]:
    """Register a built-in detector class that keys ``LoopState._memory`` by the detector object.

    ``calm_check``: its ``check`` has nothing to do while ``LoopState._open`` is 0 and
    ``last_error_at`` is ``None``; ``success_observe``: its ``observe`` has nothing to do
    for a successful outcome with no tool calls. ``Detectors`` skips those calls for an
    instance whose class has not overridden ``check`` or ``observe``.
    """

    def register(cls: type[_D]) -> type[_D]:
        global _KEYED, _CALM_CHECK, _SUCCESS_OBSERVE
        _KEYED += (cls,)
        if calm_check:
            _CALM_CHECK += (cls,)
        if success_observe:
            _SUCCESS_OBSERVE += (cls,)
        return cls

    return register


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
            if c is not None and not any(_unchanged(d, cls, "check", "observe") for cls in _CALM_CHECK)
        )
        self._observes = tuple(o for _, o in observes if o is not None)
        self._success_observes = tuple(
            o for d, o in observes
            if o is not None and not any(_unchanged(d, cls, "observe") for cls in _SUCCESS_OBSERVE)
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
