"""Anthropic request shape: Messages (``messages`` and ``beta.messages``).

Usage conventions (see FACTS.md): Anthropic's ``input_tokens`` *excludes*
cache reads and writes, so they are added back to get breaker's total input;
``cache_creation.ephemeral_1h_input_tokens`` are the 1-hour cache writes;
``server_tool_use.web_search_requests`` are billed per search. In streams,
``message_start`` carries the input usage and ``message_delta.usage`` is
**cumulative** (each one replaces the last, never adds to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..call import Call, Patch
from ..degrade import thinking_budget_for, trim_messages
from ..estimate import estimate, trimmed
from ..usage import Usage
from ._pipeline import Adapter, usage_error
from ._shapes import count as _int, field as _get, tool_names, value
from ._streams import Meter
from ._tools import args_fingerprint


__all__ = ["MessagesAdapter"]


def messages_usage(u: Any, tool_calls: int = 0) -> Usage:
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
        return messages_usage(merged, tool_calls=len(self._tools))


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
        tools = value(kwargs, "tools")
        bound, fp, n = estimate(model, messages, system=value(kwargs, "system"), tools=tools, strict=strict)
        return Call(
            model, "anthropic", input_tokens=bound, max_output_tokens=value(kwargs, "max_tokens"),
            fingerprint=fp, tools=tool_names(tools), operation="chat",
            stream=value(kwargs, "stream") is True, messages=n,
            trimmed_input=trimmed(model, messages, "anthropic", system=value(kwargs, "system"), tools=tools,
                                  strict=strict),
        )

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
        calls = sum(1 for b in response.content or () if _get(b, "type") == "tool_use")
        return messages_usage(response.usage, tool_calls=calls)

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return tuple(
            (_get(b, "name"), args_fingerprint(_get(b, "input")))
            for b in response.content or () if _get(b, "type") == "tool_use"
        )

    def meter(self, hide_usage: bool) -> Meter:
        return MessagesMeter(hide_usage)
