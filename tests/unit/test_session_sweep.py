"""Idle sessions are forgotten a few at a time as new ones arrive, on the guard's clock, never open ones."""

from __future__ import annotations

from breaker import Breaker, Usage
from breaker.adapter import Call
from breaker.engine import sessions as registry

TTL = 600


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0  # far from time.time(): a state stamped with the wrong clock shows

    def __call__(self) -> float:
        return self.now


def _guard() -> tuple[Breaker, Clock]:
    clock = Clock()
    return Breaker(alerts=[], telemetry=False, clock=clock, session_ttl=TTL), clock


def _states(guard: Breaker) -> dict:
    return guard._sessions._states


def _call(guard: Breaker, sid: str) -> None:
    with guard.session(sid):
        guard.settle(guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10)), Usage(5, 5))


def test_states_within_the_ttl_stay_however_many_sessions_arrive():
    guard, clock = _guard()
    for i in range(3000):
        clock.now += 0.01
        _call(guard, f"s{i}")
    assert len(_states(guard)) == 3000  # stamped with the guard's clock: none looks idle


def test_idle_states_go_a_few_at_a_time_as_new_sessions_arrive():
    guard, clock = _guard()
    for i in range(1000):
        _call(guard, f"old{i}")
    clock.now += TTL + 1
    _call(guard, "new0")
    assert len(_states(guard)) == 1000 + 1 - registry._SWEEP_STEP  # no scan: the oldest few only
    for i in range(1, 400):
        _call(guard, f"new{i}")
    assert not any(sid.startswith("old") for sid in _states(guard))
    assert len(_states(guard)) == 400


def test_open_sessions_and_recently_closed_ones_are_never_forgotten():
    guard, clock = _guard()
    with guard.session("long-running"):
        for i in range(50):
            _call(guard, f"a{i}")
        _call(guard, "reused")
        clock.now += TTL - 10
        _call(guard, "reused")  # closed again now: moved behind the others
        clock.now += 20  # the a* are idle past the ttl, "reused" is not, "long-running" is open
        for i in range(100):
            _call(guard, f"b{i}")
        left = set(_states(guard))
        assert "long-running" in left and "reused" in left
        assert not any(sid.startswith("a") for sid in left)
    clock.now += TTL + 1
    guard.sweep()
    assert not _states(guard)  # all closed and idle now: sweep() forgets every one


def test_sweep_forgets_every_idle_state_and_keeps_the_live_ones():
    guard, clock = _guard()
    for i in range(2000):
        _call(guard, f"idle{i}")
    clock.now += TTL + 1
    for i in range(10):
        _call(guard, f"live{i}")
    guard.sweep()
    assert sorted(_states(guard)) == sorted(f"live{i}" for i in range(10))


def test_a_forgotten_session_starts_afresh_and_an_anonymous_call_survives_sweeps():
    guard, clock = _guard()
    guard.settle(guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10)), Usage(5, 5))
    _call(guard, "x")
    first = _states(guard)["x"]
    clock.now += TTL + 1
    guard.sweep()
    assert "x" not in _states(guard) and registry.ANONYMOUS in _states(guard)
    _call(guard, "x")
    assert _states(guard)["x"] is not first
