"""Exact semantics of the counting detectors against a reference model, on random call sequences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from breaker import Breaker, LoopPolicy, Usage
from breaker.adapter import Call
from tests.conftest import Clock

OFF = dict(max_identical=None, max_errors=None, max_tool_repeats=None, max_hot_retries=None,
           context_limit=None, spike_factor=None)

steps = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from([0, 1, 30, 60, 119, 120])), min_size=1, max_size=40)  # gaps that land on the window edge


@given(steps, st.integers(1, 4))
def test_identical_requests_match_the_reference(sequence, limit):
    """With ``warn``, nothing is refused, so every call's verdict can be compared:
    a call is flagged iff ``limit`` unflagged calls with its fingerprint fall in the window before it."""
    clock, flagged = Clock(), []
    guard = Breaker(loops=LoopPolicy(**{**OFF, "max_identical": limit, "identical_window": "2m",
                                        "on_detect": "warn"}),
                    alerts=[lambda e: flagged.append(e)], clock=clock)
    sent: dict[str, list[float]] = {}
    expected = []
    with guard.session("p"):
        for fp, gap in sequence:
            clock.advance(gap)
            now = clock()
            recent = [t for t in sent.get(fp, []) if t > now - 120]
            hit = len(recent) >= limit
            expected.append(hit)
            if not hit:
                sent.setdefault(fp, []).append(now)
            before = len(flagged)
            guard.settle(guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10,
                                          fingerprint=fp)), Usage(10, 10))
            assert (len(flagged) > before) == hit, (fp, now, sent)


@given(st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=30), st.integers(1, 3))
def test_tool_thrash_fires_on_the_n_plus_first_ask(asks, limit):
    flagged = []
    guard = Breaker(loops=LoopPolicy(**{**OFF, "max_tool_repeats": limit, "on_detect": "warn"}),
                    alerts=[lambda e: flagged.append(e)], clock=Clock())
    counts: dict[str, int] = {}
    with guard.session("p"):
        for args in asks:
            counts[args] = counts.get(args, 0) + 1
            before = len(flagged)
            t = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10))
            guard.settle(t, Usage(10, 10), tool_calls=(("search", args),))
            assert (len(flagged) > before) == (counts[args] > limit)
