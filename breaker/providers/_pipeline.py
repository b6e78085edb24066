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
        await guard.settle_async(ticket, **_failure(adapter, ticket, exc))
        raise
    finally:
        guard._inflight.reset(token)
    if ticket.call.stream:
        return start_stream(guard, adapter, ticket, result, hide)
    body = result.parse() if _is_raw(result) else result
    if inspect.isawaitable(body):
        body = await body
    usage, tool_calls, error = _read_response(adapter, ticket, body)
    await guard.settle_async(ticket, usage, tool_calls=tool_calls, error=error)
    if error is not None:
        raise error
    return result


def _failed(guard: Breaker, adapter: Adapter, ticket: Ticket, exc: BaseException) -> None:
    """Settle a call whose SDK method raised (see ``_failure``)."""
    guard.settle(ticket, **_failure(adapter, ticket, exc))


def _failure(adapter: Adapter, ticket: Ticket, exc: BaseException) -> dict[str, Any]:
    """How to settle a call whose SDK method raised, as ``settle``'s keyword arguments.

    HTTP errors and connection failures release the reservation and count as a
    failed call (the loop detector sees the error). Some SDK helpers raise
    *after* a response arrived (``parse`` on a truncated answer): the usage
    they carry is billed. A cancellation mid-request bills the input bound
    (``Breaker.settle`` does that). A nested guard's refusal was never sent:
    the reservation goes back as if nothing happened.
    """
    early = adapter.finished_early(exc)
    if early is not None:
        try:
            return {"usage": adapter.usage(early), "tool_calls": adapter.tool_calls(early), "error": exc}
        except Exception:  # fall through: settle as a failure
            pass
    if isinstance(exc, Tripped):
        return {"usage": None, "sent": False}
    return {"usage": None, "error": exc}  # a cancellation: Breaker.settle bills the input bound


def settle_response(guard: Breaker, adapter: Adapter, ticket: Ticket, result: Any, hide: bool) -> Any:
    """Settle a returned response, or hand back a metered proxy for a stream."""
    if ticket.call.stream:
        return start_stream(guard, adapter, ticket, result, hide)
    # A raw response (with_raw_response) is parsed here; parse() caches, so the caller gets the same object.
    usage, tool_calls, error = _read_response(adapter, ticket, result.parse() if _is_raw(result) else result)
    guard.settle(ticket, usage, tool_calls=tool_calls, error=error)
    if error is not None:
        raise error
    return result


def _read_response(adapter: Adapter, ticket: Ticket, body: Any) -> tuple[Usage, tuple, UsageError | None]:
    """A response's usage and tool calls, or, when its usage cannot be read, the reserved
    worst case to bill and the ``UsageError`` to raise once it is billed (no spend is lost)."""
    try:
        usage, tool_calls = adapter.result(body)
        return usage, tool_calls, None
    except Exception as exc:
        if isinstance(exc, UsageError) and "worst case" in str(exc):
            error = exc
        else:
            error = usage_error(f"{adapter.name} returned usage breaker cannot read", f"{type(exc).__name__}: {exc}")
            error.__cause__ = exc
        return ticket.worst_case_usage(), (), error


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
