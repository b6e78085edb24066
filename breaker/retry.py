"""tenacity helpers that keep a retry loop from outliving a kill.

Agent code wraps model calls in tenacity. Its default predicate retries
``Exception`` only, so a ``Tripped`` (a ``BaseException``) passes through; but
``retry_if_not_exception_type(X)`` and custom predicates retry *anything*,
a trip included, and tenacity's ``RetryError`` at the end is an ordinary
``Exception`` that ``except Exception`` swallows. The trip is sticky, so those
retries spend nothing, but the loop spins on. These three pieces close it:

- ``retry_unless_tripped``: a retry predicate like the default (retry on
  ``Exception``) that never retries a trip, so the trip itself propagates.
- ``stop_when_tripped``: a stop strategy that, once the session is tripped,
  re-raises the trip from inside tenacity (an exception raised in a stop
  callable escapes the retry loop at once, instead of becoming a ``RetryError``).
- ``before_sleep(guard)``: reports each retry to the session's loop detector,
  as a failure for the error-storm and no-backoff signals, so an agent's own
  retry loop (around a parse step, a tool, ``retry_if_result``) is seen too.

Use them together::

    @tenacity.retry(
        retry=retry_unless_tripped,
        stop=stop_when_tripped | tenacity.stop_after_attempt(5),
        wait=tenacity.wait_exponential(max=30),
        before_sleep=breaker.retry.before_sleep(guard),
    )

All work with ``Retrying`` and ``AsyncRetrying`` alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from tenacity import RetryCallState
from tenacity.retry import retry_base
from tenacity.stop import stop_base

from .errors import Tripped

if TYPE_CHECKING:
    from .engine import Breaker

__all__ = [
    "RetryUnlessTripped",
    "StopWhenTripped",
    "before_sleep",
    "retry_unless_tripped",
    "stop_when_tripped",
    "tripped_in",
]


def tripped_in(error: BaseException | None) -> Tripped | None:
    """The ``Tripped`` that ``error`` is, or wraps (``raise X from trip``), if any."""
    for _ in range(8):  # chains can be cyclic; a trip is never buried deep
        if error is None:
            return None
        if isinstance(error, Tripped):
            return error
        error = error.__cause__ or error.__context__
    return None


def _failure(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


class RetryUnlessTripped(retry_base):
    """Retry on ``exception_types`` (``Exception``, like tenacity's default), never on a trip.

    Compose it with ``&`` to keep a trip out of another predicate:
    ``retry_if_not_exception_type(ValueError) & retry_unless_tripped``.
    """

    def __init__(self, exception_types: type[BaseException] | tuple[type[BaseException], ...] = Exception) -> None:
        self.exception_types = exception_types

    def __call__(self, retry_state: RetryCallState) -> bool:
        error = _failure(retry_state)
        if error is None or tripped_in(error) is not None:
            return False
        return isinstance(error, self.exception_types)


retry_unless_tripped = RetryUnlessTripped()


class StopWhenTripped(stop_base):
    """Stop the retry loop once the session is tripped, by re-raising the trip.

    Returning ``True`` would make tenacity raise ``RetryError``, an
    ``Exception`` agent code can swallow; raising the ``Tripped`` instead
    escapes the loop at once, still a ``BaseException``. Without a ``guard``
    it looks at the failed attempt (the trip, or an exception raised from
    it); with one it also reads ``guard``'s current session, tripped by
    another thread or by a call the attempt did not make.
    """

    def __init__(self, guard: Breaker | None = None) -> None:
        self.guard = guard

    def __call__(self, retry_state: RetryCallState) -> bool:
        if not isinstance(retry_state, RetryCallState):
            raise TypeError("stop_when_tripped is already a stop strategy; to pass a guard write "
                            "stop=breaker.retry.StopWhenTripped(guard)")
        trip = tripped_in(_failure(retry_state))
        if trip is not None:
            raise trip
        if self.guard is not None:
            self.guard.raise_if_tripped()
        return False


stop_when_tripped = StopWhenTripped()


def before_sleep(guard: Breaker) -> Callable[[RetryCallState], None]:
    """A tenacity ``before_sleep`` hook reporting each retry to ``guard``'s loop detection.

    Each retry counts as a failure of the current session for the error-storm
    and no-backoff signals, once: a failed model call the provider adapter
    already settled is not counted again. A session already tripped, or a
    detection here whose action is kill, raises the trip from inside tenacity,
    which ends the retry loop at once. (An error storm reached by this retry
    is refused by the next attempt's ``admit``, before any request is sent.)
    """

    if isinstance(guard, RetryCallState):
        raise TypeError("before_sleep needs the guard: write before_sleep=breaker.retry.before_sleep(guard)")

    def hook(retry_state: RetryCallState) -> None:
        error = _failure(retry_state)
        trip = tripped_in(error)
        if trip is not None:
            raise trip
        guard.raise_if_tripped()
        guard.report_retry(error)

    hook.__qualname__ = hook.__name__ = "before_sleep_breaker"
    return hook
