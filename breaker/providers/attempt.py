"""One call through an adapter, written once and without I/O.

An ``Adapter`` (one per request shape: OpenAI chat, OpenAI Responses,
Anthropic Messages) supplies the shape-specific pieces: ``describe`` a
request as a ``Call``, ``apply`` the engine's ``Patch`` to it, read ``usage``
and ``tool_calls`` from a response, and make a ``Meter`` for stream events.

An ``Attempt`` holds every decision of one call that does not need I/O, the
way httpx builds requests in ``BaseClient`` and tenacity's ``iter()`` returns
actions: whether the call passes straight through, the request to send, how
to settle after a failure or a response, what to bill when usage cannot be
read, and which stream proxy meters the answer. ``drivers.py`` adds the I/O,
once for sync and once for async.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..adapter import Call, Patch, Ticket, warn_unreadable
from ..errors import Tripped
from ..estimate import OneShot, materialize
from ..usage import Usage
from .streams import AsyncGuardedStream, GuardedStream, Meter

if TYPE_CHECKING:
    from ..adapter import Guard

__all__ = ["Adapter", "Attempt", "Settlement", "is_raw"]


class Adapter:
    """The shape-specific pieces of the pipeline (subclassed per request shape)."""

    provider: str = ""
    strict_provider: bool = False  # the provider was named: Call.strict_provider
    operation: str = "chat"
    name: str = ""

    def for_provider(self, provider: str) -> Adapter:
        """This adapter for a client of a named provider (``wrap(client, provider=...)``, a
        known ``base_url`` host): its calls are priced at that provider only."""
        other = copy.copy(self)
        other.provider = provider
        other.strict_provider = True
        return other

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

    def opened(self, stream: Any) -> Any:
        """A sync stream, with its request sent: an SDK that sends on the first read (google-genai's
        generator) is read once here, so its HTTP errors are the call's failure, never a billed stream."""
        return stream

    def served(self, response: Any) -> tuple[tuple[str, str], ...] | None:
        """The price variant a response says it was served at (OpenAI's ``service_tier``), if any."""
        return None


class Settlement(NamedTuple):
    """``Guard.settle``'s arguments for one call."""

    usage: Usage | None
    tool_calls: tuple[tuple[str, str], ...] = ()
    error: BaseException | None = None
    sent: bool = True


_ONE_SHOT = ("messages", "input", "tools")
_PLAIN = frozenset({list, tuple, str, dict})
_RAW: dict[type, bool] = {}


def is_raw(result: Any) -> bool:
    """Whether ``result`` is an SDK raw-response wrapper (``with_raw_response``), decided once per type.

    Looked up on the class: ``hasattr`` on a pydantic response object for a
    missing attribute costs tens of microseconds (it raises inside pydantic).
    """
    cls = type(result)
    raw = _RAW.get(cls)
    if raw is None:
        raw = _RAW[cls] = hasattr(cls, "parse") and hasattr(cls, "http_request")
    return raw


class Attempt:
    """The pure part of one SDK call: see the module docstring."""

    __slots__ = ("adapter", "call", "kwargs", "hide", "ask_usage")

    def __init__(self, adapter: Adapter, call: Call, kwargs: dict[str, Any], ask_usage: bool = True) -> None:
        self.adapter = adapter
        self.call = call
        self.kwargs = kwargs
        self.hide = False  # hide the usage-only stream events breaker asked for
        self.ask_usage = ask_usage  # Breaker(stream_usage=...): may a stream request be changed to report usage

    @classmethod
    def begin(cls, guard: Guard, adapter: Adapter, kwargs: dict[str, Any]) -> Attempt | None:
        """The attempt for this request, or ``None`` to pass it straight through: an
        outer layer (a framework plugin, a patched SDK method) admitted it already,
        or it is not a model request the adapter can read (the SDK will reject it)."""
        if guard.inflight() is not None:
            return None
        for key in _ONE_SHOT:
            v = kwargs.get(key)
            if v is not None and v.__class__ not in _PLAIN and hasattr(v, "__next__"):
                # A generator can be read once: read it here and send the list (``kwargs`` is this call's own dict).
                kwargs[key] = list(v)
        # Strict input bounds unless the guard opts into the loose estimate (Breaker(input_estimate="loose")).
        strict = guard.input_estimate != "loose"
        try:
            call = adapter.describe(kwargs, strict)
        except OneShot:
            # An iterator deeper inside (a part's content, a namespace's tools): send a copy with it read
            # into a list, which the SDK serialises the same way; the caller's objects stay as they were.
            for key, v in kwargs.items():
                kwargs[key] = materialize(v)
            call = adapter.describe(kwargs, strict)
        return None if call is None else cls(adapter, call, kwargs, guard.stream_usage)

    def request(self, ticket: Ticket) -> dict[str, Any]:
        """The keyword arguments to send: the ticket's patch applied, streamed usage asked for.

        If this raises (a user's ``Degrade(hook=...)``), the driver gives the reservation back.
        """
        kwargs = self.kwargs
        patch = ticket.patch
        if (  # inline rather than bool(patch): this runs on every call
            patch.max_output_tokens is not None or patch.model is not None or patch.reasoning_effort is not None
            or patch.keep_last_messages is not None or patch.hook is not None
        ):
            kwargs = self.adapter.apply(kwargs, patch, ticket.call)
        if ticket.call.stream and self.ask_usage:
            kwargs, self.hide = self.adapter.prepare_stream(kwargs)
        return kwargs

    def failure(self, exc: BaseException) -> Settlement:
        """How to settle a call whose SDK method raised.

        HTTP errors and connection failures release the reservation and count as a
        failed call (the loop detector sees the error). Some SDK helpers raise
        *after* a response arrived (``parse`` on a truncated answer): the usage
        they carry is billed. A cancellation mid-request bills the input bound
        (``Breaker.settle`` does that). A nested guard's refusal was never sent:
        the reservation goes back as if nothing happened.
        """
        adapter = self.adapter
        early = adapter.finished_early(exc)
        if early is not None:
            try:
                return Settlement(adapter.usage(early), adapter.tool_calls(early), exc)
            except Exception:  # fall through: settle as a failure
                pass
        if isinstance(exc, Tripped):
            return Settlement(None, sent=False)
        return Settlement(None, error=exc)  # a cancellation: Breaker.settle bills the input bound

    def response(self, ticket: Ticket, body: Any) -> Settlement:
        """How to settle a (parsed) response.

        When its usage cannot be read (a mock server, a proxy, an OpenAI-compatible
        host, counts that are not integers), the reserved worst case is billed, so no
        spend is lost, and the response is still returned: ``warn_unreadable``.
        """
        try:
            usage, tool_calls = self.adapter.result(body)
            served = self.adapter.served(body)
            if served is not None and served != ticket.call.price_context:
                ticket.served = served
            return Settlement(usage, tool_calls)
        except Exception as exc:
            warn_unreadable(self.adapter.name, exc)
            return Settlement(ticket.worst_case_usage())

    def unread(self, ticket: Ticket, exc: BaseException | None = None) -> Settlement:
        """How to settle a raw response whose body breaker never read usage from.

        The request was sent, so it is billed: the reserved worst case (the caller
        closed or dropped it, read it raw, or its ``parse`` raised), or, when the
        error ``parse`` raised carries the response (``LengthFinishReasonError``),
        that response's usage. A ``parse`` error is recorded as the call's error.
        """
        error = exc if isinstance(exc, Exception) else None
        if exc is not None:
            early = self.adapter.finished_early(exc)
            if early is not None:
                try:
                    return Settlement(self.adapter.usage(early), self.adapter.tool_calls(early), error)
                except Exception:  # fall through: the worst case
                    pass
        return Settlement(ticket.worst_case_usage(), (), error)

    def stream(self, guard: Guard, ticket: Ticket, result: Any) -> Any:
        """The metered proxy for a streamed result (the SDK's stream, or what a raw
        response's ``parse`` returned), or ``None`` when it is not a stream after all
        (a server that ignored ``stream=True``): settle it as a response then."""
        cls = type(result)
        if hasattr(cls, "__anext__"):
            return AsyncGuardedStream(result, guard, ticket, self.adapter.meter(self.hide))
        if hasattr(cls, "__next__"):
            return GuardedStream(result, guard, ticket, self.adapter.meter(self.hide))
        ticket.call.stream = False
        return None
