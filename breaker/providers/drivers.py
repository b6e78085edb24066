"""The I/O around an ``Attempt``: admit, send, settle, for sync and async SDK methods.

Each driver only sends, waits and settles; every decision is the
``Attempt``'s. The sync and async pairs differ only where one awaits.

A drop-in guard may refuse a call it cannot afford but changes nothing else
a caller can see: whatever the SDK hands back, the caller gets that very
object. Two SDK answers are read by the caller *after* the patched method
returned, so breaker meters them where the caller reads them, never by
reading them first:

* **Raw responses** (``with_raw_response``, ``with_streaming_response``, a
  ``post`` with the raw-response header): the SDK's own ``LegacyAPIResponse``
  / ``APIResponse`` / ``AsyncAPIResponse`` is returned, untouched; its
  ``parse`` settles from what it parsed, its ``close`` or its collection
  bills the worst case if it was never parsed: ``RawRead``.
* **Anthropic's** ``messages.stream()``: the SDK's own ``MessageStreamManager``
  is returned, built by the SDK's own ``stream()`` at the call (its validation
  and warnings happen there), and its request goes through the pipeline when
  the manager sends it, in ``__enter__``: ``open_stream``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from ..adapter import warn_unreadable
from ..errors import SessionKilled, Tripped
from ..logsafe import error_summary
from .attempt import Adapter, Attempt, Settlement, is_raw
from .streams import settle_stopped, settle_stopped_async

if TYPE_CHECKING:
    from ..adapter import Guard, Ticket

__all__ = ["RawRead", "open_stream", "run_async", "run_sync"]

log = logging.getLogger("breaker")


def _request(guard: Guard, attempt: Attempt, ticket: Ticket) -> dict[str, Any]:
    try:
        return attempt.request(ticket)
    except Tripped as trip:  # an adapter that cannot send what was paid for (media.FixedOutput)
        guard.release(ticket)
        raise _refusal(guard, trip)  # noqa: B904 - the trip is its cause
    except BaseException:
        guard.release(ticket)
        raise


def _refusal(guard: Guard, trip: Tripped) -> BaseException:
    """What a refused SDK call raises: the trip inside a session (its boundary turns it into
    ``SessionKilled``); outside any session there is no boundary, so the call is one and raises
    the ordinary ``SessionKilled`` itself, which the caller's ``except Exception`` can handle."""
    if not guard.current_session().anonymous:
        return trip
    killed = SessionKilled(trip)
    killed.__cause__ = trip
    return killed


def _settle(guard: Guard, ticket: Ticket, s: Settlement) -> None:
    guard.settle(ticket, s.usage, tool_calls=s.tool_calls, error=s.error, sent=s.sent)


async def _settle_async(guard: Guard, ticket: Ticket, s: Settlement) -> None:
    await guard.settle_async(ticket, s.usage, tool_calls=s.tool_calls, error=s.error, sent=s.sent)


def run_sync(guard: Guard, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Admit, patch, send, settle: for a sync SDK method."""
    attempt = Attempt.begin(guard, adapter, kwargs)
    if attempt is None:
        return wrapped(*args, **kwargs)
    session = guard.current_session()  # read once: admission is handed it
    if session.state.streams or session.ancestors:  # streams this code stopped reading: billed what arrived,
        settle_stopped(session)  # never waited for
    try:
        ticket = guard.admit(attempt.call, session)
    except Tripped as trip:
        raise _refusal(guard, trip)  # noqa: B904 - the trip is its cause
    send = _request(guard, attempt, ticket)
    with guard.sending(ticket):
        try:
            result = wrapped(*args, **send)
            if ticket.call.stream:
                result = adapter.opened(result)
        except BaseException as exc:
            _settle(guard, ticket, attempt.failure(exc))
            raise
    if is_raw(result):  # the caller reads the body: metered where it does (RawRead)
        return RawRead.hook(guard, attempt, ticket, result)
    if ticket.call.stream and (stream := attempt.stream(guard, ticket, result)) is not None:
        return stream
    _settle(guard, ticket, attempt.response(ticket, result))
    return result


async def run_async(
    guard: Guard, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
) -> Any:
    """``run_sync`` for coroutine SDK methods (admission waits with ``asyncio.sleep``)."""
    attempt = Attempt.begin(guard, adapter, kwargs)
    if attempt is None:
        return await wrapped(*args, **kwargs)
    session = guard.current_session()  # as in run_sync
    if session.state.streams or session.ancestors:
        await settle_stopped_async(session)
    try:
        ticket = await guard.admit_async(attempt.call, session)
    except Tripped as trip:
        raise _refusal(guard, trip)  # noqa: B904 - the trip is its cause
    send = _request(guard, attempt, ticket)
    with guard.sending(ticket):
        try:
            result = await wrapped(*args, **send)
        except BaseException as exc:
            await _settle_async(guard, ticket, attempt.failure(exc))
            raise
    if is_raw(result):
        return RawRead.hook(guard, attempt, ticket, result)
    if ticket.call.stream and (stream := attempt.stream(guard, ticket, result)) is not None:
        return stream
    await _settle_async(guard, ticket, attempt.response(ticket, result))
    return result


# ------------------------------------------------------------------ raw responses
# The raw-response classes whose parse / close are hooked (once per class, see RawRead), and what each
# response being metered is reading: keyed weakly by the response, so nothing is added to the object itself.
_HOOKED: set[type] = set()
_HOOKS_LOCK = threading.Lock()
_READS: weakref.WeakKeyDictionary[Any, RawRead] = weakref.WeakKeyDictionary()


def _hook_class(cls: type) -> None:
    """Wrap ``parse`` and ``close`` where ``cls`` defines them, once: a response ``RawRead`` does not
    meter (another client's, one from before ``instrument()``) goes straight to the SDK's own method."""
    with _HOOKS_LOCK:
        if cls in _HOOKED:
            return
        for name in ("parse", "close"):
            owner = next((k for k in cls.__mro__ if name in vars(k)), None)
            if owner is None or getattr(vars(owner)[name], "_breaker_raw_hook", False):
                continue  # LegacyAPIResponse has no close; a base class hooked for another subclass already
            setattr(owner, name, _raw_hook(vars(owner)[name], name == "parse"))
        _HOOKED.add(cls)


def _raw_hook(original: Any, is_parse: bool) -> Any:
    """``original`` (an SDK response method), metered for the responses ``_READS`` knows."""
    if inspect.iscoroutinefunction(original):

        async def hook_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            read = _READS.get(self)
            if read is None:
                return await original(self, *args, **kwargs)
            if is_parse:
                return await read.finish_async(original(self, *args, **kwargs))
            try:
                return await original(self, *args, **kwargs)
            finally:
                await read.closed_async()

        hook: Any = functools.wraps(original)(hook_async)
    else:

        def hook_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
            read = _READS.get(self)
            if read is None:
                return original(self, *args, **kwargs)
            if is_parse:
                return read.parse(original, self, args, kwargs)
            try:
                return original(self, *args, **kwargs)
            finally:
                read.closed()

        hook = functools.wraps(original)(hook_sync)
    hook._breaker_raw_hook = True
    return hook


class RawRead:
    """Meters one raw response where its caller reads the body.

    Why not parse it in the driver: a raw response is asked for to read the
    body some other way (``.text``, ``.read()``, ``.iter_bytes()``, a
    ``with_streaming_response`` body still on the wire), or to parse it later
    and handle its errors there. Parsing it first closed a streamed body
    before the caller's ``with`` started, raised the SDK's validation and
    decode errors inside ``create()``, and, for async raw streams, handed back
    something that could not be awaited.

    So the caller gets the SDK's object itself (``type()``, ``isinstance``,
    ``vars()`` unchanged), and breaker meters it from two of its methods:

    * ``parse``: the SDK's own ``parse`` runs, and breaker reads usage from what
      it returned and settles; the caller gets exactly that (from a coroutine
      function where the SDK's is one). A stream is returned as the metered
      proxy (``GuardedStream`` / ``AsyncGuardedStream``), which settles itself;
      a later ``parse()`` returns that same proxy (the SDK caches the stream).
      A ``parse`` that raises (a validation or decode error, a broken
      connection) bills the worst case (or the usage a
      ``LengthFinishReasonError`` carries) and the SDK's error propagates.
    * ``close`` (``APIResponse``, ``AsyncAPIResponse``: what
      ``with_streaming_response`` calls at the end of the ``with``): a body
      that was never parsed is billed the reservation's worst case
      (``ticket.worst_case_usage()``): it was sent, and breaker did not see its usage.

    A response dropped without either (a ``LegacyAPIResponse`` has no
    ``close``) is billed the worst case when it is collected
    (``weakref.finalize``; nothing here holds the response, so CPython frees it
    the moment the caller drops it, never later from the cycle collector, which
    could run the settlement inside a lock the engine holds).

    Why the class methods, wrapped once (``_hook_class``), rather than methods
    set on the instance: ``create(...).parse()`` calls the method of a
    temporary that only the method can keep alive, and a method set on the
    instance that held its response would make a reference cycle. The wrapped
    method looks the response up in ``_READS`` (a ``WeakKeyDictionary``) and
    goes straight to the SDK's method for any response breaker does not meter;
    it stays after ``uninstrument()``, as such a pass-through.

    Exactly once: every path claims the settlement (``_claim``) before any I/O,
    and ``Breaker.settle`` ignores a ticket settled already.
    """

    __slots__ = ("guard", "attempt", "ticket", "done", "finalizer", "stream")

    def __init__(self, guard: Guard, attempt: Attempt, ticket: Ticket) -> None:
        self.guard = guard
        self.attempt = attempt
        self.ticket = ticket
        self.done = False  # settled, or handed to the stream proxy a parse returned
        self.finalizer: Any = None
        self.stream: tuple[Any, Any] | None = None  # (the SDK's parsed stream, its metered proxy)

    @classmethod
    def hook(cls, guard: Guard, attempt: Attempt, ticket: Ticket, raw: Any) -> Any:
        """``raw`` itself, metered: see the class docstring."""
        read = cls(guard, attempt, ticket)
        kind = type(raw)
        try:
            if kind not in _HOOKED:
                _hook_class(kind)
            _READS[raw] = read
            read.finalizer = weakref.finalize(raw, read.abandoned)
        except TypeError as exc:  # a response type that cannot be weakly referenced or hashed
            warn_unreadable(f"A raw {kind.__name__}", exc)
            read.abandoned()  # never read by breaker: the worst case, now
        return raw

    def _claim(self) -> bool:
        """Take the one settlement; ``False`` if something settled (or took over) already."""
        if self.done:
            return False
        self.done = True
        finalizer = self.finalizer
        if finalizer is not None:
            finalizer.detach()
        return True

    def _parsed(self, parsed: Any) -> tuple[Any, Settlement | None]:
        """What the caller gets for ``parsed``, and the settlement to make (``None``: none)."""
        stream = self.stream
        if stream is not None:
            return (stream[1] if stream[0] is parsed else parsed), None
        attempt, ticket = self.attempt, self.ticket
        if ticket.call.stream:
            proxy = attempt.stream(self.guard, ticket, parsed)
            if proxy is not None:
                self.stream = (parsed, proxy)
                self._claim()  # the proxy settles it, metered per event
                return proxy, None
        if not self._claim():
            return parsed, None
        return parsed, attempt.response(ticket, parsed)

    def _failed(self, exc: BaseException) -> Settlement | None:
        return self.attempt.unread(self.ticket, exc) if self._claim() else None

    def parse(self, original: Callable[..., Any], raw: Any, args: tuple, kwargs: dict) -> Any:
        try:
            parsed = original(raw, *args, **kwargs)
        except BaseException as exc:
            settlement = self._failed(exc)
            if settlement is not None:
                _settle(self.guard, self.ticket, settlement)
            raise
        if inspect.isawaitable(parsed):  # a sync-looking parse that is async after all
            return self.finish_async(parsed)
        out, settlement = self._parsed(parsed)
        if settlement is not None:
            _settle(self.guard, self.ticket, settlement)
        return out

    async def finish_async(self, pending: Any) -> Any:
        try:
            parsed = await pending
        except BaseException as exc:
            settlement = self._failed(exc)
            if settlement is not None:
                await _settle_async(self.guard, self.ticket, settlement)
            raise
        out, settlement = self._parsed(parsed)
        if settlement is not None:
            await _settle_async(self.guard, self.ticket, settlement)
        return out

    def closed(self) -> None:
        if self._claim():
            _settle(self.guard, self.ticket, self.attempt.unread(self.ticket))

    async def closed_async(self) -> None:
        if self._claim():
            await _settle_async(self.guard, self.ticket, self.attempt.unread(self.ticket))

    def abandoned(self) -> None:
        """From the finalizer (the response was collected unread): the worst case, never raising."""
        if self._claim():
            try:
                _settle(self.guard, self.ticket, self.attempt.unread(self.ticket))
            except Exception as exc:  # pragma: no cover - never raise from a finalizer
                log.error("breaker could not settle an unread raw response (%s)", error_summary(exc))


# ------------------------------------------------------------------ Anthropic messages.stream()
_STREAM_UNSUPPORTED = (
    "breaker cannot meter this Anthropic SDK's {name}.stream(): {why}; "
    "pin anthropic to a tested version or report this to agent-cost-breaker"
)


def _post_body(post: Callable[..., Any], args: tuple, kwargs: dict, **body: Any) -> Any:
    """Send ``body`` (the request, patched) with the rest of the SDK's own ``post`` arguments."""
    return post(*args, **{**kwargs, "body": body})


class _StreamPost:
    """The ``_post`` the SDK's ``stream()`` sees: its request goes through the pipeline.

    ``stream()`` builds the request as a call of the resource's ``_post``:
    bound into a ``functools.partial`` the sync manager calls in ``__enter__``,
    or called at once for a coroutine the async manager awaits in
    ``__aenter__``. Either way the pipeline (``run_sync`` / ``run_async``) runs
    when the request is sent: it admits then, patches the body (the lowered
    ``max_tokens``), sends it through the resource's real ``_post`` and returns
    the metered raw stream, which the SDK's ``MessageStream`` then reads (so
    iteration, ``text_stream`` and ``get_final_message()`` are all counted).
    """

    __slots__ = ("guard", "adapter", "post", "run", "name", "used")

    def __init__(self, guard: Guard, adapter: Adapter, post: Callable[..., Any], is_async: bool, name: str) -> None:
        self.guard, self.adapter, self.post, self.name = guard, adapter, post, name
        self.run = run_async if is_async else run_sync
        self.used = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        below: Any = self
        while isinstance(below, _StreamPost):  # this one, and the layers it sends through (another guard's)
            below.used = True
            below = below.post
        body = kwargs.get("body")
        if not isinstance(body, Mapping):
            raise RuntimeError(_STREAM_UNSUPPORTED.format(name=self.name, why="its request has no JSON body"))
        return self.run(self.guard, self.adapter, functools.partial(_post_body, self.post, args, kwargs), (), dict(body))


def _reaches(func: Any, sender: _StreamPost) -> bool:
    while isinstance(func, _StreamPost):  # another guard's sender sends through this one
        if func is sender:
            return True
        func = func.post
    return False


def _bound(manager: Any, sender: _StreamPost) -> bool:
    """Whether ``manager`` will send through ``sender`` (checked for the SDK's own manager only).

    The async ``stream()`` calls ``_post`` at once (``used``); the sync one binds
    it into the ``functools.partial`` its manager holds (found among the
    manager's attributes by value, not by its private name).
    """
    if sender.used or not type(manager).__module__.startswith("anthropic."):
        return True  # called already (async), or a manager some other instrumentation wrapped: trust it
    held = getattr(manager, "__dict__", None) or {}
    return any(isinstance(v, functools.partial) and _reaches(v.func, sender) for v in held.values())


def open_stream(
    guard: Guard, adapter: Adapter, bind: Callable[[Any], Callable[..., Any]], resource: Any,
    args: tuple, kwargs: dict, is_async: bool,
) -> Any:
    """Anthropic's ``messages.stream(...)``: the SDK's own manager, its request metered when it is sent.

    The SDK's ``stream()`` runs here, at the caller's call, so its ``TypeError``
    checks and ``DeprecationWarning`` happen where they always did, and the
    caller gets the SDK's ``MessageStreamManager`` itself. It runs on a shallow
    copy of the resource whose ``_post`` is a ``_StreamPost`` (``bind`` gives
    the method, with whatever wraps it, bound to that copy), which is how the
    admission and the patched request move to the moment the manager sends.
    This touches no private attribute of the manager: every Stainless SDK
    method sends through its resource's ``_post``. If a future ``stream()``
    stops doing so, this fails with a clear message rather than send unmetered.
    """
    name = type(resource).__name__
    post = getattr(resource, "_post", None)
    if post is None:
        raise RuntimeError(_STREAM_UNSUPPORTED.format(name=name, why="its resource has no _post"))
    sender = _StreamPost(guard, adapter, post, is_async, name)
    clone = copy.copy(resource)
    clone._post = sender
    manager = bind(clone)(*args, **kwargs)
    if not _bound(manager, sender):
        raise RuntimeError(_STREAM_UNSUPPORTED.format(name=name, why="it no longer sends through _post"))
    return manager
