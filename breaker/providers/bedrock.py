"""AWS Bedrock Runtime request shapes: Converse, ConverseStream, and InvokeModel with Anthropic bodies.

How boto3 clients are patched is in ``bedrock_client.py``; this module only
reads requests and responses, which botocore hands over as plain dicts.

**Usage conventions.** Converse's ``usage.inputTokens`` *excludes* cache reads
and writes, as Anthropic's ``input_tokens`` does: AWS's prompt-caching guide
gives the total input as ``inputTokens + cacheReadInputTokens +
cacheWriteInputTokens`` (it is what LiteLLM #15292 and ruby_llm #832 fixed their
readings to), so both are added back to get breaker's total input.
``usage.cacheDetails`` breaks the cache writes down by TTL; the ``"1h"`` ones
are ``cache_write_1h_tokens``. Bedrock reports no separate reasoning count:
``outputTokens`` includes any reasoning. In ``converse_stream`` the usage comes
once, on the final ``metadata`` event; nothing reports the input earlier, so a
stream that ends before it is billed the request's input bound.

**Model ids.** ``modelId`` is priced under genai-prices' ``aws`` provider,
which knows the base ids (``anthropic.claude-3-5-sonnet-20240620-v1:0``) and
the cross-region inference profiles (``us.``, ``eu.``, ``apac.``, ``global.``
…). An ARN of a foundation model or of a system inference profile is priced
by the id it ends with; any other ARN (a provisioned or custom model, an
application inference profile) is looked up as written, so
``Breaker(prices={arn: "anthropic.claude-…"})`` can alias it.

**InvokeModel.** Only Anthropic Messages bodies (JSON with ``anthropic_version``)
are read, for ``invoke_model`` and ``invoke_model_with_response_stream``; the
usage is the body's Anthropic ``usage``, read with the Anthropic adapter's
reader. Any other body passes through unmetered, with a warning once per model:
its JSON is each model vendor's own (use ``converse`` for those models, or
account for them with ``Breaker.record``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from ..adapter import Call, Patch, usage_error
from ..estimate import ESTIMATOR, args_fingerprint
from ..usage import Usage
from .anthropic import MessagesAdapter, MessagesMeter, messages_usage
from .attempt import Adapter
from .effort import thinking_budget_for
from .streams import Meter
from .trim import trim_messages, trimmed_bound

__all__ = [
    "ConverseAdapter", "ConverseMeter", "InvokeAdapter", "InvokeStreamMeter", "Invoked", "converse_usage", "model_name",
]

log = logging.getLogger("breaker")

_bounds = ESTIMATOR.bounds  # the hot-path choices are explained in providers/openai.py
_learn = ESTIMATOR.learn

# ARN resource types whose id is a model id genai-prices may know.
_PRICED_ARNS = ("foundation-model/", "inference-profile/")


def model_name(model_id: str) -> str:
    """The name a Bedrock ``modelId`` is priced by: the id itself, or the id a model's ARN ends with."""
    if not model_id.startswith("arn:"):
        return model_id
    resource = model_id.split(":", 5)[-1]  # arn:partition:bedrock:region:account:resource (ids hold colons)
    for kind in _PRICED_ARNS:
        if resource.startswith(kind):
            return resource[len(kind):]
    return model_id


def converse_usage(u: Any, tool_calls: int = 0) -> Usage:
    """A Converse ``usage`` dict as breaker's ``Usage`` (cache reads and writes added back into input)."""
    if not isinstance(u, Mapping):
        raise usage_error("A Bedrock Converse answer came without `usage`", f"got {type(u).__name__}")
    fresh: Any = u.get("inputTokens")
    output: Any = u.get("outputTokens")
    read: Any = u.get("cacheReadInputTokens") or 0
    write: Any = u.get("cacheWriteInputTokens") or 0
    if (  # inline rather than all(...) over a generator: this runs on every call
        type(fresh) is not int or type(output) is not int or type(read) is not int or type(write) is not int
        or fresh < 0 or output < 0 or read < 0 or write < 0
    ):
        raise usage_error(
            "Bedrock usage lacks inputTokens/outputTokens or has a count that is not a non-negative integer",
            f"got {dict(u)!r}",
        )
    write_1h = 0
    details = u.get("cacheDetails")
    if details:
        for detail in details:
            if isinstance(detail, Mapping) and detail.get("ttl") == "1h" and type(detail.get("inputTokens")) is int:
                write_1h += detail["inputTokens"]
    return Usage(  # Bedrock, like Anthropic, leaves cache reads and writes out of inputTokens
        fresh + read + write, output, read, write, 0, 1, tool_calls, 0, min(write_1h, write),
    )


def _blocks_tool_calls(blocks: Any) -> tuple[tuple[str, str], ...]:
    """``(name, arguments fingerprint)`` of the ``toolUse`` blocks of a Converse message's content."""
    calls = []
    for block in blocks or ():
        tool = block.get("toolUse") if isinstance(block, Mapping) else None
        if tool is not None:
            calls.append((str(tool.get("name") or "tool"), args_fingerprint(tool.get("input"))))
    return tuple(calls)


def _tool_names(tools: Any) -> tuple[str, ...]:
    names = []
    for tool in tools or ():
        spec = tool.get("toolSpec") if isinstance(tool, Mapping) else None
        if spec is not None:
            names.append(str(spec.get("name") or "tool"))
        elif isinstance(tool, Mapping) and "systemTool" in tool:
            names.append(str((tool["systemTool"] or {}).get("name") or "systemTool"))
    return tuple(names)


def _fit_thinking(fields: Any, effort: str | None, max_tokens: Any) -> Any:
    """``additionalModelRequestFields`` with Anthropic's extended-thinking budget degraded and kept
    under a lowered ``maxTokens`` (``thinking_budget_for``), or the same object when nothing changes."""
    thinking = fields.get("thinking") if isinstance(fields, Mapping) else None
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled" or not thinking.get("budget_tokens"):
        return fields
    budget = thinking["budget_tokens"]
    new = thinking_budget_for(effort or "high", budget, max_tokens=max_tokens)
    if new == budget:
        return fields
    return {**fields, "thinking": {"type": "disabled"} if new is None else {**thinking, "budget_tokens": new}}


class ConverseMeter(Meter):
    """``converse_stream`` events (dicts keyed by the event's kind), metered as they arrive."""

    __slots__ = ()

    def feed(self, event: Any) -> bool:
        delta = event.get("contentBlockDelta")
        if delta is not None:
            d = delta.get("delta") or {}
            text = d.get("text")
            if text is not None:
                self.add_text(text)
                return True
            tool = d.get("toolUse")
            if tool is not None:
                arguments = tool.get("input")
                self.add_text(arguments)
                self.add_tool(delta.get("contentBlockIndex"), None, arguments)
                return True
            reasoning = d.get("reasoningContent")
            if reasoning is not None:
                self.add_text(reasoning.get("text"))
                redacted = reasoning.get("redactedContent")
                if redacted:  # encrypted reasoning: bytes, each at most a token
                    self.deltas += 1
                    self.text_bytes += len(redacted)
            return True
        start = event.get("contentBlockStart")
        if start is not None:
            tool = (start.get("start") or {}).get("toolUse")
            if tool is not None:
                self.add_tool(start.get("contentBlockIndex"), tool.get("name"), None)
            return True
        metadata = event.get("metadata")
        if metadata is not None and metadata.get("usage") is not None:
            self.usage = converse_usage(metadata["usage"], len(self._tools))
        return True


class ConverseAdapter(Adapter):
    """``converse`` (``stream=False``) and ``converse_stream`` (``stream=True``) of a ``bedrock-runtime`` client."""

    provider = "aws"
    strict_provider = True  # Bedrock bills at AWS's prices, never at another provider's
    operation = "chat"

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.name = "Bedrock converse_stream" if stream else "Bedrock converse"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model_id = kwargs.get("modelId")
        messages = kwargs.get("messages")
        if type(model_id) is not str:
            return None  # botocore rejects the request before sending it
        if messages is None:
            messages = ()  # a prompt from Bedrock Prompt management: its variables are measured below
        elif not isinstance(messages, (list, tuple)):
            return None
        system = kwargs.get("system")
        variables = kwargs.get("promptVariables")
        if variables is not None:
            system = (system, variables)
        tool_config = kwargs.get("toolConfig")
        tools = tool_config.get("tools") if isinstance(tool_config, Mapping) else None
        inference = kwargs.get("inferenceConfig")
        cap = inference.get("maxTokens") if isinstance(inference, Mapping) else None
        model = model_name(model_id)
        bound, by_bytes, fp, n, _ = _bounds(model, messages, system=system, tools=tools, strict=strict)

        def trimmed_input(keep: int) -> int:  # Call.trimmed_input: a closure, not a partial (see trim.py)
            return trimmed_bound(model, messages, "anthropic", system, tools, strict, keep)  # type: ignore[arg-type]

        return Call(
            model, self.provider, bound, cap, fp, _tool_names(tools) if tools else (), "chat", self.stream, n, {},
            trimmed_input, by_bytes, _learn, None, self.strict_provider,
        )

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["modelId"] = patch.model
        inference = kw.get("inferenceConfig")
        if patch.max_output_tokens is not None:
            inference = dict(inference) if isinstance(inference, Mapping) else {}
            cap = inference.get("maxTokens")
            inference["maxTokens"] = patch.max_output_tokens if cap is None else min(cap, patch.max_output_tokens)
            kw["inferenceConfig"] = inference
        fields = kw.get("additionalModelRequestFields")
        if fields is not None:
            max_tokens = inference.get("maxTokens") if isinstance(inference, Mapping) else None
            kw["additionalModelRequestFields"] = _fit_thinking(fields, patch.reasoning_effort, max_tokens)
        if patch.keep_last_messages is not None and kw.get("messages"):
            # Converse pairs toolUse / toolResult blocks the way Anthropic does (trim.py reads both spellings).
            kw["messages"] = trim_messages(kw["messages"], patch.keep_last_messages, style="anthropic")
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def usage(self, response: Any) -> Usage:
        return self.result(response)[0]

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return self.result(response)[1]

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        message = (response.get("output") or {}).get("message") or {}
        calls = _blocks_tool_calls(message.get("content"))
        return converse_usage(response.get("usage"), len(calls)), calls

    def meter(self, hide_usage: bool) -> Meter:
        return ConverseMeter(hide_usage)


# ------------------------------------------------------------------ InvokeModel, Anthropic bodies
class Invoked:
    """An ``invoke_model`` answer with its body read: what ``InvokeAdapter`` reads usage from.

    ``response`` is botocore's dict, its ``body`` replaced by a ``StreamingBody``
    over the same bytes (so the caller reads it as before); ``data`` those bytes.
    """

    __slots__ = ("response", "data")

    def __init__(self, response: Any, data: bytes) -> None:
        self.response = response
        self.data = data


_warned_models: set[str] = set()
_warned_lock = threading.Lock()


def _unread_body(model_id: str) -> None:
    """Log once per model that its ``invoke_model`` calls are not metered (no text, only the model id)."""
    with _warned_lock:
        if model_id in _warned_models:
            return
        _warned_models.add(model_id)
    log.warning(
        "breaker does not meter invoke_model calls to %s: only Anthropic Messages bodies (JSON bytes or text "
        "with \"anthropic_version\") are read, and this one is not. Use client.converse() for this model, which "
        "breaker meters for every model, or account for these calls with Breaker.record(). (Logged once per model.)",
        model_id,
    )


def anthropic_body(body: Any) -> dict[str, Any] | None:
    """The parsed Anthropic Messages body of an ``invoke_model`` request, else ``None``."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if isinstance(parsed, dict) and "anthropic_version" in parsed and isinstance(parsed.get("messages"), list):
            return parsed
    return None


def _namespace(value: Any) -> Any:
    """A parsed JSON event as attribute-access objects, the way the Anthropic SDK's events read."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_namespace(v) for v in value]
    return value


class InvokeStreamMeter(MessagesMeter):
    """``invoke_model_with_response_stream`` events: ``{"chunk": {"bytes": <an Anthropic stream event>}}``."""

    __slots__ = ()

    def feed(self, event: Any) -> bool:
        chunk = event.get("chunk") if isinstance(event, Mapping) else None
        if chunk is None or not chunk.get("bytes"):
            return True
        return super().feed(_namespace(json.loads(chunk["bytes"])))


class InvokeAdapter(Adapter):
    """``invoke_model`` / ``invoke_model_with_response_stream`` with an Anthropic Messages body.

    The body is read with the Anthropic adapter (the same bound and fingerprint a
    ``messages.create`` of it gets), priced under ``aws``.
    """

    provider = "aws"
    strict_provider = True
    operation = "chat"

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.name = "Bedrock invoke_model_with_response_stream" if stream else "Bedrock invoke_model"
        self.messages = MessagesAdapter()

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model_id = kwargs.get("modelId")
        if type(model_id) is not str:
            return None
        body = anthropic_body(kwargs.get("body"))
        if body is None:
            _unread_body(model_id)
            return None
        call = self.messages.describe({**body, "model": model_name(model_id), "stream": self.stream}, strict)
        if call is not None:
            call.provider = self.provider
            call.strict_provider = self.strict_provider
        return call

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        body = anthropic_body(kw.get("body"))
        if body is not None:
            inner = Patch(None, patch.max_output_tokens, patch.reasoning_effort, patch.keep_last_messages)
            patched = self.messages.apply(body, inner, call)
            text = json.dumps(patched)
            kw["body"] = text if isinstance(kw["body"], str) else text.encode()
        if patch.model is not None:
            kw["modelId"] = patch.model
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def usage(self, response: Any) -> Usage:
        return self.result(response)[0]

    def tool_calls(self, response: Any) -> tuple[tuple[str, str], ...]:
        return self.result(response)[1]

    def result(self, response: Any) -> tuple[Usage, tuple[tuple[str, str], ...]]:
        if not isinstance(response, Invoked):
            raise usage_error(f"A {self.name} answer", "its body was not read")
        message = json.loads(response.data)
        if not isinstance(message, dict):
            raise usage_error(f"A {self.name} answer", f"the body is a JSON {type(message).__name__}")
        calls = tuple(
            (str(b.get("name")), args_fingerprint(b.get("input")))
            for b in message.get("content") or () if isinstance(b, Mapping) and b.get("type") == "tool_use"
        )
        return messages_usage(message.get("usage"), len(calls)), calls

    def meter(self, hide_usage: bool) -> Meter:
        return InvokeStreamMeter(hide_usage)
