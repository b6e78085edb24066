"""The two objects an adapter exchanges with the engine.

``Call`` is what an adapter says about a request before sending it (no
prompt text, only bounds and a content-free fingerprint). ``Ticket`` is what
``Breaker.admit`` answers: the reservation, and the ``Patch`` the adapter
must apply to the request before sending it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .usage import Usage

if TYPE_CHECKING:
    from .ledgers.base import Counter, Limit
    from .pricing import Price
    from .scope import Session

__all__ = ["Call", "Patch", "Ticket"]


@dataclass(slots=True)
class Call:
    """One model request, described without its content.

    Attributes:
        model: the model name as the request gives it.
        provider: ``"openai"``, ``"anthropic"``, … (helps price lookup).
        input_tokens: an upper bound on the request's input tokens.
        max_output_tokens: the output cap the request carries, ``None`` if none.
        fingerprint: a content-free hash of model + messages + tools, for
            identical-call detection; ``None`` when unknown.
        tools: names of the tools offered to the model.
        operation: the GenAI operation name (``"chat"``, ``"responses"``…).
        stream: whether the response is streamed.
        messages: how many messages the request carries.
        attrs: anything else an adapter wants to pass to detectors or telemetry.
        trimmed_input: ``trimmed_input(n)`` is the input bound of the same
            request cut to its last ``n`` messages (the way ``Degrade(keep_last_messages=n)``
            cuts it), so a degraded call reserves what it will really send.
            When the engine uses it, it sets ``input_tokens`` to that bound.
    """

    model: str
    provider: str | None = None
    input_tokens: int = 0
    max_output_tokens: int | None = None
    fingerprint: int | str | None = None
    tools: tuple[str, ...] = ()
    operation: str = "chat"
    stream: bool = False
    messages: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    trimmed_input: Callable[[int], int] | None = None


@dataclass(slots=True)
class Patch:
    """What an adapter changes in the request before sending it.

    ``None`` means "leave it as the caller wrote it".
    """

    model: str | None = None
    max_output_tokens: int | None = None
    reasoning_effort: str | None = None
    keep_last_messages: int | None = None
    hook: Callable[[Any], Any] | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None
            for v in (self.model, self.max_output_tokens, self.reasoning_effort, self.keep_last_messages, self.hook)
        )


@dataclass(slots=True, eq=False)
class Ticket:
    """An admitted call: its reservation and the patch to apply.

    Adapters read ``patch`` (and ``model``, the model actually used) and hand
    the ticket back to ``Breaker.settle`` exactly once.
    """

    call: Call
    session: Session
    model: str
    price: Price | None
    patch: Patch
    degraded: bool
    counters: tuple[Counter, ...]
    limits: tuple[Limit, ...]
    output_budget: int  # output tokens the reservation pays for
    reservation: Any
    started: float
    span: Any = None
    settled: bool = False
    streamed_output: int = 0

    @property
    def reserved(self) -> tuple[int, int, int]:
        """``(nano-USD, tokens, calls)`` the reservation holds: the worst case of
        the call's input bound with ``output_budget`` output tokens (derived
        on demand rather than stored: nothing on the hot path reads it)."""
        call = self.call
        usd = 0
        if self.price is not None:
            fixed, per = self.price.worst_case(call.input_tokens)
            usd = fixed + per * self.output_budget
        return (usd, call.input_tokens + self.output_budget, 1)

    def worst_case_usage(self) -> Usage:
        """The usage the reservation paid for: the input bound and every granted output token.

        Billed when a provider's usage cannot be read, so such a call is never recorded as $0.
        """
        return Usage(input_tokens=self.call.input_tokens, output_tokens=self.output_budget)


@dataclass(slots=True)
class Outcome:
    """What happened to a sent call, as loop detectors see it.

    ``tool_calls`` holds ``(name, arguments_fingerprint)`` pairs the model
    asked for; no argument text.
    """

    ok: bool
    usage: Any = None
    cost_nano: int | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()
    error: BaseException | None = None
