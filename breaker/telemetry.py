"""Telemetry hooks the engine calls on every admitted call.

The engine only talks to a narrow interface of three methods:

* ``start(call, session)`` right after a call's reservation is granted; what
  it returns is stored on ``ticket.span``;
* ``end(ticket, usage, cost_nano, error)`` when the call is settled;
* ``event(ticket_or_None, event)`` for every alert event;

and adapters may use ``activate(ticket)``, a context manager that makes the
call's span current while the request is sent.

``NoTelemetry`` does nothing. ``OTel`` follows the OpenTelemetry GenAI
semantic conventions and depends on ``opentelemetry-api`` alone, as a library
should (the application picks the SDK and exporters): while no tracer provider
and no meter provider is installed, a call costs a clock read (to notice one
installed later, within 50 ms) and nothing more.

Two modes:

* ``"span"`` (default): one CLIENT span per model call, named
  ``"{gen_ai.operation.name} {gen_ai.request.model}"``, plus the
  ``gen_ai.client.*`` metrics.
* ``"annotate"``: for applications that already run another GenAI
  instrumentation (which makes its own spans and ``gen_ai.client.*``
  metrics). No span is started; breaker's attributes (attribution, cost,
  budget, degrade, trip) are written on the span that is current when the call
  is admitted, and only breaker's own metrics are recorded, so nothing is
  counted twice. Instrument breaker *before* the other instrumentation so
  that its span is the current one when breaker admits the call.

No prompt or completion text is ever recorded unless ``capture_content=True``
(or the conventional ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``):
the engine never sees content, exception messages (which may quote the
request) are left out, and content attributes an adapter passes through
``Call.attrs`` are dropped.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from .logsafe import error_summary

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .adapter import Call, Ticket
    from .events import Event
    from .session import Session
    from .usage import Usage

__all__ = ["NoTelemetry", "OTel", "Telemetry", "make_telemetry"]

log = logging.getLogger("breaker")

_NANO = 1_000_000_000
_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_RECHECK = 0.05  # seconds between looks for a tracer provider installed after Breaker()
_MAX_ATTR_SETS = 4096
_now = time.perf_counter


class NoTelemetry:
    """The do-nothing telemetry (``Breaker(telemetry=False)``)."""

    def start(self, call: Call, session: Session) -> Any:
        return None

    def end(self, ticket: Ticket, usage: Usage | None, cost_nano: int | None, error: BaseException | None) -> None:
        pass

    def event(self, ticket: Ticket | None, event: Event) -> None:
        pass

    def activate(self, ticket: Ticket) -> AbstractContextManager[Any]:
        return _NULL


Telemetry = NoTelemetry
_NULL = nullcontext()


class _CallSpan:
    """What ``OTel.start`` returns (kept on ``ticket.span``) for a recording span.

    When no span records (sampled out, no current span to annotate, no tracer provider)
    ``start`` returns just the start time, a float, which still feeds the duration
    metric: one allocation fewer on the hot path; when no meter provider is installed
    either, ``None``: ``end`` then has nothing to do.
    """

    __slots__ = ("span", "t0", "ended", "owned")

    def __init__(self, span: Span, t0: float, owned: bool) -> None:
        self.span = span
        self.t0 = t0
        self.ended = False
        self.owned = owned


class OTel:
    """OpenTelemetry spans and metrics following the GenAI semantic conventions.

    Args:
        mode: ``"span"`` starts a CLIENT span per call; ``"annotate"`` writes
            breaker's attributes on the current span instead (see the module doc).
        tracer_provider, meter_provider: explicit providers; by default the
            global ones (set by the application with the SDK), looked up lazily
            so that an SDK configured after ``Breaker()`` is built still works.
        capture_content: allow prompt/completion attributes passed by adapters
            and exception messages. Off by default; ``None`` reads
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        genai_metrics: record ``gen_ai.client.token.usage`` and
            ``gen_ai.client.operation.duration``. Default: on in span mode, off
            in annotate mode (the other instrumentation records them).
        budget_remaining: read the tightest remaining USD budget from the
            ledger for each recorded span (one ledger read per sampled call;
            turn off with a remote ledger if that read is too dear).
    """

    def __init__(
        self,
        mode: str = "span",
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
        genai_metrics: bool | None = None,
        budget_remaining: bool = True,
    ) -> None:
        from opentelemetry import metrics, trace

        from .errors import ConfigError

        if mode not in ("span", "annotate"):
            raise ConfigError(f"OTel(mode={mode!r}): use 'span' (a span per call) or 'annotate' (the current span)")
        if capture_content is None:
            capture_content = os.environ.get(_CONTENT_ENV, "").strip().lower() == "true"
        self.mode = mode
        self._span_mode = mode == "span"
        self.capture_content = bool(capture_content)
        self.genai_metrics = (mode == "span") if genai_metrics is None else bool(genai_metrics)
        self.budget_remaining = budget_remaining
        version = _version()
        self._trace = trace
        self._metrics = metrics
        self._no_meters = _no_meters()
        self._kind = trace.SpanKind.CLIENT
        self._error = trace.StatusCode.ERROR
        self._version = version
        # The tracer once an SDK (or any real provider) is there, and whether a meter provider is;
        # until then the global providers are re-checked at most every _RECHECK seconds (``_look``),
        # so that with no SDK a call costs a clock read and nothing else: no span, no metric.
        self._tracer = trace.get_tracer("breaker", version, tracer_provider) if tracer_provider is not None else None
        self._metered = meter_provider is not None
        self._next_check = 0.0
        meter = metrics.get_meter("breaker", version, meter_provider)
        self._tokens = meter.create_histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=sc.TOKEN_USAGE_BUCKETS,
        )
        self._duration = meter.create_histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self._cost = meter.create_counter(sc.BREAKER_COST, unit="USD", description="Cost of model calls, priced by breaker")
        self._trips = meter.create_counter(sc.BREAKER_TRIPS, unit="{trip}", description="Scopes stopped by breaker")
        # The call started last in this context and not yet ended: events the
        # engine emits while settling it (thresholds, trips) belong on its span.
        self._pending: ContextVar[_CallSpan | None] = ContextVar(f"breaker_otel_{id(self):x}", default=None)
        self._attrs: dict[tuple[Any, ...], tuple[dict[str, Any], ...]] = {}

    def _look(self) -> None:
        """Look for a tracer provider and a meter provider installed since (OpenTelemetry's API
        without an SDK answers with proxies that record nothing)."""
        self._next_check = time.monotonic() + _RECHECK
        if self._tracer is None:
            provider = self._trace.get_tracer_provider()
            if not isinstance(provider, self._trace.ProxyTracerProvider):
                self._tracer = provider.get_tracer("breaker", self._version)
        if not self._metered:
            self._metered = not isinstance(self._metrics.get_meter_provider(), self._no_meters)

    def __repr__(self) -> str:
        return f"OTel(mode={self.mode!r}, capture_content={self.capture_content})"

    # ------------------------------------------------------------------ calls
    def start(self, call: Call, session: Session) -> _CallSpan | float | None:
        """Open the call's span (or pick the current one to annotate)."""
        try:
            if self._span_mode:
                tracer = self._tracer
                if tracer is None:
                    if time.monotonic() >= self._next_check:
                        self._look()
                    tracer = self._tracer
                    if tracer is None:  # no tracer: the clock for the duration metric, or (no SDK) nothing
                        return _now() if self._metered else None
                span = tracer.start_span(
                    f"{call.operation} {call.model}", kind=self._kind, attributes=_request_attributes(call)
                )
                owned = True
            else:
                span = self._trace.get_current_span()
                owned = False
            if not span.is_recording():
                if not self._metered and time.monotonic() >= self._next_check:
                    self._look()
                return _now() if self._metered else None
            handle = _CallSpan(span, _now(), owned)
            self._pending.set(handle)
            return handle
        except Exception as e:  # telemetry must never break a call
            log.error("breaker telemetry failed to start a span (%s)", error_summary(e))  # no traceback: logsafe
            return None

    def end(self, ticket: Ticket, usage: Usage | None, cost_nano: int | None, error: BaseException | None) -> None:
        """Record the call's usage, cost and outcome; end its span."""
        handle = ticket.span
        if type(handle) is float:  # nothing records the span: metrics only
            t0 = handle
        elif type(handle) is _CallSpan and not handle.ended:
            handle.ended = True
            t0 = handle.t0
        else:
            return
        try:
            call = ticket.call
            error_type = None if error is None else _error_type(error)
            if type(handle) is _CallSpan:
                if self._pending.get() is handle:
                    self._pending.set(None)
                self._finish_span(handle.span, handle.owned, ticket, usage, cost_nano, error, error_type)
            key = (ticket.model, call.provider, call.operation, ticket.session.feature, error_type,
                   call.attrs.get(sc.GEN_AI_RESPONSE_MODEL) if call.attrs else None)
            sets = self._attrs.get(key) or self._metric_attrs(key)
            if self.genai_metrics:
                if usage is not None:
                    self._tokens.record(usage.input_tokens, sets[0])
                    self._tokens.record(usage.output_tokens, sets[1])
                self._duration.record(_now() - t0, sets[2])
            if cost_nano:
                self._cost.add(cost_nano / _NANO, sets[3])
        except Exception as e:
            log.error("breaker telemetry failed to end a span (%s)", error_summary(e))

    def _metric_attrs(self, key: tuple[Any, ...]) -> tuple[dict[str, Any], ...]:
        """Attribute sets for the four metrics, built once per combination (they are on the hot path)."""
        model, provider, operation, feature, error_type, response_model = key
        base: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_REQUEST_MODEL: model}
        if provider:
            base[sc.GEN_AI_PROVIDER_NAME] = provider
        cost = dict(base)
        if feature is not None:
            cost[sc.BREAKER_FEATURE] = feature
        base[sc.GEN_AI_RESPONSE_MODEL] = response_model or model
        duration = base if error_type is None else {**base, sc.ERROR_TYPE: error_type}
        sets = ({**base, sc.GEN_AI_TOKEN_TYPE: "input"}, {**base, sc.GEN_AI_TOKEN_TYPE: "output"}, duration, cost)
        if len(self._attrs) >= _MAX_ATTR_SETS:
            self._attrs.clear()
        self._attrs[key] = sets
        return sets

    def _finish_span(
        self, span: Span, owned: bool, ticket: Ticket, usage: Usage | None, cost_nano: int | None,
        error: BaseException | None, error_type: str | None,
    ) -> None:
        call = ticket.call
        session = ticket.session
        attrs: dict[str, Any] = {sc.BREAKER_SESSION: session.id}
        if session.feature is not None:
            attrs[sc.BREAKER_FEATURE] = session.feature
        if session.user is not None:
            attrs[sc.BREAKER_USER] = session.user
        for k, v in session.tags.items():
            attrs[sc.BREAKER_TAG_PREFIX + k] = v
        if owned:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = ticket.model
            if usage is not None:
                attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
                attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
                attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
                attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
                attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
            if ticket.patch.max_output_tokens is not None:
                attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = ticket.patch.max_output_tokens
        if cost_nano is not None:
            usd = cost_nano / _NANO
            attrs[sc.BREAKER_COST_USD] = usd
            attrs[sc.GEN_AI_USAGE_COST_AMOUNT] = usd
            attrs[sc.GEN_AI_USAGE_COST_CURRENCY] = "USD"
        if self.budget_remaining:
            try:
                remaining = session.remaining_usd
            except Exception as e:  # a shared ledger that does not answer: the span still ends
                log.debug("breaker telemetry could not read the remaining budget (%s)", error_summary(e))
                remaining = None
            if remaining is not None:
                attrs[sc.BREAKER_BUDGET_REMAINING_USD] = remaining
        attrs[sc.BREAKER_DEGRADED] = ticket.degraded
        if ticket.model != call.model:
            attrs[sc.BREAKER_REQUESTED_MODEL] = call.model
            if owned:
                attrs[sc.GEN_AI_REQUEST_MODEL] = ticket.model
                span.update_name(f"{call.operation} {ticket.model}")
        from .errors import Tripped

        if isinstance(error, Tripped):
            attrs[sc.BREAKER_TRIPPED] = True
            attrs[sc.BREAKER_TRIP_REASON] = error.reason
        for k, v in call.attrs.items():
            if (k.startswith("gen_ai.") or k.startswith("server.")) and v is not None and (
                self.capture_content or k not in sc.CONTENT_ATTRIBUTES
            ):
                attrs[k] = v
        span.set_attributes(attrs)
        if ticket.degraded:
            span.add_event(sc.BREAKER_EVENT_PREFIX + "degraded", {
                sc.BREAKER_REQUESTED_MODEL: call.model, sc.GEN_AI_REQUEST_MODEL: ticket.model,
            })
        if error is not None:
            if owned:
                span.set_attribute(sc.ERROR_TYPE, error_type)  # type: ignore[arg-type]
                span.set_status(self._error, error_type)
            if self.capture_content and isinstance(error, Exception):
                span.record_exception(error)
        if owned:
            span.end()

    def activate(self, ticket: Ticket) -> AbstractContextManager[Any]:
        """Make the call's span current while the request is sent (for adapters).

        Spans started inside (an instrumented HTTP client, say) then become
        children of the model call's span. A no-op when nothing records or in
        annotate mode. Never ends the span: ``settle`` does.
        """
        handle = ticket.span
        if type(handle) is not _CallSpan or not handle.owned or handle.ended:
            return _NULL
        return self._trace.use_span(handle.span, end_on_exit=False, record_exception=False,
                                    set_status_on_exception=False)

    # ------------------------------------------------------------------ events
    def event(self, ticket: Ticket | None, event: Event) -> None:
        """Count trips; put the event on the call's span, else on the current span."""
        if event.kind == "tripped":
            reason = event.data.get("reason") or "budget"
            attrs = {sc.BREAKER_TRIP_REASON: reason}
            if event.scope:
                attrs[sc.BREAKER_SCOPE] = event.scope
            self._trips.add(1, attrs)
        handle = ticket.span if ticket is not None else self._pending.get()
        span = handle.span if type(handle) is _CallSpan and not handle.ended else None
        if span is None:
            span = self._trace.get_current_span()
            if not span.is_recording():
                return
        attrs = {sc.BREAKER_MESSAGE: event.message}
        for name, value in (
            (sc.BREAKER_SCOPE, event.scope), (sc.BREAKER_KEY, event.key), (sc.BREAKER_SESSION, event.session),
            (sc.BREAKER_SPENT_USD, event.spent_usd), (sc.BREAKER_LIMIT_USD, event.limit_usd),
            (sc.BREAKER_FRACTION, event.fraction),
        ):
            if value is not None:
                attrs[name] = value
        if event.kind == "tripped":
            attrs[sc.BREAKER_TRIP_REASON] = event.data.get("reason") or "budget"
            span.set_attributes({sc.BREAKER_TRIPPED: True, sc.BREAKER_TRIP_REASON: attrs[sc.BREAKER_TRIP_REASON]})
        elif event.kind == "loop":
            signal = event.data.get("signal")
            if signal:
                attrs["breaker.loop.signal"] = str(signal)
        span.add_event(sc.BREAKER_EVENT_PREFIX + event.kind, attrs)


def _no_meters() -> tuple[type, ...]:
    """The global meter providers that record nothing: the API's proxy (until an SDK is installed)
    and the no-op one."""
    try:
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # an API without those classes: any provider is taken to record
        return ()
    return (_ProxyMeterProvider, NoOpMeterProvider)


def _request_attributes(call: Call) -> dict[str, Any]:
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: call.operation, sc.GEN_AI_REQUEST_MODEL: call.model}
    if call.provider:
        attrs[sc.GEN_AI_PROVIDER_NAME] = call.provider
    if call.max_output_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = call.max_output_tokens
    return attrs


def _error_type(error: BaseException) -> str:
    """The exception's fully qualified class name (never its message: it may quote the request)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _version() -> str:
    from .version import __version__

    return __version__


def make_telemetry(option: Any) -> Any:
    """Turn the ``Breaker(telemetry=...)`` option into a telemetry object.

    ``True`` (the default) is ``OTel()`` in span mode, a no-op until the
    application installs the OpenTelemetry SDK; ``"span"`` / ``"annotate"``
    pick the mode; ``False`` or ``None`` turn telemetry off; any object with
    ``start``, ``end`` and ``event`` methods is used as is.
    """
    if option is False or option is None:
        return NoTelemetry()
    if option is True:
        return OTel()
    if isinstance(option, str):
        return OTel(mode=option)
    if all(callable(getattr(option, m, None)) for m in ("start", "end", "event")):
        return option
    from .errors import ConfigError

    raise ConfigError(
        f"telemetry={option!r}: use True (OpenTelemetry spans), 'annotate', False, "
        f"breaker.telemetry.OTel(...) or an object with start/end/event methods"
    )
