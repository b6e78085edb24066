"""BreakerLogger after ``litellm.callbacks`` is reassigned (issue 19), with the real LiteLLM against FakeLLM.

LiteLLM keeps the old logger in its internal callback lists and, comparing loggers by class and public
plain attributes, never added the new one to its success lists: calls the new logger admitted were sent
and never settled ($0 recorded, their reservations held until later calls stalled and were refused).
"""

from __future__ import annotations

import time

import pytest

litellm = pytest.importorskip("litellm")

import breaker  # noqa: E402
from breaker import Breaker, Budget, Usage  # noqa: E402
from breaker.testing import FakeLLM, Reply  # noqa: E402
from breaker_litellm import BreakerLogger  # noqa: E402
from tests.conftest import genai_nano  # noqa: E402

MODEL = "gpt-4o"
WORST = 0.0051  # a call's worst case here: 500 output tokens at $10/M, and its input bound


@pytest.fixture
def fake():
    with FakeLLM(default=Reply(text="one more step", output_tokens=50)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_callbacks():
    litellm.logging_callback_manager._reset_all_callbacks()  # LiteLLM copies callbacks into several lists
    yield
    litellm.logging_callback_manager._reset_all_callbacks()


def ask(fake, n: int):
    return litellm.completion(model=f"openai/{MODEL}", api_base=fake.base_url, api_key="k",
                              messages=[{"role": "user", "content": f"step {n}"}], max_tokens=500)


async def aask(fake, n: int):
    return await litellm.acompletion(model=f"openai/{MODEL}", api_base=fake.base_url, api_key="k",
                                     messages=[{"role": "user", "content": f"step {n}"}], max_tokens=500)


def nano(usd: float) -> int:
    return round(usd * 1_000_000_000)


def price(reply) -> int:
    return genai_nano(Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens), MODEL, "openai")


def _guard(**kw) -> Breaker:
    # Two worst cases fit, a third does not: calls left unsettled would make the third wait, then refuse it.
    return Breaker(budgets=[Budget(usd=2.5 * WORST)], alerts=[], reservation_wait=1.0, **kw)


@pytest.mark.parametrize("same_guard", [True, False])
def test_calls_after_reassigning_callbacks_are_settled(fake, same_guard):
    first = _guard()
    old = BreakerLogger(first)
    litellm.callbacks = [old]
    with first.session("before") as before:
        price_before = price(ask(fake, 0))
        assert old.wait_settled(5)
    guard = first if same_guard else _guard()
    new = BreakerLogger(guard)
    litellm.callbacks = [new]  # the old logger stays in LiteLLM's internal lists
    with guard.session("after") as s:
        replies, t0 = [], time.monotonic()
        for n in range(1, 5):
            replies.append(ask(fake, n))
            assert new.wait_settled(5)  # each call settles (LiteLLM settles sync calls in a worker thread)
        assert time.monotonic() - t0 < 1.0  # no call waited for a reservation nobody would settle
    assert fake.count == 5 and s.calls == 4  # counted once each: the old logger did not admit them too
    assert nano(s.cost_usd) == sum(price(r) for r in replies)
    assert before.calls == 1 and nano(before.cost_usd) == price_before  # the old session is unchanged
    assert old.wait_settled(0)  # nothing was left with the old logger


def test_a_refusal_after_reassigning_is_counted_against_what_reached_the_provider(fake):
    guard = _guard()
    old = BreakerLogger(guard)
    litellm.callbacks = [old]
    with guard.session("first"):
        ask(fake, 100)  # the old logger is in LiteLLM's internal lists now
        assert old.wait_settled(5)
    new = BreakerLogger(guard)
    litellm.callbacks = [new]
    fake.reset()
    sent = 0
    with pytest.raises(breaker.SessionKilled):
        with guard.session("refused") as s:
            for n in range(40):
                ask(fake, n)
                sent += 1
                assert new.wait_settled(5)
    assert new.wait_settled(5)
    # The settled spend ran the budget down until the next worst case did not fit: refused before sending.
    assert fake.count == sent == s.calls and 3 <= sent < 40
    assert s.cost_usd <= 2.5 * WORST


async def test_async_calls_after_reassigning_callbacks_are_settled(fake):
    guard = _guard()
    old = BreakerLogger(guard)
    litellm.callbacks = [old]
    async with guard.session("async-first"):
        await aask(fake, 100)  # the old logger is in LiteLLM's internal lists now
        assert await old.wait_settled_async(5)
    new = BreakerLogger(guard)
    litellm.callbacks = [new]
    fake.reset()
    async with guard.session("async-after") as s:
        replies = [await aask(fake, n) for n in range(4)]
        assert await new.wait_settled_async(5)
    assert fake.count == 4 and s.calls == 4
    assert nano(s.cost_usd) == sum(price(r) for r in replies)


def test_two_guards_registered_together_each_settle_their_own(fake):
    a, b = _guard(), _guard()
    la, lb = BreakerLogger(a), BreakerLogger(b)
    litellm.callbacks = [la, lb]  # two loggers of one class: LiteLLM must keep both in every list
    with a.session("shared") as sa, b.session("shared") as sb:
        replies = [ask(fake, n) for n in range(3)]
        assert la.wait_settled(5) and lb.wait_settled(5)
    assert fake.count == 3 and sa.calls == sb.calls == 3
    assert nano(sa.cost_usd) == nano(sb.cost_usd) == sum(price(r) for r in replies)
