"""Anthropic request shape: Messages (``messages`` and ``beta.messages``).

Usage conventions: Anthropic's ``input_tokens`` *excludes*
cache reads and writes, so they are added back to get breaker's total input;
``cache_creation.ephemeral_1h_input_tokens`` are the 1-hour cache writes;
``server_tool_use.web_search_requests`` are billed per search. In streams,
``message_start`` carries the input usage and ``message_delta.usage`` is
**cumulative** (each one replaces the last, never adds to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..adapter import Call, Patch, usage_error
from ..estimate import ESTIMATOR, args_fingerprint
from ..usage import Usage
from .attempt import Adapter
from ._shapes import SENTINELS, count as _int, field as _get, tool_names, value
from .streams import Meter
from .effort import thinking_budget_for
from .trim import trim_messages, trimmed_bound


__all__ = ["MessagesAdapter"]


_bounds = ESTIMATOR.bounds  # the hot-path choices are explained in providers/openai.py
_learn = ESTIMATOR.learn


def messages_usage(u: Any, tool_calls: int = 0) -> Usage:
    # Hot path (every call): an SDK usage object read with plain attribute
    # access (see chat_usage in providers/openai.py). A dict (usage merged
    # from stream events or parsed from JSON), None, an object without these
    # fields or a count that is not a non-negative int takes _messages_usage,
    # the reference reading with the clear errors.
    try:
        fresh = u.input_tokens
        output = u.output_tokens
        read = u.cache_read_input_tokens
        write = u.cache_creation_input_tokens
        creation = u.cache_creation
        tools = u.server_tool_use
        write_1h = None if creation is None else creation.ephemeral_1h_input_tokens
        searches = None if tools is None else tools.web_search_requests
    except AttributeError:
        return _messages_usage(u, tool_calls)
    if read is None:
        read = 0
    if write is None:
        write = 0
    if (
        output is None or type(fresh) is not int or fresh < 0
        or type(read) is not int or read < 0 or type(write) is not int or write < 0
    ):
        return _messages_usage(u, tool_calls)
    if write_1h is None:
        write_1h = 0
    elif type(write_1h) is int and write_1h > write:
        write_1h = write
    return Usage(  # Anthropic leaves cache reads and writes out of input_tokens
        fresh + read + write, output, read, write, 0, 1, tool_calls, 0 if searches is None else searches, write_1h,
    )


def _messages_usage(u: Any, tool_calls: int) -> Usage:
    """``messages_usage`` of any usage value: SDK object or plain dict, with the errors for bad counts."""
    if u is None:
        raise usage_error("An Anthropic message came back without `usage`", "nothing to price it from")
    fresh = _get(u, "input_tokens")
    output = _get(u, "output_tokens")
    if fresh is None or output is None:
        raise usage_error("Anthropic usage lacks input_tokens/output_tokens", f"got {u!r}")
    read = _int(u, "cache_read_input_tokens")
    write = _int(u, "cache_creation_input_tokens")
    if not all(type(x) is int and x >= 0 for x in (fresh, read, write)):
        raise usage_error("Anthropic usage has a token count that is not a non-negative integer", f"got {u!r}")
    creation = _get(u, "cache_creation")
    write_1h = _int(creation, "ephemeral_1h_input_tokens")
    return Usage(
        input_tokens=fresh + read + write,  # Anthropic leaves cache reads and writes out of input_tokens
        output_tokens=output,
        cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write) if type(write_1h) is int else write_1h,
        web_search_calls=_int(_get(u, "server_tool_use"), "web_search_requests"),
        tool_calls=tool_calls,
    )


class MessagesMeter(Meter):
    __slots__ = ("start", "last", "blocks")

    def __init__(self, hide_usage: bool = False) -> None:
        super().__init__(hide_usage)
        self.start: Any = None  # message_start usage
        self.last: Any = None  # the latest (cumulative) message_delta usage
        self.blocks: dict[int, str] = {}

    def feed(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            dtype = delta.type
            if dtype == "text_delta":
                self.add_text(delta.text)
            elif dtype == "input_json_delta":
                self.add_text(delta.partial_json)
                self.add_tool(event.index, None, delta.partial_json)
            elif dtype == "thinking_delta":
                self.add_text(delta.thinking)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.add_tool(event.index, block.name, None)
        elif kind == "message_start":
            self.start = event.message.usage
            self.served = served(self.start)
            self.input_usage = messages_usage(self.start).replace(output_tokens=0, web_search_calls=0)
            self.reported_output = _int(self.start, "output_tokens")
        elif kind == "message_delta":
            usage = event.usage
            if usage is not None:
                self.last = usage  # cumulative: replace, never add
                self.reported_output = _int(usage, "output_tokens")
                self.usage = self._final()
        return True

    def _final(self) -> Usage:
        """Start usage overlaid with the latest cumulative delta (fields the delta leaves out stay)."""
        merged: dict[str, Any] = {}
        for source in (self.start, self.last):
            if source is None:
                continue
            items = source.items() if isinstance(source, Mapping) else source.__dict__.items()
            for k, v in items:
                if v is not None:
                    merged[k] = v
        return _messages_usage(merged, len(self._tools))  # a dict: straight to the reference reading


_FAST = (("speed", "fast"),)


def served(usage: Any) -> tuple[tuple[str, str], ...] | None:
    """The price variant an Anthropic usage says it was billed at: ``speed="fast"`` (fast mode),
    ``service_tier="batch"`` (Message Batches); ``None`` for the standard price."""
    if usage is None:
        return None
    context = []
    if getattr(usage, "speed", None) == "fast":
        context.append(("speed", "fast"))
    if getattr(usage, "service_tier", None) == "batch":
        context.append(("processing", "batch"))
    return tuple(context) or None


class MessagesAdapter(Adapter):
    """``messages.create`` / ``.parse`` / ``.stream`` and their ``beta.messages`` twins."""

    provider = "anthropic"
    operation = "chat"
    name = "Anthropic messages"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = kwargs.get("model")
        messages = kwargs.get("messages")
        if not isinstance(model, str) or not isinstance(messages, (list, tuple)):
            return None
        # value(kwargs, ...) inline, as in the OpenAI adapters:
        tools = kwargs.get("tools")
        if tools is not None and tools.__class__ in SENTINELS:
            tools = None
        system = kwargs.get("system")
        if system is not None and system.__class__ in SENTINELS:
            system = None
        cap = kwargs.get("max_tokens")
        if cap is not None and cap.__class__ in SENTINELS:
            cap = None
        bound, by_bytes, fp, n, _ = _bounds(model, messages, system=system, tools=tools, strict=strict)

        def trimmed_input(keep: int) -> int:  # Call.trimmed_input: a closure, not a partial (see trim.py)
            return trimmed_bound(model, messages, "anthropic", system, tools, strict, keep)

        return Call(
            model, self.provider, bound, cap, fp, tool_names(tools) if tools else (), "chat",
            kwargs.get("stream") is True, n, {}, trimmed_input, by_bytes, _learn,
            _FAST if kwargs.get("speed") == "fast" else None, self.strict_provider,
        )

    def served(self, response: Any) -> tuple[tuple[str, str], ...] | None:
        return served(getattr(response, "usage", None))

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        if patch.max_output_tokens is not None:
            cap = value(kw, "max_tokens")
            kw["max_tokens"] = patch.max_output_tokens if cap is None else min(cap, patch.max_output_tokens)
        thinking = value(kw, "thinking")
        if isinstance(thinking, Mapping) and thinking.get("type") == "enabled" and thinking.get("budget_tokens"):
            budget = thinking["budget_tokens"]
            effort = patch.reasoning_effort or "high"
            # Degrade scales the budget down; a lowered max_tokens must stay above it (the API requires it).
            new = thinking_budget_for(effort, budget, max_tokens=value(kw, "max_tokens"))
            if new is None:
                kw["thinking"] = {"type": "disabled"}
            elif new != budget:
                kw["thinking"] = {**thinking, "budget_tokens": new}
        if patch.keep_last_messages is not None:
            kw["messages"] = trim_messages(kw["messages"], patch.keep_last_messages, style="anthropic")
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def usage(self, response: Any) -> Usage:
        calls = 0
        for b in response.content or ():  # a loop, not sum() over a generator: runs on every call
            if _get(b, "type") == "tool_use":
                calls += 1
        return messages_usage(response.usage, calls)

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return tuple(
            (_get(b, "name"), args_fingerprint(_get(b, "input")))
            for b in response.content or () if _get(b, "type") == "tool_use"
        )

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        """``usage`` and ``tool_calls`` in one pass over the content blocks."""
        calls: list[tuple[str, str]] | None = None
        for b in response.content or ():
            if _get(b, "type") == "tool_use":
                if calls is None:
                    calls = []
                calls.append((_get(b, "name"), args_fingerprint(_get(b, "input"))))
        if calls:
            return messages_usage(response.usage, len(calls)), tuple(calls)
        return messages_usage(response.usage, 0), ()

    def meter(self, hide_usage: bool) -> Meter:
        return MessagesMeter(hide_usage)
