"""``breaker.retry`` with real tenacity and the real engine: retry loops end at a kill."""

from __future__ import annotations

import asyncio

import pytest
import tenacity
from tenacity import AsyncRetrying, RetryError, Retrying, retry_if_not_exception_type, stop_after_attempt, wait_fixed

import breaker
from breaker import Breaker, Budget, BudgetExceeded, LoopDetected, LoopPolicy, SessionKilled, Tripped, Usage
from breaker.adapter import Call
from breaker.retry import StopWhenTripped, before_sleep, retry_unless_tripped, stop_when_tripped, tripped_in
from tests.conftest import Clock

MINI = "gpt-4o-mini"


class Agent:
    """One model call per attempt through the engine; counts what was actually sent."""

    def __init__(self, guard: Breaker, *, fails: bool = True, own_error: bool = False) -> None:
        self.guard, self.fails, self.own_error = guard, fails, own_error
        self.sent = 0
        self.attempts = 0
        self.errors: list[BaseException] = []

    def step(self) -> str:
        self.attempts += 1
        ticket = self.guard.admit(Call(MINI, "openai", input_tokens=500, max_output_tokens=100,
                                       fingerprint=f"attempt-{self.attempts}"))
        self.sent += 1
        if self.fails:
            err = TimeoutError("upstream timed out")
            self.guard.settle(ticket, None, error=err)
            self.errors.append(err)
            raise err
        self.guard.settle(ticket, Usage(500, 50))
        if self.own_error:
            raise ValueError("the model's JSON did not parse")  # the agent's own failure, after a paid call
        return "ok"

    async def astep(self) -> str:
        await asyncio.sleep(0)
        return self.step()


def guard_with(**policy) -> tuple[Breaker, Clock]:
    clock = Clock()
    return Breaker(loops=LoopPolicy(**policy), alerts=[], clock=clock), clock


def test_the_predicate_retries_exceptions_but_lets_the_trip_through():
    guard, _ = guard_with(max_hot_retries=3)
    agent = Agent(guard)
    with pytest.raises(SessionKilled) as info:
        with guard.session("s") as s:
            for attempt in Retrying(retry=retry_unless_tripped, stop=stop_after_attempt(50)):
                with attempt:
                    agent.step()
    assert isinstance(info.value.__cause__, LoopDetected)
    assert agent.sent == 4 and s.calls == 4  # 1 call + 3 hot retries sent; the 4th retry refused
    assert agent.attempts == 5  # and tenacity did not retry the refusal


def test_retry_if_not_exception_type_retries_a_trip_the_sticky_trip_keeps_it_free():
    # tenacity: custom predicates retry a BaseException. The trip is sticky, so the
    # refused attempts send nothing; tenacity ends with a RetryError (an Exception).
    guard, _ = guard_with(max_hot_retries=3)
    agent = Agent(guard)
    with guard.session("s") as s:
        with pytest.raises(RetryError) as info:
            for attempt in Retrying(retry=retry_if_not_exception_type(ValueError), stop=stop_after_attempt(20)):
                with attempt:
                    agent.step()
        assert isinstance(info.value.last_attempt.exception(), LoopDetected)
        assert agent.attempts == 20 and agent.sent == 4
        assert s.tripped is not None


def test_stop_when_tripped_ends_such_a_loop_with_the_trip_itself():
    guard, _ = guard_with(max_hot_retries=3)
    agent = Agent(guard)
    with pytest.raises(SessionKilled):
        with guard.session("s"):
            try:
                for attempt in Retrying(retry=retry_if_not_exception_type(ValueError),
                                        stop=stop_when_tripped | stop_after_attempt(20)):
                    with attempt:
                        agent.step()
            except Exception:  # agent code: cannot swallow it
                pytest.fail("the trip was swallowed")
    assert agent.attempts == 5 and agent.sent == 4


def test_before_sleep_reports_the_agents_own_retries():
    # every call succeeds; the agent's parser fails and tenacity retries at once:
    # only the before_sleep hook lets the breaker see that loop
    guard, _ = guard_with(max_hot_retries=2, max_errors=None)
    agent = Agent(guard, fails=False, own_error=True)
    with pytest.raises(SessionKilled) as info:
        with guard.session("s"):
            for attempt in Retrying(retry=retry_unless_tripped, stop=stop_after_attempt(50),
                                    before_sleep=before_sleep(guard)):
                with attempt:
                    agent.step()
    assert info.value.reason == "loop:no_backoff"
    assert agent.sent == 3


def test_without_the_hook_that_loop_is_invisible():
    guard, _ = guard_with(max_hot_retries=2, max_errors=None)
    agent = Agent(guard, fails=False, own_error=True)
    with guard.session("s"):
        with pytest.raises(RetryError):
            for attempt in Retrying(retry=retry_unless_tripped, stop=stop_after_attempt(6)):
                with attempt:
                    agent.step()
    assert agent.sent == 6


def test_before_sleep_does_not_count_a_settled_failure_twice():
    guard, clock = guard_with(max_errors=3, error_window="1m", max_hot_retries=None)
    agent = Agent(guard)
    with pytest.raises(SessionKilled) as info:
        with guard.session("s"):
            for attempt in Retrying(retry=retry_unless_tripped, stop=stop_after_attempt(50),
                                    wait=wait_fixed(2), sleep=clock.advance, before_sleep=before_sleep(guard)):
                with attempt:
                    agent.step()
    assert info.value.reason == "loop:errors"
    assert agent.sent == 3  # 3 failures sent, the call after the 3rd refused (not after 2)


def test_waiting_out_a_real_backoff_is_not_a_hot_retry():
    guard, clock = guard_with(max_hot_retries=1, max_errors=None)
    agent = Agent(guard)
    with guard.session("s"):
        with pytest.raises(RetryError):
            for attempt in Retrying(retry=retry_unless_tripped, stop=stop_after_attempt(6),
                                    wait=wait_fixed(1), sleep=clock.advance, before_sleep=before_sleep(guard)):
                with attempt:
                    agent.step()
    assert agent.sent == 6


def test_hooks_raise_once_the_session_is_tripped_elsewhere():
    guard = Breaker(budgets=[Budget(calls=1)], alerts=[])
    hook = before_sleep(guard)
    with pytest.raises(SessionKilled):
        with guard.session("s"):
            guard.settle(guard.admit(Call(MINI, "openai", input_tokens=10, max_output_tokens=10)), Usage(10, 10))
            with pytest.raises(BudgetExceeded):
                guard.admit(Call(MINI, "openai", input_tokens=10, max_output_tokens=10))  # trips the session
            attempts = 0
            for attempt in Retrying(retry=tenacity.retry_if_exception_type(), stop=StopWhenTripped(guard),
                                    before_sleep=hook):
                with attempt:
                    attempts += 1
                    raise KeyError("unrelated failure")  # no model call: only the guard knows
    assert attempts == 1


def test_a_trip_wrapped_by_agent_code_is_still_recognised():
    trip = LoopDetected("stop", scope="session", key="s", reason="loop:identical")
    try:
        try:
            raise trip
        except BaseException as e:
            raise RuntimeError("agent wrapped it") from e
    except RuntimeError as wrapped:
        assert tripped_in(wrapped) is trip
        state = tenacity.RetryCallState(Retrying(), None, (), {})
        state.set_exception((RuntimeError, wrapped, wrapped.__traceback__))
        assert retry_unless_tripped(state) is False
        with pytest.raises(LoopDetected):
            stop_when_tripped(state)
    assert tripped_in(ValueError("plain")) is None


def test_composes_with_tenacity_operators():
    assert isinstance(retry_unless_tripped & retry_if_not_exception_type(ValueError), tenacity.retry_all)
    assert isinstance(stop_when_tripped | stop_after_attempt(3), tenacity.stop.stop_any)
    assert breaker.retry.retry_unless_tripped is retry_unless_tripped  # reachable as breaker.retry


async def test_async_retrying_the_same_way():
    guard, _ = guard_with(max_hot_retries=2, max_errors=None)
    agent = Agent(guard, fails=False, own_error=True)
    with pytest.raises(SessionKilled) as info:
        async with guard.session("s"):
            async for attempt in AsyncRetrying(retry=retry_unless_tripped,
                                               stop=stop_when_tripped | stop_after_attempt(50),
                                               before_sleep=before_sleep(guard)):
                with attempt:
                    await agent.astep()
    assert isinstance(info.value.__cause__, Tripped)
    assert agent.sent == 3


async def test_async_decorator_with_a_custom_predicate():
    guard, _ = guard_with(max_hot_retries=3)
    agent = Agent(guard)

    @tenacity.retry(retry=retry_if_not_exception_type(ValueError), stop=stop_when_tripped | stop_after_attempt(30))
    async def call_model():
        return await agent.astep()

    with pytest.raises(SessionKilled):
        async with guard.session("s"):
            await call_model()
    assert agent.sent == 4 and agent.attempts == 5


def test_common_misuses_fail_loudly_instead_of_doing_nothing():
    guard, _ = guard_with()
    agent = Agent(guard)
    with pytest.raises(TypeError, match=r"before_sleep\(guard\)"):
        with guard.session("s"):
            for attempt in Retrying(before_sleep=before_sleep, stop=stop_after_attempt(3)):
                with attempt:
                    agent.step()
    with pytest.raises(TypeError, match=r"StopWhenTripped\(guard\)"):
        stop_when_tripped(guard)
