"""Streams: metered as events arrive, cut at the reservation, always billed.

A ``GuardedStream`` is a ``wrapt.ObjectProxy`` over the SDK's stream, so
user code (and the SDKs' own stream helpers) see the same object. Each event
goes through the adapter's ``Meter``; the stream settles exactly once, on
whichever comes first: the end of the stream, an error while reading,
``close()``, ``__exit__``, garbage collection of an abandoned stream (as
OpenTelemetry's own OpenAI instrumentation does), or its reader stopping:
the code that read it last starts another call of its session, or leaves the
session block, while it is unfinished (``session.stopped_streams``: a
``break`` out of a stream still referenced would otherwise hold its
reservation until collected, and a later call under a tight budget would
wait for it). That stream is billed what arrived and closed; reading it again
raises an error that says so. A stream read in another thread, asyncio task
or session block is never cut, nor one not read yet.

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

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

import wrapt

from ..adapter import args_fingerprint, stream_overrun, warn_unreadable
from ..logsafe import error_summary
from ..session import reader_here, stopped_streams, track_stream
from ..usage import Usage

if TYPE_CHECKING:
    from ..adapter import Guard, Ticket
    from ..session import Session

__all__ = ["AsyncGuardedStream", "GuardedStream", "Meter", "settle_stopped", "settle_stopped_async"]

log = logging.getLogger("breaker")


class Meter:
    """Reads one stream's events (subclassed per request shape).

    ``feed(event)`` updates the counts and returns whether the caller should
    see the event (``False`` hides the usage-only chunk breaker asked for).
    """

    __slots__ = ("deltas", "text_bytes", "usage", "reported_output", "input_usage", "hide_usage", "_tools", "served")

    def __init__(self, hide_usage: bool = False) -> None:
        self.deltas = 0
        self.text_bytes = 0
        self.usage: Usage | None = None  # the provider's final usage, once seen
        self.reported_output = 0  # a cumulative output count the provider sent mid-stream
        self.input_usage: Usage | None = None  # input figures the provider sent at the start
        self.hide_usage = hide_usage
        self._tools: dict[Any, list[Any]] = {}
        self.served: tuple[tuple[str, str], ...] | None = None  # the price variant the stream says it was served at

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

    __slots__ = ("guard", "ticket", "meter", "done", "reading", "unreadable", "reader", "block", "cut", "sdk",
                 "__weakref__")

    def __init__(self, guard: Guard, ticket: Ticket, meter: Meter, stream: Any = None) -> None:
        self.guard = guard
        self.ticket = ticket
        self.meter = meter
        self.done = False
        self.reading = False  # inside the SDK's __next__: its own closing is followed by an end or an error
        self.unreadable = False  # an event's usage could not be read: the stream bills its worst case
        # Who read it last (session.reader_here), None before the first read; the session block reading now.
        self.reader: tuple[int, int, int] | None = None
        session = ticket.session
        self.block = session.host.current.get
        self.cut = False  # settled because its reader stopped reading it (stop): a later read raises
        try:
            self.sdk: Any = weakref.ref(stream) if stream is not None else None  # the SDK's stream, to close it
        except TypeError:  # a stream type that cannot be weakly referenced: it is closed when collected
            self.sdk = None
        track_stream(session, self)

    def refused(self) -> RuntimeError:
        """What reading a stream ``stop`` cut raises: why it ended."""
        return RuntimeError(_STOPPED.format(model=self.ticket.model))

    def stopped(self, reader: tuple[int, int, int]) -> bool:
        """Whether ``reader`` read it last and is not reading it now (``session.stopped_streams``)."""
        return self.reader == reader and not self.reading and not self.done

    def _cutting(self) -> bool:
        """Mark the stream cut by ``stop`` (``False``: it was settled already, nothing to do)."""
        if self.done:
            return False
        self.cut = True
        log.info(
            "breaker: an unfinished %s stream of session %r was settled for what had arrived and closed: the "
            "code that read it started another call of the session, or left the session block, without "
            "reading it to the end or closing it", self.ticket.model, self.ticket.session.id,
        )
        return True

    def stop(self) -> None:
        """Its reader stopped reading it: billed what arrived, the SDK's stream closed (never raises)."""
        if not self._cutting():
            return
        try:
            self.finish()
        except Exception as exc:  # the caller's next call or session end goes on regardless
            log.warning("breaker could not settle a stream its caller stopped reading (%s)", error_summary(exc))
        stream = self.sdk() if self.sdk is not None else None
        if stream is not None:
            try:
                if hasattr(type(stream), "__anext__"):
                    _close_later(stream)
                else:
                    stream.close()
            except Exception:  # closing is a courtesy to the provider: the money is settled already
                pass

    async def stop_async(self) -> None:
        """``stop`` from a coroutine: the settlement and an async stream's close are awaited."""
        if not self._cutting():
            return
        try:
            await self.finish_async()
        except Exception as exc:  # as in stop
            log.warning("breaker could not settle a stream its caller stopped reading (%s)", error_summary(exc))
        stream = self.sdk() if self.sdk is not None else None
        if stream is not None:
            try:
                if hasattr(type(stream), "__anext__"):
                    await _aclose(stream)
                else:
                    stream.close()
            except Exception:  # as in stop
                pass

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
        if meter.served is not None and meter.served != ticket.call.price_context:
            ticket.served = meter.served
        usage = ticket.worst_case_usage() if self.unreadable else meter.usage
        if usage is None:
            usage = meter.billed(ticket)
        return usage, meter.tool_calls(), error if isinstance(error, Exception) else None

    def finish(self, error: BaseException | None = None) -> None:
        settlement = self._closing(error)
        if settlement is not None:
            try:
                self.guard.settle(self.ticket, settlement[0], tool_calls=settlement[1], error=settlement[2])
            except Exception as exc:  # settling must never replace the caller's own exception
                log.error("breaker could not settle a stream (%s)", error_summary(exc))  # no traceback: logsafe
                if error is None:
                    raise

    async def finish_async(self, error: BaseException | None = None) -> None:
        """``finish`` from an async stream: a SQLite or Redis ledger is waited for off the event loop."""
        settlement = self._closing(error)
        if settlement is not None:
            try:
                await self.guard.settle_async(self.ticket, settlement[0], tool_calls=settlement[1], error=settlement[2])
            except Exception as exc:  # as in finish
                log.error("breaker could not settle a stream (%s)", error_summary(exc))
                if error is None:
                    raise

    def abandoned(self) -> None:
        """From a finalizer: settle what arrived, never raise."""
        if not self.done:
            try:
                self.finish()
            except Exception:  # pragma: no cover - never raise from a finalizer
                pass


_STOPPED = (
    "breaker settled and closed this {model} stream: the code reading it started another call of the session "
    "(or left the session block) before reading it to the end, so it counted as abandoned and was billed for "
    "what had arrived. Read a stream to its end or close it (`with stream:`) before the next call, or read it "
    "in a thread or task of its own."
)
_CLOSING: set[asyncio.Task[None]] = set()  # closes of async streams ``stop`` started (kept until done)


async def _quiet_aclose(stream: Any) -> None:
    try:
        await _aclose(stream)
    except Exception:  # as in stop
        pass


def _close_later(stream: Any) -> None:
    """Close an async SDK stream from sync code (a sync call, a session's ``__exit__``) on the running loop;
    with none, it is closed when collected."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_quiet_aclose(stream))
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def settle_stopped(session: Session) -> None:
    """As a call in ``session`` starts: settle the streams of its session (and of those around it) that
    this reader stopped reading (see ``session.stopped_streams``), so the call never waits for their
    reservations. The drivers call it only for a session that has streams or encloses others: every
    other call has nothing to look at."""
    for stream in stopped_streams(session):
        stream.stop()


async def settle_stopped_async(session: Session) -> None:
    """``settle_stopped`` for a coroutine SDK method."""
    for stream in stopped_streams(session):
        await stream.stop_async()


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
        self._self_g = _Metered(guard, ticket, meter, wrapped)
        _on_response_close(wrapped, self._self_g, "close")

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        g = self._self_g
        if g.cut:
            raise g.refused()
        g.reader = reader_here(g.block(), g.ticket.session)  # who reads: session.stopped_streams
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


async def _aclose(stream: Any) -> None:
    """Close an async SDK stream: ``close()`` on the OpenAI and Anthropic streams, ``aclose()`` on
    the async generator google-genai streams with."""
    close = getattr(stream, "close", None)
    await (close() if close is not None else stream.aclose())


class AsyncGuardedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """An async SDK stream, metered and settled exactly once."""

    def __init__(self, wrapped: Any, guard: Guard, ticket: Ticket, meter: Meter) -> None:
        super().__init__(wrapped)
        self._self_g = _Metered(guard, ticket, meter, wrapped)
        _on_response_close(wrapped, self._self_g, "aclose")

    def __aiter__(self) -> AsyncGuardedStream:
        return self

    async def __anext__(self) -> Any:
        g = self._self_g
        if g.cut:
            raise g.refused()
        g.reader = reader_here(g.block(), g.ticket.session)  # who reads: session.stopped_streams
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
                await _aclose(self.__wrapped__)
                raise end
            if show:
                return event

    async def close(self) -> None:
        try:
            await _aclose(self.__wrapped__)
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
