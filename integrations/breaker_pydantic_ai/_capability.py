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

The input bound is taken of what the model receives, not of pydantic-ai's message
objects (their timestamps, part kinds and run ids are not sent): each message is
mapped once to the OpenAI chat form its model sends (``wire_messages``: role, text,
tool calls and returns; any part it does not know is measured whole, which only
over-counts), bounded with ``ESTIMATOR.bounds`` as the SDK layer bounds a request,
and tightened from the provider's reported input of the request it extends.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Literal, Mapping, Sequence

from breaker import Breaker, ConfigError, Tripped, Usage
from breaker.adapter import ESTIMATOR, Call, Ticket
from breaker.adapter import args_fingerprint, lower_effort

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

__all__ = ["BreakerCapability", "usage_from_pydantic_ai", "wire_messages"]

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
        bound, by_bytes, fp, count, _ = ESTIMATOR.bounds(
            name, wire_messages(rc.messages), system=_instructions(params),
            tools=_tool_schemas(tools, params) or None, strict=self.guard.input_estimate != "loose",
        )
        settings = rc.model_settings or {}
        cap = settings.get("max_tokens")
        return Call(
            name, provider, input_tokens=bound, max_output_tokens=cap if isinstance(cap, int) else None,
            fingerprint=fp, tools=tuple(t.name for t in tools), stream=bool(getattr(rc, "streaming", False)),
            messages=count, attrs={"framework": "pydantic-ai"}, input_bytes=by_bytes, learn=ESTIMATOR.learn,
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


# ---------------------------------------------------------------------- the request as sent
_WIRE: OrderedDict[int, tuple[Any, Any, int, tuple[dict[str, Any], ...]]] = OrderedDict()
_MAX_WIRE = 16_384


def wire_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic-ai messages as OpenAI chat dicts: what a model sends of them, for the input bound.

    Each message object is mapped once (checked by the identity of the message and
    of its parts list, and the list's length) and the same dicts are returned for it
    afterwards, so a growing history costs O(1) a step here and in ``ESTIMATOR``.
    """
    out: list[dict[str, Any]] = []
    cache = _WIRE
    for m in messages:
        parts = getattr(m, "parts", None)
        hit = cache.get(id(m))
        if hit is not None and hit[0] is m and hit[1] is parts and hit[2] == len(parts or ()):
            out.extend(hit[3])
            continue
        items = _response(m) if getattr(m, "kind", None) == "response" else _request(m)
        cache[id(m)] = (m, parts, len(parts or ()), items)
        if len(cache) > _MAX_WIRE:
            cache.popitem(last=False)
        out.extend(items)
    return out


def _request(message: Any) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    for part in getattr(message, "parts", None) or ():
        kind = getattr(part, "part_kind", None)
        if kind == "system-prompt":
            out.append({"role": "system", "content": part.content})
        elif kind == "user-prompt":
            content = part.content
            out.append({"role": "user", "content": content if isinstance(content, str)
                        else [_user_content(c) for c in content]})
        elif kind == "tool-return":
            out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": _text(part, "model_response_str")})
        elif kind == "retry-prompt":
            text = _text(part, "model_response")
            if getattr(part, "tool_name", None):
                out.append({"role": "tool", "tool_call_id": part.tool_call_id, "content": text})
            else:
                out.append({"role": "user", "content": text})
        else:  # a part this mapping does not know: measured whole (an over-count, never an under-count)
            out.append({"role": "user", "content": to_jsonable_python(part, fallback=str)})
    return tuple(out)


def _response(message: Any) -> tuple[dict[str, Any], ...]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    other: list[Any] = []
    for part in message.parts:
        kind = getattr(part, "part_kind", None)
        if kind == "text":
            texts.append(part.content)
        elif kind == "tool-call":
            calls.append({"id": part.tool_call_id, "type": "function",
                          "function": {"name": part.tool_name, "arguments": part.args_as_json_str()}})
        elif kind == "thinking":  # sent back to some providers (Anthropic, with its signature): counted
            other.append([part.content, getattr(part, "signature", None)])
        else:
            other.append(to_jsonable_python(part, fallback=str))
    wire: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        wire["tool_calls"] = calls
    if other:
        wire["parts"] = other
    return (wire,)


def _user_content(item: Any) -> Any:
    if isinstance(item, str):
        return {"type": "text", "text": item}
    kind = getattr(item, "kind", None)
    if kind == "image-url" or (kind == "binary" and getattr(item, "is_image", False)):
        return {"type": "image_url"}  # a fixed bound per image (breaker.estimate), not its bytes
    if kind == "binary":
        return {"type": "file", "file": {"data": item.data, "media_type": getattr(item, "media_type", "")}}
    if kind in ("document-url", "audio-url", "video-url"):
        return {"type": "file", "file": {"url": getattr(item, "url", "")}}
    return to_jsonable_python(item, fallback=str)


def _text(part: Any, method: str) -> Any:
    try:
        return getattr(part, method)()
    except Exception:  # an older or newer part: its content, measured whole
        return to_jsonable_python(getattr(part, "content", part), fallback=str)


def _instructions(params: Any) -> str | None:
    """The system instructions sent with the request (``Agent(instructions=...)`` and dynamic ones)."""
    parts = getattr(params, "instruction_parts", None) or ()
    texts = [p.content if isinstance(getattr(p, "content", None), str) else str(to_jsonable_python(p, fallback=str))
             for p in parts]
    prompted = getattr(params, "prompted_output_instructions", None)
    if isinstance(prompted, str) and prompted:
        texts.append(prompted)
    return "\n\n".join(texts) or None


def _tool_schemas(tools: Sequence[Any], params: Any) -> list[Any]:
    """The tool definitions (and a native structured output's schema) as the provider receives them."""
    out: list[Any] = [
        {"type": "function", "function": {"name": t.name, "description": t.description or "",
                                          "parameters": t.parameters_json_schema}}
        for t in tools
    ]
    output = getattr(params, "output_object", None)
    if output is not None:
        out.append({"type": "json_schema", "name": output.name, "schema": output.json_schema})
    native = getattr(params, "native_tools", None)
    if native:
        out.append(to_jsonable_python(native, fallback=str))
    return out


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
