"""LangChain shapes in, breaker shapes out: one place that knows both.

The middleware and the callback handler see the same things (a chat model,
a list of ``BaseMessage``, tools, an ``AIMessage`` with ``usage_metadata``);
this module turns them into a ``breaker.adapter.Call`` before the request and a
``breaker.Usage`` after it, so the two plugins cannot disagree about what a
call cost.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

from breaker import ConfigError, Usage
from breaker.adapter import ESTIMATOR, Call, args_fingerprint, measure

__all__ = [
    "CAP_FIELDS",
    "NAME_FIELDS",
    "describe",
    "identity",
    "provider_of",
    "tool_calls_of",
    "usage_from_message",
    "usage_or_bound",
    "wire_messages",
]

log = logging.getLogger("breaker.langchain")

NAME_FIELDS = ("model_name", "model", "model_id", "deployment_name")
"""Chat-model fields that hold the model name, in the order integrations use them."""

CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_new_tokens")
"""Chat-model fields (and call kwargs) that cap output tokens."""

# LangSmith provider names -> the names the price table knows.
_PROVIDERS = {
    "google_genai": "google",
    "google_vertexai": "google",
    "vertexai": "google",
    "bedrock_converse": "bedrock",
    "azure_openai": "azure",
    "azure": "azure",
    "mistralai": "mistral",
    "xai": "xai",
}


def provider_of(ls_provider: str | None) -> str | None:
    """The price table's provider name for a LangSmith ``ls_provider``."""
    return _PROVIDERS.get(ls_provider, ls_provider) if ls_provider else None


def identity(
    chat_model: Any, settings: Mapping[str, Any] | None = None, *, model: str | None = None
) -> tuple[str, str | None, int | None]:
    """``(model name, provider, output cap)`` of a chat model as it will be called.

    Read from the model's LangSmith parameters, which every LangChain chat
    integration fills in; ``model`` overrides the name (for models that do not
    report one, or to price a deployment name as the model behind it).
    """
    try:
        params = dict(chat_model._get_ls_params(**dict(settings or {})))
    except Exception:  # a third-party model with a broken override: fall back to fields
        params = {}
    name = model or params.get("ls_model_name") or _field_value(chat_model, NAME_FIELDS)
    if not name:
        raise ConfigError(
            f"{type(chat_model).__name__} does not say which model it calls, so its price is unknown; "
            f"pass the model name: BreakerMiddleware(guard, model='gpt-4o')"
        )
    provider = provider_of(params.get("ls_provider"))
    settings = settings or {}
    cap = next((settings[f] for f in CAP_FIELDS if settings.get(f) is not None), None)
    if cap is None:
        cap = params.get("ls_max_tokens")
    if cap is None:
        cap = _field_value(chat_model, CAP_FIELDS)
    return str(name), provider, int(cap) if isinstance(cap, int) and cap > 0 else None


def _field_value(obj: Any, fields: Iterable[str]) -> Any:
    for field in fields:
        value = getattr(obj, field, None)
        if value is not None and not callable(value):
            return value
    return None


_TOOLS: dict[int, tuple[Any, Any]] = {}


def _tool_data(tool: Any) -> Any:
    """A tool as the provider receives it (its JSON schema), converted once per tool object."""
    if isinstance(tool, dict):
        return tool
    hit = _TOOLS.get(id(tool))
    if hit is not None and hit[0] is tool:
        return hit[1]
    try:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        data = convert_to_openai_tool(tool)
    except Exception:  # an exotic tool: its name and description still bound most of it
        data = {"name": getattr(tool, "name", str(tool)), "description": getattr(tool, "description", "")}
    if len(_TOOLS) > 1024:
        _TOOLS.clear()
    _TOOLS[id(tool)] = (tool, data)
    return data


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        fn = tool.get("function")
        return str((fn or {}).get("name") if isinstance(fn, dict) else tool.get("name", "tool"))
    return str(getattr(tool, "name", type(tool).__name__))


_WIRE: OrderedDict[int, tuple[Any, Any, Any, tuple[Any, ...]]] = OrderedDict()
_MAX_WIRE = 16_384


def wire_messages(messages: Sequence[Any]) -> list[Any]:
    """The messages as the provider receives them: OpenAI chat dicts (``convert_to_openai_messages``).

    What a chat model sends is its messages' role, content and tool calls, not the
    ``BaseMessage`` objects with their ids, metadata and usage: the input bound is
    taken of this form, the one the SDK layer sees. Each message object is converted
    once and the same dicts are returned for it afterwards (checked by the identity
    of the message, its ``content`` and its ``tool_calls``), so that a growing
    agent history costs O(1) a step here and in ``ESTIMATOR``, whose caches go by
    object identity too. Plain dicts (already in that form) pass as they are.
    """
    from langchain_core.messages import convert_to_openai_messages

    out: list[Any] = []
    cache = _WIRE
    for m in messages:
        if isinstance(m, dict):
            out.append(m)
            continue
        content = getattr(m, "content", None)
        calls = getattr(m, "tool_calls", None)
        hit = cache.get(id(m))
        if hit is not None and hit[0] is m and hit[1] is content and hit[2] is calls:
            out.extend(hit[3])
            continue
        try:
            converted = convert_to_openai_messages(m)
        except Exception:  # a message type LangChain cannot convert: measured as it is
            converted = m
        items = tuple(converted) if isinstance(converted, list) else (converted,)
        cache[id(m)] = (m, content, calls, items)
        if len(cache) > _MAX_WIRE:
            cache.popitem(last=False)
        out.extend(items)
    return out


_TOOL_LISTS: OrderedDict[tuple[int, ...], tuple[tuple[Any, ...], list[Any]]] = OrderedDict()


def _tools_data(tools: Sequence[Any]) -> list[Any] | None:
    """The tool schemas as sent, the same list object for the same tools (``ESTIMATOR`` measures it once)."""
    if not tools:
        return None
    key = tuple(id(t) for t in tools)
    hit = _TOOL_LISTS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], tools)):
        return hit[1]
    data = [_tool_data(t) for t in tools]
    _TOOL_LISTS[key] = (tuple(tools), data)
    if len(_TOOL_LISTS) > 256:
        _TOOL_LISTS.popitem(last=False)
    return data


def describe(
    model: str,
    provider: str | None,
    messages: Sequence[Any],
    tools: Sequence[Any] = (),
    *,
    max_output_tokens: int | None = None,
    stream: bool = False,
    strict: bool = True,
) -> Call:
    """The ``Call`` for a LangChain chat request: input bound, cap, content-free fingerprint.

    The input is bounded as the SDK layer bounds the same request: of its wire form
    (``wire_messages``, tool schemas as ``convert_to_openai_tool`` gives them) with
    ``ESTIMATOR.bounds``, so the bound is tightened from the provider's reported input
    of the request this one extends (``learn``, called at settlement). ``strict`` is
    ``guard.input_estimate != "loose"``.
    """
    bound, by_bytes, fp, count, _ = ESTIMATOR.bounds(
        model, wire_messages(messages), tools=_tools_data(tools), strict=strict,
    )
    return Call(
        model,
        provider,
        input_tokens=bound,
        max_output_tokens=max_output_tokens,
        fingerprint=fp,
        tools=tuple(_tool_name(t) for t in tools),
        stream=stream,
        messages=count,
        attrs={"framework": "langchain"},
        input_bytes=by_bytes,
        learn=ESTIMATOR.learn,
    )


def usage_from_message(message: Any) -> Usage | None:
    """``AIMessage.usage_metadata`` as a ``breaker.Usage`` (``None`` when the model reported none).

    LangChain's ``input_tokens`` already includes cache reads and writes and
    its ``output_tokens`` includes reasoning, the same convention as
    ``breaker.Usage``; Anthropic's 1-hour cache writes arrive as
    ``input_token_details.ephemeral_1h_input_tokens``.
    """
    meta = getattr(message, "usage_metadata", None)
    if not meta:
        return None
    inp = meta.get("input_token_details") or {}
    out = meta.get("output_token_details") or {}
    tool_calls = getattr(message, "tool_calls", None) or ()
    return Usage(
        input_tokens=int(meta.get("input_tokens") or 0),
        output_tokens=int(meta.get("output_tokens") or 0),
        cache_read_tokens=int(inp.get("cache_read") or 0),
        cache_write_tokens=int(inp.get("cache_creation") or 0),
        cache_write_1h_tokens=int(inp.get("ephemeral_1h_input_tokens") or 0),
        reasoning_tokens=int(out.get("reasoning") or 0),
        tool_calls=len(tool_calls),
    )


def usage_or_bound(messages: Sequence[Any], call: Call) -> Usage:
    """The usage of a response, summed over its AI messages, or a strict bound when none was reported.

    A model that reports no usage is charged its input bound plus the UTF-8
    bytes of what it answered: more than it cost, never $0.
    """
    found = [u for u in (usage_from_message(m) for m in messages) if u is not None]
    if found:
        return sum(found, Usage(requests=0))
    log.warning("%s reported no usage_metadata; charging the call its strict bound", call.model)
    text_bytes, fixed, _ = measure([[m.content, m.tool_calls] for m in messages])
    return Usage(input_tokens=call.input_tokens, output_tokens=text_bytes + fixed)


def tool_calls_of(messages: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    """``(tool name, arguments fingerprint)`` for each tool call in the AI messages, for the loop detector."""
    out = []
    for message in messages:
        for c in getattr(message, "tool_calls", None) or ():
            out.append((str(c.get("name")), args_fingerprint(c.get("args"))))
    return tuple(out)
