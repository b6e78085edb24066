"""Anthropic's ``messages.stream(...)``: a context manager that sends on enter.

The SDK's ``MessageStreamManager`` builds the request when ``stream()`` is
called but sends it only in ``__enter__``, and its ``MessageStream`` reads
the raw SSE stream through ``_raw_stream``. So breaker admits in
``__enter__`` (when money is about to be spent), calls the original
``stream()`` with the patched arguments, and meters the raw stream under the
SDK's helper, so every way of reading it (iteration, ``text_stream``,
``get_final_message()``) is counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ._pipeline import Adapter, _failed, _failure, _patched, _prepare
from ._streams import AsyncGuardedStream, GuardedStream

if TYPE_CHECKING:
    from ..engine import Breaker

__all__ = ["AsyncStreamManager", "StreamManager"]


def _meter_raw(stream: Any, guarded: Any) -> Any:
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

    def __init__(self, guard: Breaker, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._guard, self._adapter, self._wrapped, self._args, self._kwargs = guard, adapter, wrapped, args, kwargs
        self._manager: Any = None

    def __enter__(self) -> Any:
        guard, adapter = self._guard, self._adapter
        kwargs = dict(self._kwargs, stream=True)
        call = _prepare(guard, adapter, kwargs)
        if call is None:
            self._manager = self._wrapped(*self._args, **self._kwargs)
            return self._manager.__enter__()
        ticket = guard.admit(call)
        kwargs, _ = _patched(guard, adapter, ticket, kwargs)
        kwargs.pop("stream", None)
        token = guard._inflight.set(ticket)
        try:
            self._manager = self._wrapped(*self._args, **kwargs)
            stream = self._manager.__enter__()
        except BaseException as exc:
            _failed(guard, adapter, ticket, exc)
            raise
        finally:
            guard._inflight.reset(token)
        meter = adapter.meter(False)
        return _meter_raw(stream, lambda raw: GuardedStream(raw, guard, ticket, meter))

    def __exit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return self._manager.__exit__(*exc)
        return None


class AsyncStreamManager(StreamManager):
    """Stands in for ``AsyncMessageStreamManager``."""

    async def __aenter__(self) -> Any:
        guard, adapter = self._guard, self._adapter
        kwargs = dict(self._kwargs, stream=True)
        call = _prepare(guard, adapter, kwargs)
        if call is None:
            self._manager = self._wrapped(*self._args, **self._kwargs)
            return await self._manager.__aenter__()
        ticket = await guard.admit_async(call)
        kwargs, _ = _patched(guard, adapter, ticket, kwargs)
        kwargs.pop("stream", None)
        token = guard._inflight.set(ticket)
        try:
            self._manager = self._wrapped(*self._args, **kwargs)
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            await guard.settle_async(ticket, **_failure(adapter, ticket, exc))
            raise
        finally:
            guard._inflight.reset(token)
        meter = adapter.meter(False)
        return _meter_raw(stream, lambda raw: AsyncGuardedStream(raw, guard, ticket, meter))

    async def __aexit__(self, *exc: Any) -> Any:
        if self._manager is not None:
            return await self._manager.__aexit__(*exc)
        return None
