"""OpenAI request shapes: chat completions and Responses.

Usage conventions (see FACTS.md): chat ``prompt_tokens`` already includes
cached tokens and ``completion_tokens`` includes reasoning tokens, which is
breaker's own convention, so they map one to one. Chat streams carry usage
only when ``stream_options.include_usage`` is set; breaker sets it and hides
the extra usage-only chunk (``choices == []``) it causes, so code reading
``chunk.choices[0]`` keeps working. Responses streams carry usage on their
final ``response.completed`` / ``.incomplete`` / ``.failed`` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..call import Call, Patch
from ..degrade import trim_messages
from ..estimate import estimate, trimmed
from ..usage import Usage
from ._pipeline import Adapter, usage_error
from ._shapes import cap_value, field as _get, count as _int, lower_effort, tool_names, value
from ._streams import Meter
from ._tools import args_fingerprint


__all__ = ["ChatAdapter", "ResponsesAdapter"]

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex")


def _reasoning_model(model: str) -> bool:
    """Only reasoning models accept ``reasoning_effort``; others answer 400 to it."""
    return model.startswith(_REASONING_PREFIXES)


# ------------------------------------------------------------------ chat completions
def chat_usage(u: Any) -> Usage:
    if u is None:
        raise usage_error("An OpenAI chat completion came back without `usage`", "nothing to price it from")
    prompt = _get(u, "prompt_tokens")
    completion = _get(u, "completion_tokens")
    if prompt is None or completion is None:
        raise usage_error("OpenAI chat usage lacks prompt_tokens/completion_tokens", f"got {u!r}")
    pd = _get(u, "prompt_tokens_details")
    cd = _get(u, "completion_tokens_details")
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=_int(pd, "cached_tokens"),
        cache_write_tokens=_int(pd, "cache_write_tokens"),
        reasoning_tokens=_int(cd, "reasoning_tokens"),
    )


class ChatMeter(Meter):
    __slots__ = ()

    def feed(self, chunk: Any) -> bool:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            u = chat_usage(usage)
            self.usage = u.replace(tool_calls=len(self._tools)) if self._tools else u
        choices = chunk.choices
        if not choices:
            return not (self.hide_usage and usage is not None)
        for choice in choices:
            delta = choice.delta
            if delta is None:
                continue
            self.add_text(delta.content)
            self.add_text(getattr(delta, "refusal", None))
            calls = delta.tool_calls
            if calls:
                for tc in calls:
                    fn = tc.function
                    args = fn.arguments if fn is not None else None
                    self.add_tool((choice.index, tc.index), fn.name if fn is not None else None, args)
                    self.add_text(args)
        if self.usage is not None and self._tools:
            self.usage = self.usage.replace(tool_calls=len(self._tools))
        return True


class ChatAdapter(Adapter):
    """``chat.completions.create`` / ``.parse`` (``.stream`` goes through ``create``)."""

    provider = "openai"
    operation = "chat"
    name = "OpenAI chat.completions"
    _caps = ("max_completion_tokens", "max_tokens")

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = kwargs.get("model")
        messages = kwargs.get("messages")
        if not isinstance(model, str) or messages is None:
            return None
        if not isinstance(messages, (list, tuple)):
            return None  # a one-shot iterable: the SDK consumes it; describe() must not
        tools = value(kwargs, "tools") or value(kwargs, "functions")
        bound, fp, n = estimate(model, messages, tools=tools, strict=strict)
        _, cap = cap_value(kwargs, self._caps)
        choices = value(kwargs, "n") or 1
        return Call(
            model, "openai", input_tokens=bound,
            max_output_tokens=cap * choices if cap is not None else None,
            fingerprint=fp, tools=tool_names(tools), operation="chat",
            stream=value(kwargs, "stream") is True, messages=n,
            trimmed_input=trimmed(model, messages, "openai", tools=tools, strict=strict),
        )

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        if patch.max_output_tokens is not None:
            field, cap = cap_value(kw, self._caps)
            per_choice = max(1, patch.max_output_tokens // (value(kw, "n") or 1))
            kw[field or "max_completion_tokens"] = per_choice if cap is None else min(cap, per_choice)
        if patch.reasoning_effort is not None:
            current = value(kw, "reasoning_effort")
            if current is not None or _reasoning_model(kw["model"]):
                kw["reasoning_effort"] = lower_effort(current, patch.reasoning_effort)
        if patch.keep_last_messages is not None:
            kw["messages"] = trim_messages(kw["messages"], patch.keep_last_messages, style="openai")
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        options = value(kwargs, "stream_options")
        if isinstance(options, Mapping) and options.get("include_usage") is True:
            return kwargs, False
        kw = dict(kwargs)
        kw["stream_options"] = {**(options or {}), "include_usage": True}
        return kw, True

    def usage(self, response: Any) -> Usage:
        return self.result(response)[0]

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return self.result(response)[1]

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        u = chat_usage(response.usage)
        calls: list[tuple[str, str]] = []
        for choice in response.choices:
            message = choice.message
            if message is not None and message.tool_calls:
                for tc in message.tool_calls:
                    fn = getattr(tc, "function", None)
                    if fn is not None:
                        calls.append((fn.name, args_fingerprint(fn.arguments)))
        if calls:
            return u.replace(tool_calls=len(calls)), tuple(calls)
        return u, ()

    def meter(self, hide_usage: bool) -> Meter:
        return ChatMeter(hide_usage)

    def finished_early(self, exc: BaseException) -> Any:
        return getattr(exc, "completion", None)  # LengthFinishReasonError, ContentFilterFinishReasonError


# ------------------------------------------------------------------ Responses
def responses_usage(u: Any, output: Any) -> Usage:
    if u is None:
        raise usage_error("An OpenAI response came back without `usage`", "nothing to price it from")
    inp = _get(u, "input_tokens")
    out = _get(u, "output_tokens")
    if inp is None or out is None:
        raise usage_error("OpenAI Responses usage lacks input_tokens/output_tokens", f"got {u!r}")
    idet = _get(u, "input_tokens_details")
    searches = calls = 0
    for item in output or ():
        kind = _get(item, "type")
        if kind == "web_search_call":
            searches += 1
        elif kind == "function_call":
            calls += 1
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=_int(idet, "cached_tokens"),
        cache_write_tokens=_int(idet, "cache_write_tokens"),
        reasoning_tokens=_int(_get(u, "output_tokens_details"), "reasoning_tokens"),
        tool_calls=calls,
        web_search_calls=searches,
    )


def _function_calls(output: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_get(item, "name"), args_fingerprint(_get(item, "arguments") or ""))
        for item in output or () if _get(item, "type") == "function_call"
    )


_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesMeter(Meter):
    __slots__ = ("calls",)

    def __init__(self, hide_usage: bool = False) -> None:
        super().__init__(hide_usage)
        self.calls: tuple[tuple[str, str], ...] | None = None

    def feed(self, event: Any) -> bool:
        kind = event.type
        if kind.endswith(".delta"):
            delta = getattr(event, "delta", None)
            if isinstance(delta, str):
                self.add_text(delta)
                if kind == "response.function_call_arguments.delta":
                    self.add_tool(event.item_id, None, delta)
        elif kind == "response.output_item.added":
            item = event.item
            if _get(item, "type") == "function_call":
                self.add_tool(_get(item, "id"), _get(item, "name"), None)
        elif kind in _FINAL_EVENTS:
            response = event.response
            usage = getattr(response, "usage", None)
            if usage is not None:
                self.usage = responses_usage(usage, response.output)
            self.calls = _function_calls(response.output)
        return True

    def tool_calls(self) -> tuple[tuple[str, str], ...]:
        return self.calls if self.calls is not None else super().tool_calls()


class ResponsesAdapter(Adapter):
    """``responses.create`` / ``.parse`` (``.stream`` goes through ``create``).

    With ``previous_response_id`` or ``conversation`` the earlier turns live on
    OpenAI's side: the input bound covers only what this request sends.
    """

    provider = "openai"
    operation = "responses"
    name = "OpenAI responses"
    _caps = ("max_output_tokens",)

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = kwargs.get("model")
        if not isinstance(model, str):
            return None
        inp = value(kwargs, "input")
        messages = [inp] if isinstance(inp, str) else inp
        if messages is not None and not isinstance(messages, (list, tuple)):
            return None
        tools = value(kwargs, "tools")
        bound, fp, n = estimate(model, messages, system=value(kwargs, "instructions"), tools=tools, strict=strict)
        _, cap = cap_value(kwargs, self._caps)
        return Call(
            model, "openai", input_tokens=bound, max_output_tokens=cap, fingerprint=fp,
            tools=tool_names(tools), operation="responses", stream=value(kwargs, "stream") is True, messages=n,
            trimmed_input=trimmed(model, messages, "openai-responses", system=value(kwargs, "instructions"),
                                  tools=tools, strict=strict) if isinstance(messages, (list, tuple)) else None,
        )

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        if patch.max_output_tokens is not None:
            cap = value(kw, "max_output_tokens")
            kw["max_output_tokens"] = patch.max_output_tokens if cap is None else min(cap, patch.max_output_tokens)
        if patch.reasoning_effort is not None:
            reasoning = value(kw, "reasoning")
            current = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
            if current is not None or _reasoning_model(kw["model"]):
                kw["reasoning"] = {**(reasoning or {}), "effort": lower_effort(current, patch.reasoning_effort)}
        if patch.keep_last_messages is not None and isinstance(value(kw, "input"), (list, tuple)):
            kw["input"] = trim_messages(kw["input"], patch.keep_last_messages, style="openai-responses")
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def usage(self, response: Any) -> Usage:
        return responses_usage(response.usage, response.output)

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return _function_calls(response.output)

    def meter(self, hide_usage: bool) -> Meter:
        return ResponsesMeter(hide_usage)
