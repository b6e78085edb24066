"""Streams: metered as events arrive, cut at the reservation, always billed.

A ``GuardedStream`` is a ``wrapt.ObjectProxy`` over the SDK's stream, so
user code (and the SDKs' own stream helpers) see the same object. Each event
goes through the adapter's ``Meter``; the stream settles exactly once, on
whichever comes first: the end of the stream, an error while reading,
``close()``, ``__exit__``, or garbage collection of an abandoned stream (as
OpenTelemetry's own OpenAI instrumentation does).

**The conservative output count.** Providers report streamed usage only at
the end (OpenAI chat only when asked), so while a stream runs the meter keeps
two counts of what arrived:

* ``deltas``: output-carrying events (text, refusal, reasoning/thinking and
  tool-argument deltas). Every such event carries at least one token, so this
  is a lower bound on output tokens. The stream is **cut** when it would pass
  ``ticket.output_budget`` (the output the reservation paid for), or when the
  provider's own cumulative count (Anthropic's ``message_delta``) does: that
  only happens when a provider does not honour the lowered ``max_tokens``,
  and the cut never fires on an honest answer.
* ``text_bytes``: UTF-8 bytes of that output, an upper bound (no token is
  shorter than a byte). A stream that ends without provider usage (abandoned,
  closed early, broken) is **billed** ``max(deltas, min(text_bytes,
  output_budget))`` output tokens (the provider was told to stop at the
  budget), and the input at the request's bound unless the provider already
  reported it (Anthropic's ``message_start``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import wrapt

from ..adapter import args_fingerprint, stream_overrun, warn_unreadable
from ..usage import Usage

if TYPE_CHECKING:
    from ..adapter import Guard, Ticket

__all__ = ["AsyncGuardedStream", "GuardedStream", "Meter"]

log = logging.getLogger("breaker")


class Meter:
    """Reads one stream's events (subclassed per request shape).

    ``feed(event)`` updates the counts and returns whether the caller should
    see the event (``False`` hides the usage-only chunk breaker asked for).
    """

    __slots__ = ("deltas", "text_bytes", "usage", "reported_output", "input_usage", "hide_usage", "_tools")

    def __init__(self, hide_usage: bool = False) -> None:
        self.deltas = 0
        self.text_bytes = 0
        self.usage: Usage | None = None  # the provider's final usage, once seen
        self.reported_output = 0  # a cumulative output count the provider sent mid-stream
        self.input_usage: Usage | None = None  # input figures the provider sent at the start
        self.hide_usage = hide_usage
        self._tools: dict[Any, list[Any]] = {}

    def feed(self, event: Any) -> bool:
        raise NotImplementedError

    def add_text(self, text: str | None) -> None:
        if text:
            self.deltas += 1
            self.text_bytes += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

    def add_tool(self, key: Any, name: str | None, arguments: str | None) -> None:
        entry = self._tools.get(key)
        if entry is None:
            entry = self._tools[key] = [name or "", []]
        elif name:
            entry[0] = name
        if arguments:
            entry[1].append(arguments)

    def tool_calls(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, args_fingerprint("".join(parts))) for name, parts in self._tools.values())

    @property
    def seen_output(self) -> int:
        return max(self.deltas, self.reported_output)

    def billed(self, ticket: Ticket) -> Usage:
        """What to bill when the stream ended without the provider's final usage."""
        output = max(self.deltas, self.reported_output, min(self.text_bytes, ticket.output_budget))
        start = self.input_usage
        if start is not None:
            return start.replace(output_tokens=output, tool_calls=len(self._tools))
        return Usage(input_tokens=ticket.call.input_tokens, output_tokens=output, tool_calls=len(self._tools))


class _Metered:
    """One stream's bookkeeping, shared by the sync and async proxies (kept off the proxy for speed).

    ``take`` is the pure part of reading an event; ``finish`` / ``finish_async``
    only add the settlement's I/O.
    """

    __slots__ = ("guard", "ticket", "meter", "done", "reading", "unreadable")

    def __init__(self, guard: Guard, ticket: Ticket, meter: Meter) -> None:
        self.guard = guard
        self.ticket = ticket
        self.meter = meter
        self.done = False
        self.reading = False  # inside the SDK's __next__: its own closing is followed by an end or an error
        self.unreadable = False  # an event's usage could not be read: the stream bills its worst case

    def take(self, event: Any) -> tuple[bool, BaseException | None]:
        """Feed one event: ``(show it, the error that ends the stream)``.

        An event breaker cannot read (usage it cannot parse, a shape it does not
        know) is still shown: the stream goes on and is billed at its reserved worst
        case (``warn_unreadable``). An answer past the reservation ends the stream
        with the stream cut (``stream_overrun``).
        """
        meter = self.meter
        try:
            show = meter.feed(event)
        except Exception as exc:
            if not self.unreadable:
                self.unreadable = True
                warn_unreadable("A streamed answer", exc)
            show = True
        return show, stream_overrun(self.ticket, meter.seen_output)

    def closed(self) -> None:
        if not self.reading:
            self.finish()

    def _closing(self, error: BaseException | None) -> tuple[Usage, Any, BaseException | None] | None:
        """Mark the stream settled; ``settle``'s arguments, or ``None`` if it was settled already."""
        if self.done:
            return None
        self.done = True
        meter, ticket = self.meter, self.ticket
        ticket.streamed_output = meter.seen_output
        usage = ticket.worst_case_usage() if self.unreadable else meter.usage
        if usage is None:
            usage = meter.billed(ticket)
        return usage, meter.tool_calls(), error if isinstance(error, Exception) else None

    def finish(self, error: BaseException | None = None) -> None:
        settlement = self._closing(error)
        if settlement is not None:
            try:
                self.guard.settle(self.ticket, settlement[0], tool_calls=settlement[1], error=settlement[2])
            except Exception:  # settling must never replace the caller's own exception
                log.exception("breaker could not settle a stream")
                if error is None:
                    raise

    async def finish_async(self, error: BaseException | None = None) -> None:
        """``finish`` from an async stream: a SQLite or Redis ledger is waited for off the event loop."""
        settlement = self._closing(error)
        if settlement is not None:
            try:
                await self.guard.settle_async(self.ticket, settlement[0], tool_calls=settlement[1], error=settlement[2])
            except Exception:  # as in finish
                log.exception("breaker could not settle a stream")
                if error is None:
                    raise

    def abandoned(self) -> None:
        """From a finalizer: settle what arrived, never raise."""
        if not self.done:
            try:
                self.finish()
            except Exception:  # pragma: no cover - never raise from a finalizer
                pass


def _on_response_close(stream: Any, g: _Metered, name: str) -> None:
    """Settle when the HTTP response is closed by anyone.

    The SDKs' stream helpers (``chat.completions.stream()``, ``responses.stream()``)
    close the HTTP response directly on early exit rather than the stream
    object, so the proxy would only notice at garbage collection; hooking the
    response's own ``close`` settles at once.
    """
    response = getattr(stream, "response", None)
    original = getattr(response, name, None)
    if original is None:
        return
    if name == "aclose":

        async def aclose() -> None:
            try:
                await original()
            finally:
                g.closed()

        hook: Any = aclose
    else:

        def close() -> None:
            try:
                original()
            finally:
                g.closed()

        hook = close
    try:
        setattr(response, name, hook)
    except (AttributeError, TypeError):  # a response type that refuses: GC and close() still settle
        pass


class GuardedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A sync SDK stream, metered and settled exactly once."""

    def __init__(self, wrapped: Any, guard: Guard, ticket: Ticket, meter: Meter) -> None:
        super().__init__(wrapped)
        self._self_g = _Metered(guard, ticket, meter)
        _on_response_close(wrapped, self._self_g, "close")

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        g = self._self_g
        while True:
            g.reading = True
            try:
                event = self.__wrapped__.__next__()
            except BaseException as exc:
                g.finish(None if isinstance(exc, StopIteration) else exc)
                raise
            finally:
                g.reading = False
            show, end = g.take(event)
            if end is not None:
                g.finish()
                self.__wrapped__.close()
                raise end
            if show:
                return event

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_g.finish()

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        g = getattr(self, "_self_g", None)
        if g is not None:
            g.abandoned()


class AsyncGuardedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """An async SDK stream, metered and settled exactly once."""

    def __init__(self, wrapped: Any, guard: Guard, ticket: Ticket, meter: Meter) -> None:
        super().__init__(wrapped)
        self._self_g = _Metered(guard, ticket, meter)
        _on_response_close(wrapped, self._self_g, "aclose")

    def __aiter__(self) -> AsyncGuardedStream:
        return self

    async def __anext__(self) -> Any:
        g = self._self_g
        while True:
            g.reading = True
            try:
                event = await self.__wrapped__.__anext__()
            except BaseException as exc:
                await g.finish_async(None if isinstance(exc, StopAsyncIteration) else exc)
                raise
            finally:
                g.reading = False
            show, end = g.take(event)
            if end is not None:
                await g.finish_async()
                await self.__wrapped__.close()
                raise end
            if show:
                return event

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            await self._self_g.finish_async()

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __del__(self) -> None:
        g = getattr(self, "_self_g", None)
        if g is not None:
            g.abandoned()
