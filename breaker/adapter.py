"""The seam every provider adapter and framework plugin is written against.

One call's life (``docs/architecture.md``): the adapter describes the request
as a ``Call`` (no prompt text: bounds and a content-free fingerprint);
``guard.admit(call)`` answers a ``Ticket`` (the reservation, and the ``Patch``
the adapter must apply before sending) or refuses; the adapter sends inside
``with guard.sending(ticket):`` so that any layer below counts the call once;
it reads the provider's usage and hands the ticket back to ``guard.settle``
exactly once. Loop detectors see each sent call's ``Outcome``.

Providers (``breaker/providers``) and plugins (``integrations/``) use only the
names here and the user API: ``Guard`` is what they may call on the engine;
the input-bound and fingerprint helpers are the ones the SDK layer uses, so a
plugin reserves exactly what the SDK layer would for the same request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .errors import BudgetExceeded, UsageError
from .estimate import ESTIMATOR, args_fingerprint, estimate, interned, measure
from .providers.effort import EFFORTS, lower_effort
from .usage import Usage

if TYPE_CHECKING:
    from .ledgers.base import Counter, Limit
    from .pricing import Price
    from .session import Session

__all__ = [
    "EFFORTS",
    "ESTIMATOR",
    "Call",
    "Guard",
    "Outcome",
    "Patch",
    "Ticket",
    "args_fingerprint",
    "estimate",
    "interned",
    "lower_effort",
    "measure",
    "stream_overrun",
    "usage_error",
    "warn_unreadable",
]

log = logging.getLogger("breaker")


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
        input_bytes: the byte-count bound of the request (``estimate``'s), when
            ``input_tokens`` is tighter because it was learned from the provider's
            report for this model (``ESTIMATOR.bounds``): a degrade that switches the
            model reserves this instead, since another tokenizer may count more.
        learn: ``learn(fingerprint, reported_input_tokens)``, called by the engine when
            the call settles with the provider's usage, so that requests extending this
            one are bounded from that report (``ESTIMATOR.learn``).
        price_context: the request's price variant as genai-prices names it
            (``(("service_tier", "priority"),)``, ``(("speed", "fast"),)``), ``None`` for the
            standard price. The response may say otherwise: see ``Ticket.served``.
        strict_provider: ``provider`` was named (``wrap(client, provider=...)``, a known
            ``base_url`` host), so only that provider's price applies; otherwise it is a
            hint and a model it does not list is priced wherever genai-prices has it.
        units: a bound on the non-token units the request will be billed
            (``{"input_characters": 1200}``, ``{"audio_seconds": 600}``: ``Usage`` field
            names), reserved at admission on top of the token bound.
        text_only: the request carries nothing but text (no image, audio, video or file
            part, no cached or continued content that could hold one), so its input bills
            at the text rates: it is reserved at the dearest of those (cache reads and
            writes included), not at the dearest input kind (gemini-2.5-flash bills audio
            at 3.3 times text). Adapters set it only when they are sure; ``False`` is the
            safe default.
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
    input_bytes: int | None = None
    learn: Callable[[Any, int], None] | None = None
    price_context: tuple[tuple[str, str], ...] | None = None
    strict_provider: bool = False
    units: dict[str, int] | None = None
    text_only: bool = False


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
    # The price variant the response says it was served at (OpenAI echoes ``service_tier``),
    # when it differs from the request's: the adapter sets it, settlement prices by it.
    served: tuple[tuple[str, str], ...] | None = None

    @property
    def reserved(self) -> tuple[int, int, int]:
        """``(nano-USD, tokens, calls)`` the reservation holds: the worst case of
        the call's input bound with ``output_budget`` output tokens (derived
        on demand rather than stored: nothing on the hot path reads it)."""
        call = self.call
        usd = 0
        if self.price is not None:
            fixed, per = self.price.worst_case(call.input_tokens, call.text_only)
            usd = fixed + per * self.output_budget + (self.price.units_cost(call.units) if call.units else 0)
        return (usd, call.input_tokens + self.output_budget, 1)

    def worst_case_usage(self) -> Usage:
        """The usage the reservation paid for: the input bound and every granted output token.

        Billed when a provider's usage cannot be read, so such a call is never recorded as $0.
        """
        return Usage(input_tokens=self.call.input_tokens, output_tokens=self.output_budget, **(self.call.units or {}))


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


class Guard(Protocol):
    """What an adapter or plugin may call on the engine (``breaker.Breaker`` implements it)."""

    input_estimate: str  # "strict" (an upper bound) or "loose": pass ``strict=`` to ``estimate`` accordingly
    stream_usage: bool  # may a stream request be changed to report its usage (OpenAI chat's include_usage)

    @property
    def instrumented(self) -> bool:
        """Whether the SDK layer is patched below this plugin (it then caps and counts the call)."""

    def admit(self, call: Call, session: Session | None = None) -> Ticket: ...

    async def admit_async(self, call: Call, session: Session | None = None) -> Ticket: ...

    def settle(self, ticket: Ticket, usage: Usage | None = None, *, error: BaseException | None = None,
               tool_calls: Sequence[tuple[str, str]] = (), sent: bool = True) -> int | None: ...

    async def settle_async(self, ticket: Ticket, usage: Usage | None = None, *, error: BaseException | None = None,
                           tool_calls: Sequence[tuple[str, str]] = (), sent: bool = True) -> int | None: ...

    def release(self, ticket: Ticket) -> None: ...

    def sending(self, ticket: Ticket) -> AbstractContextManager[Ticket]: ...

    def inflight(self) -> Ticket | None: ...

    def require_unpatched(self, ticket: Ticket, *, layer: str, model_fix: str, cap_fix: str) -> None: ...

    def current_session(self) -> Session: ...


def usage_error(what: str, detail: str) -> UsageError:
    """The error an adapter's usage reader raises for usage it cannot read (caught by the
    pipeline, which bills the worst case and logs it once: ``warn_unreadable``)."""
    return UsageError(f"{what}: {detail}")


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_unreadable(what: str, exc: BaseException) -> None:
    """Fail open for observation, closed for money: usage breaker cannot read never breaks the
    caller's call. The call is billed at its reserved worst case (never a silent $0), the
    response is returned unchanged, and this logs one warning per kind (``what`` and the
    error's type), not one per call. The error text names fields and counts, never content.
    """
    key = (what, type(exc).__name__)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "%s: usage could not be read (%s: %s). Such calls are billed at their reserved worst case and "
        "returned unchanged; if a proxy or an OpenAI-compatible server strips or rewrites `usage`, have it "
        "pass the provider's usage through, or account for such calls with Breaker.record(). "
        "(Logged once per kind.)", what, type(exc).__name__, exc,
    )


def stream_overrun(ticket: Ticket, seen: int) -> BudgetExceeded | None:
    """The stream cut: the error to raise (after closing the stream) once ``seen`` output
    tokens pass what the reservation paid for, else ``None``.

    Only a provider that ignores the lowered output cap gets here; one rule and one
    reason code (``"stream_cut"``) for the SDK layer and every plugin.
    """
    ticket.streamed_output = seen
    if seen <= ticket.output_budget:
        return None
    session = ticket.session
    return BudgetExceeded(
        f"The streamed answer from {ticket.model} passed the {ticket.output_budget:,} output tokens its "
        f"budget reservation paid for ({seen:,} arrived; the provider did not honour the lowered output cap), "
        f"so breaker closed the stream. What arrived was billed.",
        scope="session", key=session.id, reason="stream_cut", metric="tokens",
        spent=float(seen), limit=float(ticket.output_budget), session=session.id, sticky=False,
    )
