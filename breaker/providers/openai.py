"""OpenAI request shapes: chat completions and Responses.

Usage conventions: chat ``prompt_tokens`` already includes
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

from ..adapter import Call, Patch, usage_error
from ..estimate import ESTIMATOR, args_fingerprint, measure
from ..usage import Usage
from .attempt import Adapter
from ._shapes import SENTINELS, cap_value, field as _get, count as _int, tool_names, value
from .streams import Meter
from .effort import lower_effort
from .trim import trim_messages, trimmed_bound


__all__ = ["ChatAdapter", "ResponsesAdapter"]

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex")


def _reasoning_model(model: str) -> bool:
    """Only reasoning models accept ``reasoning_effort``; others answer 400 to it."""
    return model.startswith(_REASONING_PREFIXES)


# Hot path (every call): the adapters call the process-wide estimator's method
# directly (one call layer less than ``breaker.estimate.estimate``), build
# ``Call`` positionally (keyword arguments to a class make CPython build and
# unpack a dict: about half of the construction cost; tests/providers/test_hot_paths.py
# pins the field order), and read kwargs and usage inline rather than through
# ``value()`` / ``field()`` / ``count()`` (a call layer each).
_bounds = ESTIMATOR.bounds
_learn = ESTIMATOR.learn


# Request parameters besides the content that make two requests different ones (a new turn of a
# stored conversation, another forced tool): folded into the fingerprint, so that loop detection
# does not count them as the same request sent again.
_CHAT_DISTINCT = ("tool_choice", "response_format")
_RESPONSES_DISTINCT = ("previous_response_id", "conversation", "tool_choice", "text")


def _distinct(kwargs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """A hashable summary of those of ``keys`` the request gives, or ``None`` (the usual case)."""
    found = None
    for key in keys:
        v = kwargs.get(key)
        if v is not None and v.__class__ not in SENTINELS:
            if found is None:
                found = []
            found.append((key, v if isinstance(v, str) else hash(measure(v)[2])))
    return None if found is None else tuple(found)


# ------------------------------------------------------------------ chat completions
def chat_usage(u: Any, tool_calls: int = 0) -> Usage:
    # Hot path (every call): an SDK usage object read with plain attribute
    # access, which the interpreter specializes, instead of field()/count()
    # (two call layers per count). The try costs nothing unless it raises:
    # a dict (usage parsed from JSON), None, or an object without these
    # fields takes _chat_usage, the reference reading with the clear errors.
    try:
        usage = _openai_counts(
            u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details, u.completion_tokens_details, tool_calls, 0
        )
    except AttributeError:
        usage = None
    return _chat_usage(u, tool_calls) if usage is None else usage


def _openai_counts(inp: Any, out: Any, idet: Any, odet: Any, calls: int, searches: int) -> Usage | None:
    """A ``Usage`` from the four parts both OpenAI usage shapes have (chat and Responses name them
    differently); ``None`` when a total is missing, for the caller's reference reading to explain."""
    if inp is None or out is None:
        return None
    read: Any
    write: Any
    if idet is None:
        read = write = 0
    else:
        read = idet.cached_tokens
        write = getattr(idet, "cache_write_tokens", None)  # not in every SDK version, nor in all servers' usage
    reasoning = 0 if odet is None else odet.reasoning_tokens
    # Audio tokens (gpt-audio, gpt-realtime) are billed at their own, higher rates.
    audio_in = None if idet is None else getattr(idet, "audio_tokens", None)
    audio_out = None if odet is None else getattr(odet, "audio_tokens", None)
    if audio_in or audio_out:
        return Usage(
            inp, out, 0 if read is None else read, 0 if write is None else write,
            0 if reasoning is None else reasoning, 1, calls, searches,
            input_audio_tokens=audio_in or 0, output_audio_tokens=audio_out or 0,
        )
    return Usage(
        inp, out, 0 if read is None else read, 0 if write is None else write,
        0 if reasoning is None else reasoning, 1, calls, searches,
    )


def service_tier(value: Any) -> tuple[tuple[str, str], ...] | None:
    """A request's or response's ``service_tier`` as a price context: ``"priority"`` and ``"flex"``
    are billed at their own rates; ``"auto"`` (the project's default tier) is priced as the
    standard tier until the response says which tier served it."""
    if value.__class__ is not str or value == "auto" or value == "default":
        return None
    return (("service_tier", value),)


def _served(response: Any) -> tuple[tuple[str, str], ...] | None:
    tier = getattr(response, "service_tier", None)
    return None if tier is None else service_tier(tier)  # most responses name none: no call then


def _chat_usage(u: Any, tool_calls: int) -> Usage:
    """``chat_usage`` for any usage: SDK object or plain dict, with the errors for missing counts."""
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
        tool_calls=tool_calls,
        input_audio_tokens=_int(pd, "audio_tokens"),
        output_audio_tokens=_int(cd, "audio_tokens"),
    )


_BARE_CHUNK = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "choices",
                         "usage", "obfuscation"})


def _bare(chunk: Any) -> bool:
    """Whether a chat stream chunk carries nothing but usage (the chunk ``include_usage`` adds)."""
    fields = getattr(chunk, "model_fields_set", None)
    return fields is not None and fields <= _BARE_CHUNK and not getattr(chunk, "model_extra", None)


class ChatMeter(Meter):
    __slots__ = ()

    def feed(self, chunk: Any) -> bool:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = chat_usage(usage, len(self._tools))
            self.served = _served(chunk)
        choices = chunk.choices
        if not choices:
            # Hide only the bare usage chunk breaker asked for: one that carries anything else
            # (a field the SDK declares, such as moderation, or one a host adds) is the caller's.
            return not (self.hide_usage and usage is not None and _bare(chunk))
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
        # value(kwargs, "tools") or value(kwargs, "functions"), and cap_value(kwargs, self._caps), inline:
        tools = kwargs.get("tools") or kwargs.get("functions")
        if tools is not None and (tools.__class__ in SENTINELS or not tools):
            tools = value(kwargs, "tools") or value(kwargs, "functions")  # a sentinel or an empty value: the exact rule
        extra = _distinct(kwargs, _CHAT_DISTINCT) if "tool_choice" in kwargs or "response_format" in kwargs else None
        bound, by_bytes, fp, n, media = _bounds(model, messages, tools=tools, strict=strict, extra=extra)

        def trimmed_input(keep: int) -> int:  # Call.trimmed_input: a closure, not a partial (see trim.py)
            return trimmed_bound(model, messages, "openai", None, tools, strict, keep)

        cap = kwargs.get("max_completion_tokens")
        if cap is None or cap.__class__ in SENTINELS:
            cap = kwargs.get("max_tokens")
            if cap is not None and cap.__class__ in SENTINELS:
                cap = None
        if cap is not None:
            choices = kwargs.get("n")
            if choices is not None and choices.__class__ not in SENTINELS and choices:
                cap = cap * choices
        tier = kwargs.get("service_tier")
        return Call(
            model, self.provider, bound, cap, fp, tool_names(tools) if tools else (), "chat",
            kwargs.get("stream") is True, n, {}, trimmed_input, by_bytes, _learn,
            None if tier is None else service_tier(tier), self.strict_provider,
            None, not media,  # text_only: no image, file or audio part (gpt-audio bills audio at 12.8x text)
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
        usage = response.usage
        if usage is None:
            return _chat_usage(None, 0), ()  # raises the clear UsageError before anything else is read
        calls: list[tuple[str, str]] | None = None
        for choice in response.choices:
            message = choice.message
            if message is not None:
                tool_calls = message.tool_calls
                if tool_calls:
                    for tc in tool_calls:
                        fn = getattr(tc, "function", None)
                        if fn is not None:
                            if calls is None:
                                calls = []
                            calls.append((fn.name, args_fingerprint(fn.arguments)))
        if calls:
            return chat_usage(usage, len(calls)), tuple(calls)  # one Usage, not one and a replace()
        return chat_usage(usage), ()

    def meter(self, hide_usage: bool) -> Meter:
        return ChatMeter(hide_usage)

    def finished_early(self, exc: BaseException) -> Any:
        return getattr(exc, "completion", None)  # LengthFinishReasonError, ContentFilterFinishReasonError

    served = staticmethod(_served)


# ------------------------------------------------------------------ Responses
def responses_usage(u: Any, output: Any) -> Usage:
    if u is None:
        return _responses_usage(None, 0, 0)  # raises the clear UsageError before the output is read
    searches = calls = files = 0
    for item in output or ():
        kind = getattr(item, "type", None)  # _get(item, "type"), inline: runs per output item
        if kind is None and isinstance(item, dict):
            kind = item.get("type")
        if kind == "web_search_call":
            searches += 1
        elif kind == "function_call":
            calls += 1
        elif kind == "file_search_call":
            files += 1
    usage = _responses_counts(u, calls, searches)
    return usage.replace(file_search_calls=files) if files else usage


def _responses_counts(u: Any, calls: int, searches: int) -> Usage:
    # Plain attribute reads with the reference reading as fallback, as in chat_usage.
    try:
        usage = _openai_counts(
            u.input_tokens, u.output_tokens, u.input_tokens_details, u.output_tokens_details, calls, searches
        )
    except AttributeError:
        usage = None
    return _responses_usage(u, calls, searches) if usage is None else usage


def _responses_usage(u: Any, calls: int, searches: int) -> Usage:
    """The Responses usage of any usage value: SDK object or plain dict, with the errors for missing counts."""
    if u is None:
        raise usage_error("An OpenAI response came back without `usage`", "nothing to price it from")
    inp = _get(u, "input_tokens")
    out = _get(u, "output_tokens")
    if inp is None or out is None:
        raise usage_error("OpenAI Responses usage lacks input_tokens/output_tokens", f"got {u!r}")
    idet = _get(u, "input_tokens_details")
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
            self.served = _served(response)
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
        # value(kwargs, ...) inline, as in ChatAdapter.describe:
        inp = kwargs.get("input")
        if inp is not None and inp.__class__ in SENTINELS:
            inp = None
        messages = [inp] if isinstance(inp, str) else inp
        if messages is not None and not isinstance(messages, (list, tuple)):
            return None
        tools = kwargs.get("tools")
        if tools is not None and tools.__class__ in SENTINELS:
            tools = None
        system = kwargs.get("instructions")
        if system is not None and system.__class__ in SENTINELS:
            system = None
        bound, by_bytes, fp, n, _ = _bounds(model, messages, system=system, tools=tools, strict=strict,
                                         extra=_distinct(kwargs, _RESPONSES_DISTINCT))

        def trimmed_input(keep: int) -> int:  # Call.trimmed_input: a closure, not a partial (see trim.py)
            return trimmed_bound(model, messages or (), "openai-responses", system, tools, strict, keep)

        cap = kwargs.get("max_output_tokens")
        if cap is not None and cap.__class__ in SENTINELS:
            cap = None
        return Call(
            model, self.provider, bound, cap, fp, tool_names(tools) if tools else (), "responses",
            kwargs.get("stream") is True, n, {}, trimmed_input if messages is not None else None, by_bytes, _learn,
            service_tier(kwargs.get("service_tier")), self.strict_provider,
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

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        """``usage`` and ``tool_calls`` in one pass over the output items."""
        u = response.usage
        if u is None:
            return _responses_usage(None, 0, 0), ()  # raises the clear UsageError before the output is read
        searches = 0
        calls: list[tuple[str, str]] | None = None
        for item in response.output or ():
            kind = getattr(item, "type", None)
            if kind is None and isinstance(item, dict):
                kind = item.get("type")
            if kind == "web_search_call":
                searches += 1
            elif kind == "function_call":
                if calls is None:
                    calls = []
                calls.append((_get(item, "name"), args_fingerprint(_get(item, "arguments") or "")))
        if calls:
            return _responses_counts(u, len(calls), searches), tuple(calls)
        return _responses_counts(u, 0, searches), ()

    served = staticmethod(_served)

    def meter(self, hide_usage: bool) -> Meter:
        return ResponsesMeter(hide_usage)
