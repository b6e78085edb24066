"""One pipeline for every patched SDK method, sync and async.

An ``Adapter`` (one per request shape: OpenAI chat, OpenAI Responses,
Anthropic Messages) supplies the shape-specific pieces: ``describe`` a
request as a ``Call``, ``apply`` the engine's ``Patch`` to it, read ``usage``
and ``tool_calls`` from a response, and make a ``Meter`` that reads stream
events. Everything else lives here once: the pass-through rules, admission,
the in-flight marker that keeps a call seen by two layers counted once,
settlement on success, failure and malformed usage, and stream metering.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..call import Call, Patch, Ticket
from ..errors import Tripped, UsageError
from ..usage import Usage
from ._streams import AsyncGuardedStream, GuardedStream, Meter, guard_raw_stream_response

if TYPE_CHECKING:
    from ..engine import Breaker

__all__ = ["Adapter", "run_async", "run_sync", "settle_response", "start_stream"]

log = logging.getLogger("breaker")


class Adapter:
    """The shape-specific pieces of the pipeline (subclassed per request shape)."""

    provider: str = ""
    operation: str = "chat"
    name: str = ""

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        """The request as a ``Call``; ``None`` when it cannot be one (the SDK will reject it)."""
        raise NotImplementedError

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        """``kwargs`` with ``patch`` applied (a new dict; the caller's is never changed)."""
        raise NotImplementedError

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Ask for streamed usage if needed; returns ``(kwargs, hide_usage_only_events)``."""
        return kwargs, False

    def usage(self, response: Any) -> Usage:
        raise NotImplementedError

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return ()

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        """Usage and tool calls of a response (one pass where a shape allows)."""
        return self.usage(response), self.tool_calls(response)

    def meter(self, hide_usage: bool) -> Meter:
        raise NotImplementedError

    def finished_early(self, exc: BaseException) -> Any:
        """A response an exception carries (``LengthFinishReasonError.completion``), if any."""
        return None


_ONE_SHOT = ("messages", "input", "tools")
_PLAIN = frozenset({list, tuple, str, dict})


def _prepare(guard: Breaker, adapter: Adapter, kwargs: dict[str, Any]) -> Call | None:
    if guard._inflight.get() is not None:
        return None  # an outer layer (a framework plugin) admitted this call already
    for key in _ONE_SHOT:
        v = kwargs.get(key)
        if v is not None and v.__class__ not in _PLAIN and hasattr(v, "__next__"):
            # A generator can be read once: read it here and send the list (``kwargs`` is this call's own dict).
            kwargs[key] = list(v)
    # Strict input bounds unless the guard opts into the loose estimate (Breaker(input_estimate="loose")).
    return adapter.describe(kwargs, guard.input_estimate != "loose")


def _patched(guard: Breaker, adapter: Adapter, ticket: Ticket, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    try:
        patch = ticket.patch
        if (  # inline rather than bool(patch): this runs on every call
            patch.max_output_tokens is not None or patch.model is not None or patch.reasoning_effort is not None
            or patch.keep_last_messages is not None or patch.hook is not None
        ):
            kwargs = adapter.apply(kwargs, patch, ticket.call)
        if ticket.call.stream:
            return adapter.prepare_stream(kwargs)
        return kwargs, False
    except BaseException:
        guard.release(ticket)
        raise


def run_sync(guard: Breaker, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """Admit, patch, send, settle: for a sync SDK method."""
    call = _prepare(guard, adapter, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    ticket = guard.admit(call)
    kwargs, hide = _patched(guard, adapter, ticket, kwargs)
    token = guard._inflight.set(ticket)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _failed(guard, adapter, ticket, exc)
        raise
    finally:
        guard._inflight.reset(token)
    return settle_response(guard, adapter, ticket, result, hide)


async def run_async(
    guard: Breaker, adapter: Adapter, wrapped: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
) -> Any:
    """``run_sync`` for coroutine SDK methods (admission waits with ``asyncio.sleep``)."""
    call = _prepare(guard, adapter, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    ticket = await guard.admit_async(call)
    kwargs, hide = _patched(guard, adapter, ticket, kwargs)
    token = guard._inflight.set(ticket)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _failed(guard, adapter, ticket, exc)
        raise
    finally:
        guard._inflight.reset(token)
    body = None
    if not ticket.call.stream and _is_raw(result):
        body = result.parse()
        if inspect.isawaitable(body):
            body = await body
    return settle_response(guard, adapter, ticket, result, hide, body)


def _failed(guard: Breaker, adapter: Adapter, ticket: Ticket, exc: BaseException) -> None:
    """Settle a call whose SDK method raised.

    HTTP errors and connection failures release the reservation and count as a
    failed call (the loop detector sees the error). Some SDK helpers raise
    *after* a response arrived (``parse`` on a truncated answer): the usage
    they carry is billed. A cancellation mid-request bills the input bound,
    since the provider may have processed it.
    """
    early = adapter.finished_early(exc)
    if early is not None:
        try:
            guard.settle(ticket, adapter.usage(early), tool_calls=adapter.tool_calls(early), error=exc)
            return
        except Exception:  # fall through: settle as a failure
            pass
    if isinstance(exc, Tripped):  # a nested guard refused it: never sent
        guard.release(ticket)
        return
    if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt: the provider may have the request
        guard.settle(ticket, Usage(input_tokens=ticket.call.input_tokens))
        return
    guard.settle(ticket, None, error=exc)


def settle_response(guard: Breaker, adapter: Adapter, ticket: Ticket, result: Any, hide: bool, body: Any = None) -> Any:
    """Settle a returned response, or hand back a metered proxy for a stream.

    ``body`` is the parsed response when ``result`` is a raw-response wrapper
    whose ``parse()`` the async pipeline already awaited.
    """
    if ticket.call.stream:
        return start_stream(guard, adapter, ticket, result, hide)
    if body is None:
        # A raw response (with_raw_response) is parsed here; parse() caches, so the caller gets the same object.
        body = result.parse() if _is_raw(result) else result
    try:
        usage, tool_calls = adapter.result(body)
    except Exception as exc:
        error = exc if isinstance(exc, UsageError) and "worst case" in str(exc) else usage_error(
            f"{adapter.name} returned usage breaker cannot read", f"{type(exc).__name__}: {exc}"
        )
        _bill_worst_case(guard, ticket, error)
        if error is exc:
            raise
        raise error from exc
    guard.settle(ticket, usage, tool_calls=tool_calls)
    return result


_RAW: dict[type, bool] = {}


def _is_raw(result: Any) -> bool:
    """Whether ``result`` is an SDK raw-response wrapper (``with_raw_response``), decided once per type.

    Looked up on the class: ``hasattr`` on a pydantic response object for a
    missing attribute costs tens of microseconds (it raises inside pydantic).
    """
    cls = type(result)
    raw = _RAW.get(cls)
    if raw is None:
        raw = _RAW[cls] = hasattr(cls, "parse") and hasattr(cls, "http_request")
    return raw


def _bill_worst_case(guard: Breaker, ticket: Ticket, exc: BaseException) -> None:
    guard.settle(ticket, Usage(input_tokens=ticket.call.input_tokens, output_tokens=ticket.output_budget), error=exc)


def start_stream(guard: Breaker, adapter: Adapter, ticket: Ticket, result: Any, hide: bool) -> Any:
    meter = adapter.meter(hide)
    cls = type(result)
    if _is_raw(result):
        return guard_raw_stream_response(result, guard, ticket, meter)
    if hasattr(cls, "__anext__"):
        return AsyncGuardedStream(result, guard, ticket, meter)
    if hasattr(cls, "__next__"):
        return GuardedStream(result, guard, ticket, meter)
    # Not a stream after all (a server that ignored stream=True): settle it as a response.
    ticket.call.stream = False
    return settle_response(guard, adapter, ticket, result, hide)


def usage_error(what: str, detail: str) -> UsageError:
    """A ``UsageError`` that says what to do (shared wording for adapters)."""
    return UsageError(
        f"{what}: {detail}. The call was billed at its reserved worst case so that no spend is lost. "
        f"If a proxy or an OpenAI-compatible server strips or rewrites `usage`, have it pass the provider's "
        f"usage through, or account for such calls with Breaker.record()."
    )
