"""``BreakerCapability``: budgets, degradation and the kill for pydantic-ai agents.

It wraps each model request step (``wrap_model_request``): admission before
the handler runs (so a refused request is never sent), the ticket's patch
applied to the request context (a cheaper model, a lower ``max_tokens``, a
lower ``openai_reasoning_effort`` but never a higher one than the caller set),
and settlement from ``ModelResponse.usage`` after. The handler runs inside
``guard.sending(ticket)``, so an SDK layer below (``guard.instrument()``)
counts the request once.

It keeps no per-run state on the instance: the ticket lives in the
``wrap_model_request`` frame and the session in ``contextvars``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping

from breaker import Breaker, ConfigError, Tripped, Usage
from breaker.adapter import Call, Ticket
from breaker.adapter import args_fingerprint, estimate, lower_effort

try:
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.exceptions import SkipModelRequest
    from pydantic_ai.messages import ModelResponse, TextPart
    from pydantic_ai.models import Model, ModelRequestContext
    from pydantic_core import to_jsonable_python
except ImportError as exc:  # pragma: no cover - exercised by the missing-framework test
    raise ImportError(
        f"BreakerCapability needs pydantic-ai, which is not installed ({exc.name} is missing): "
        f"pip install 'agent-cost-breaker[pydantic-ai]'"
    ) from exc

__all__ = ["BreakerCapability", "usage_from_pydantic_ai"]

# pydantic-ai's provider names -> the names the price table knows.
_PROVIDERS = {"google-gla": "google", "google-vertex": "google", "bedrock": "aws"}


@dataclasses.dataclass
class BreakerCapability(AbstractCapability[Any]):
    """Enforce a ``breaker.Breaker``'s budgets and loop checks on every model request of an agent.

    Args:
        guard: the engine whose budgets apply (requests are attributed to the
            ``guard.session(...)`` the run is awaited in).
        exit_behavior: on a kill, ``"end"`` skips the request with
            ``SkipModelRequest`` and a final text response that says which
            limit stopped the run (the session stays tripped); ``"error"``
            raises the ``breaker.Tripped``.
        models: models to degrade to, by name (``{"gpt-4o-mini": "openai:gpt-4o-mini"}``
            or a ``Model`` object). Without an entry, ``"<provider>:<name>"``
            is built with ``pydantic_ai.models.infer_model``.
        model: the model name to price requests with when the agent's model
            name is not one (a ``FunctionModel``, a custom wrapper).
    """

    guard: Breaker
    exit_behavior: Literal["end", "error"] = "end"
    models: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.guard, Breaker):
            raise ConfigError(f"BreakerCapability needs a breaker.Breaker, got {self.guard!r}")
        if self.exit_behavior not in ("end", "error"):
            raise ConfigError(f"exit_behavior={self.exit_behavior!r}: use 'end' (final response) or 'error' (raise)")

    async def wrap_model_request(self, ctx: Any, *, request_context: ModelRequestContext, handler: Any) -> ModelResponse:
        guard = self.guard
        if guard.inflight() is not None:  # an outer layer already counts this request
            return await handler(request_context)
        call = self._describe(request_context)
        try:
            ticket = await guard.admit_async(call)
        except Tripped as trip:
            if self.exit_behavior == "error":
                raise
            raise SkipModelRequest(stop_response(trip)) from None
        request_context = self._patched(request_context, ticket)
        with guard.sending(ticket):
            try:
                response = await handler(request_context)
            except BaseException as exc:  # a cancellation bills the input bound (Breaker.settle)
                await guard.settle_async(ticket, error=exc)
                raise
        await guard.settle_async(ticket, usage_from_pydantic_ai(response, ticket), tool_calls=_tool_calls(response))
        return response

    # ------------------------------------------------------------------ steps
    def _describe(self, rc: ModelRequestContext) -> Call:
        model = rc.model
        name = self.model or _plain_name(model.model_name)
        if not name:
            raise ConfigError(
                f"{type(model).__name__} does not name a priced model; pass BreakerCapability(guard, model='gpt-4o')"
            )
        vendor: str | None = getattr(model, "system", None)  # pydantic-ai's provider name
        provider = _PROVIDERS.get(vendor, vendor) if vendor is not None else None
        params = rc.model_request_parameters
        tools = [*(params.function_tools or ()), *(getattr(params, "output_tools", None) or ())]
        system = to_jsonable_python(getattr(params, "instruction_parts", None) or [])
        bound, fp, count = estimate(
            name, to_jsonable_python(rc.messages), system=system or None,
            tools=to_jsonable_python(tools) or None,
        )
        settings = rc.model_settings or {}
        cap = settings.get("max_tokens")
        return Call(
            name, provider, input_tokens=bound, max_output_tokens=cap if isinstance(cap, int) else None,
            fingerprint=fp, tools=tuple(t.name for t in tools), stream=bool(getattr(rc, "streaming", False)),
            messages=count, attrs={"framework": "pydantic-ai"},
        )

    def _patched(self, rc: ModelRequestContext, ticket: Ticket) -> ModelRequestContext:
        patch = ticket.patch
        if not patch:
            return rc
        try:
            changes: dict[str, Any] = {}
            if patch.model is not None:
                changes["model"] = self._cheaper(rc.model, patch.model)
            settings = dict(rc.model_settings or {})
            if patch.max_output_tokens is not None:
                settings["max_tokens"] = patch.max_output_tokens
            if patch.reasoning_effort is not None and "openai_reasoning_effort" in settings:
                current = settings["openai_reasoning_effort"]
                settings["openai_reasoning_effort"] = lower_effort(current, patch.reasoning_effort)
            if settings != (rc.model_settings or {}):
                changes["model_settings"] = settings
            return dataclasses.replace(rc, **changes) if changes else rc
        except BaseException:
            self.guard.release(ticket)
            raise

    def _cheaper(self, current: Model, target: str) -> Model:
        if target in self.models:
            found = self.models[target]
        else:
            system = getattr(current, "system", None)
            found = f"{system}:{target}" if system else target
        if isinstance(found, str):
            from pydantic_ai.models import infer_model

            try:
                return infer_model(found)
            except Exception as exc:
                raise ConfigError(
                    f"Cannot build the model {found!r} to degrade to ({exc}); pass it: "
                    f"BreakerCapability(guard, models={{{target!r}: <Model for {target}>}})"
                ) from exc
        return found


def stop_response(trip: Tripped) -> ModelResponse:
    """The final response of a stopped run: says which limit stopped it, carries no prompt text."""
    return ModelResponse(parts=[TextPart(f"Stopped by agent-cost-breaker: {trip.message}")], model_name="breaker")


def usage_from_pydantic_ai(response: ModelResponse, ticket: Ticket | None = None) -> Usage:
    """``ModelResponse.usage`` as a ``breaker.Usage``.

    pydantic-ai already normalises providers to the same convention as
    ``breaker.Usage`` (``input_tokens`` includes cache reads and writes,
    ``output_tokens`` includes ``output_reasoning_tokens``). A response that
    omitted usage (``unmeasured_requests``) is charged the ticket's bound:
    its input bound and the output it reserved, never $0.
    """
    u = response.usage
    if getattr(u, "unmeasured_requests", 0) and ticket is not None:
        return ticket.worst_case_usage()
    return Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_write_1h_tokens=getattr(u, "cache_write_1h_tokens", 0),
        reasoning_tokens=getattr(u, "output_reasoning_tokens", 0),
        tool_calls=len(_tool_calls(response)),
    )


def _plain_name(name: str | None) -> str | None:
    if not name or name.startswith("function:") or name in ("test", "function"):
        return None
    return name


def _tool_calls(response: ModelResponse) -> tuple[tuple[str, str], ...]:
    parts: list[Any] = list(response.parts)
    return tuple(
        (part.tool_name, args_fingerprint(part.args))
        for part in parts
        if getattr(part, "part_kind", None) == "tool-call"
    )
