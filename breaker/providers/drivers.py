"""The I/O around an ``Attempt``: admit, send, settle, for sync and async SDK methods.

Each driver only sends, waits and settles; every decision is the
``Attempt``'s. The sync and async pairs differ only where one awaits.

Anthropic's ``messages.stream(...)`` is a context manager that sends on enter:
the SDK's ``MessageStreamManager`` builds the request when ``stream()`` is
called but sends it only in ``__enter__``, and its ``MessageStream`` reads the
raw SSE stream through ``_raw_stream``. So ``StreamManager`` admits in
``__enter__`` (when money is about to be spent), calls the original
``stream()`` with the patched arguments, and meters the raw stream under the
SDK's helper, so every way of reading it (iteration, ``text_stream``,
``get_final_message()``) is counted.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable

from .attempt import Adapter, Attempt, Settlement, is_raw
from .streams import AsyncGuardedStream, GuardedStream

if TYPE_CHECKING:
    from ..adapter import Guard, Ticket

__all__ = ["AsyncStreamManager", "StreamManager", "run_async", "run_sync"]


def _request(guard: Guard, attempt: Attempt, ticket: Ticket) -> dict[str, Any]:
    try:
        return attempt.request(ticket)
    except BaseException:
        guard.release(ticket)
        raise


def _settle(guard: Guard, ticket: Ticket, s: Settlement) -> None:
    guard.settle(ticket, s.usage, tool_calls=s.tool_calls, error=s.error, sent=s.sent)


async def _settle_async(guard: Guard, ticket: Ticket, s: Settlement) -> None:
    await guard.settle_async(ticket, s.usage, tool_calls=s.tool_calls, error=s.error, sent=s.sent)


def run_sync(guard: Guard, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Admit, patch, send, settle: for a sync SDK method."""
    attempt = Attempt.begin(guard, adapter, kwargs)
    if attempt is None:
        return wrapped(*args, **kwargs)
    ticket = guard.admit(attempt.call)
    send = _request(guard, attempt, ticket)
    with guard.sending(ticket):
        try:
            result = wrapped(*args, **send)
        except BaseException as exc:
            _settle(guard, ticket, attempt.failure(exc))
            raise
    if ticket.call.stream and (stream := attempt.stream(guard, ticket, result)) is not None:
        return stream
    # A raw response (with_raw_response) is parsed here; parse() caches, so the caller gets the same object.
    settlement, error = attempt.response(ticket, result.parse() if is_raw(result) else result)
    _settle(guard, ticket, settlement)
    if error is not None:
        raise error
    return result


async def run_async(
    guard: Guard, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
) -> Any:
    """``run_sync`` for coroutine SDK methods (admission waits with ``asyncio.sleep``)."""
    attempt = Attempt.begin(guard, adapter, kwargs)
    if attempt is None:
        return await wrapped(*args, **kwargs)
    ticket = await guard.admit_async(attempt.call)
    send = _request(guard, attempt, ticket)
    with guard.sending(ticket):
        try:
            result = await wrapped(*args, **send)
        except BaseException as exc:
            await _settle_async(guard, ticket, attempt.failure(exc))
            raise
    if ticket.call.stream and (stream := attempt.stream(guard, ticket, result)) is not None:
        return stream
    body = result.parse() if is_raw(result) else result
    if inspect.isawaitable(body):
        body = await body
    settlement, error = attempt.response(ticket, body)
    await _settle_async(guard, ticket, settlement)
    if error is not None:
        raise error
    return result


def _meter_raw(stream: Any, guarded: Callable[[Any], Any]) -> Any:
    raw = getattr(stream, "_raw_stream", None)
    if raw is None:
        raise RuntimeError(
            "breaker cannot meter this Anthropic SDK's MessageStream (no _raw_stream); "
            "pin anthropic to a tested version or report this to agent-cost-breaker"
        )
    stream._raw_stream = guarded(raw)
    return stream


class StreamManager:
    """Stands in for ``MessageStreamManager``: admission and metering around its ``__enter__``."""

    def __init__(self, guard: Guard, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._guard, self._adapter, self._wrapped, self._args, self._kwargs = guard, adapter, wrapped, args, kwargs
        self._manager: Any = None

    def _begin(self) -> Attempt | None:
        return Attempt.begin(self._guard, self._adapter, dict(self._kwargs, stream=True))

    def _open(self, attempt: Attempt, ticket: Ticket) -> Any:
        """The SDK's manager, built with the patched arguments (``stream`` is its own)."""
        send = _request(self._guard, attempt, ticket)
        send.pop("stream", None)
        self._manager = self._wrapped(*self._args, **send)
        return self._manager

    def __enter__(self) -> Any:
        guard, attempt = self._guard, self._begin()
        if attempt is None:
            self._manager = self._wrapped(*self._args, **self._kwargs)
            return self._manager.__enter__()
        ticket = guard.admit(attempt.call)
        with guard.sending(ticket):
            try:
                stream = self._open(attempt, ticket).__enter__()
            except BaseException as exc:
                _settle(guard, ticket, attempt.failure(exc))
                raise
        meter = self._adapter.meter(False)
        return _meter_raw(stream, lambda raw: GuardedStream(raw, guard, ticket, meter))

    def __exit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return self._manager.__exit__(*exc)
        return None


class AsyncStreamManager(StreamManager):
    """Stands in for ``AsyncMessageStreamManager``."""

    async def __aenter__(self) -> Any:
        guard, attempt = self._guard, self._begin()
        if attempt is None:
            self._manager = self._wrapped(*self._args, **self._kwargs)
            return await self._manager.__aenter__()
        ticket = await guard.admit_async(attempt.call)
        with guard.sending(ticket):
            try:
                stream = await self._open(attempt, ticket).__aenter__()
            except BaseException as exc:
                await _settle_async(guard, ticket, attempt.failure(exc))
                raise
        meter = self._adapter.meter(False)
        return _meter_raw(stream, lambda raw: AsyncGuardedStream(raw, guard, ticket, meter))

    async def __aexit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return await self._manager.__aexit__(*exc)
        return None
