"""The per-call fast paths of ``breaker.loops`` change nothing a detector would see.

``Detectors`` skips an unmodified ``ErrorStorm``/``NoBackoff`` check while no
failure is open, and an unmodified ``ErrorStorm``/``ToolThrash`` observe of a
plain success; ``IdenticalRequests`` remembers a first sighting as a bare
timestamp. These tests pin the edges of those shortcuts.
"""

from __future__ import annotations

from breaker.adapter import Call, Outcome
from breaker.loops import ErrorStorm, IdenticalRequests, LoopPolicy, NoBackoff, ToolThrash

OFF = dict(max_identical=None, max_errors=None, max_tool_repeats=None, max_hot_retries=None,
           context_limit=None, spike_factor=None)
OK = Outcome(True, None, 1000, (), None)
FAIL = Outcome(False, None, None, (), None)


def call(fp=None):
    return Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10, fingerprint=fp)


def test_an_error_window_closes_and_reopens():
    policy = LoopPolicy(**{**OFF, "max_errors": 2, "error_window": 10})
    state = policy.new_state()
    policy.observe(state, call(), FAIL, 0)
    policy.observe(state, call(), OK, 1)  # a success: the failure still counts
    assert policy.check(state, call(), 5) is None
    policy.observe(state, call(), FAIL, 6)
    assert policy.check(state, call(), 9).signal == "errors"  # 2 failures within 10s
    assert policy.check(state, call(), 30) is None  # both out of the window: it closes
    assert state._open == 0
    policy.observe(state, call(), FAIL, 31)
    policy.observe(state, call(), FAIL, 32)
    assert policy.check(state, call(), 33).signal == "errors"  # and reopens


def test_a_hot_retry_run_is_reset_by_a_success_even_when_checks_are_skipped():
    policy = LoopPolicy(**{**OFF, "max_hot_retries": 2, "min_backoff": 1})
    state = policy.new_state()
    policy.observe(state, call(), FAIL, 0)
    assert policy.check(state, call(), 0.1) is None  # hot 1
    assert policy.check(state, call(), 0.2) is None  # hot 2
    policy.observe(state, call(), OK, 0.3)
    assert policy.check(state, call(), 0.4) is None  # after a success: the run resets
    assert state._open == 0
    policy.observe(state, call(), FAIL, 0.5)
    assert policy.check(state, call(), 0.6) is None  # hot 1 of a new run, not 3
    assert policy.check(state, call(), 0.7) is None
    assert policy.check(state, call(), 0.8).signal == "no_backoff"


def test_subclasses_that_override_a_skipped_hook_still_run_every_time():
    seen = []

    class CountingStorm(ErrorStorm):
        def observe(self, state, c, outcome, now):
            seen.append(("storm", outcome.ok))
            return super().observe(state, c, outcome, now)

    class CountingBackoff(NoBackoff):
        def check(self, state, c, now):
            seen.append(("backoff", now))
            return super().check(state, c, now)

    class CountingThrash(ToolThrash):
        def observe(self, state, c, outcome, now):
            seen.append(("thrash", outcome.tool_calls))
            return super().observe(state, c, outcome, now)

    policy = LoopPolicy.only(CountingStorm(), CountingBackoff(), CountingThrash())
    state = policy.new_state()
    policy.check(state, call(), 1)
    policy.observe(state, call(), OK, 1)
    assert seen == [("backoff", 1), ("storm", True), ("thrash", ())]


def test_a_first_sighting_becomes_a_count_on_the_second():
    for limit in (1, 2, 3):
        policy = LoopPolicy.only(IdenticalRequests(max=limit, window=10, action="warn"))
        state = policy.new_state()
        verdicts = [policy.check(state, call("same"), t) for t in (0, 1, 2, 3)]
        assert [v is not None for v in verdicts] == [i >= limit for i in range(4)]
        assert policy.check(state, call("same"), 20) is None  # all out of the window


def test_memory_stays_bounded_with_first_sightings():
    policy = LoopPolicy.only(IdenticalRequests(max=2))
    state = policy.new_state()
    for i in range(1000):
        policy.check(state, call(i), float(i) / 1000)
    assert max(len(m) for m in state._memory.values()) == 256
    assert policy.check(state, call(0), 1.5) is None  # evicted: a new sighting
    assert policy.check(state, call(999), 1.5) is None  # still remembered: its second sighting
    assert policy.check(state, call(999), 1.6) is not None


def test_a_built_in_detector_subclass_must_compare_by_identity():
    """Built-in detectors keep their session memory under the detector object: a value-equal
    subclass would share one memory between two detectors, an unhashable one would fail per call."""
    from dataclasses import dataclass

    import pytest

    from breaker import ConfigError

    @dataclass
    class Strict(IdenticalRequests):  # eq=True: unhashable
        label: str = "x"

        def __post_init__(self) -> None:
            IdenticalRequests.__init__(self, max=1)

    with pytest.raises(ConfigError, match=r"@dataclass\(eq=False\)"):
        LoopPolicy.only(Strict())

    @dataclass(eq=False)
    class Fine(IdenticalRequests):
        label: str = "x"

        def __post_init__(self) -> None:
            IdenticalRequests.__init__(self, max=1)

    a, b = Fine(), Fine()
    policy = LoopPolicy.only(a, b)
    state = policy.new_state()
    assert policy.check(state, call(fp=1), 0) is None
    found = policy.check(state, call(fp=1), 1)  # the second identical request passes max=1
    assert found is not None and found.count == 2  # each detector counted it once, in its own memory
    assert len(state._memory) == 2
