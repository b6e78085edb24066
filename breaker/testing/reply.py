"""What FakeLLM answers: one ``Reply`` per request, and what it received.

A ``Reply`` states usage the way ``breaker.Usage`` does (``input_tokens``
*includes* cache reads and writes, ``output_tokens`` *includes* reasoning);
the wire module translates to each provider's own convention, so a test can
build its expected ``Usage`` from the same numbers it gave the fake.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union
from urllib.parse import unquote

__all__ = ["Received", "Reply", "ReplyLike", "Rendered"]

_PIECE = re.compile(r"\S+\s*|\s+")
_GEMINI_MODEL = re.compile(r"/models/([^/:?]+):")  # Gemini names the model in the path


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Args:
        text: the assistant's visible text. Each word is one output token and,
            when streamed, one chunk (unless ``chunks`` says otherwise).
        output_tokens: output tokens to report (default: words + reasoning
            tokens). Never more than the request's ``max_tokens`` /
            ``max_completion_tokens`` / ``max_output_tokens`` (Gemini's
            ``generationConfig.maxOutputTokens``) unless ``ignore_cap``.
        input_tokens: input tokens to report, cache included (default: a
            count from the request, always below breaker's strict bound).
        cached_tokens: input tokens read from the prompt cache.
        cache_write_tokens: input tokens written to the prompt cache.
        cache_write_1h_tokens: the part of those written with a 1-hour TTL (Anthropic).
        reasoning_tokens: hidden reasoning tokens (part of ``output_tokens``).
        tool_calls: ``(name, arguments_dict)`` pairs the model asks for.
        web_search_calls: server-side web searches to report.
        status: an HTTP status other than 200 answers with the provider's error body.
        error: the error message for a non-200 ``status``.
        chunks: split the streamed text into this many content chunks.
        break_after: a stream is cut (connection dropped, no terminating
            chunk) after this many events.
        usage_in_stream: ``False`` leaves usage out of the stream even when
            the request asked for it (what a cut stream looks like to the client).
        raw_usage: sent verbatim as the response's ``usage`` (for malformed-usage tests).
        ignore_cap: answer ``output_tokens`` words even past the request's cap
            (a provider that does not honour ``max_tokens``).
        usage_chunk_extra: more top-level fields on a chat stream's usage chunk, as
            some OpenAI-compatible hosts send (Groq's ``x_groq``, search citations).
        audio_input_tokens: the part of the input that was audio (OpenAI
            ``prompt_tokens_details.audio_tokens``).
        audio_output_tokens: the part of the output that was audio.
        service_tier: the tier the answer says served it (OpenAI ``service_tier``);
            default: the request's own, ``"default"`` when it asked for none or ``"auto"``.
    """

    text: str = "Hello from FakeLLM."
    output_tokens: int | None = None
    input_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()
    web_search_calls: int = 0
    status: int = 200
    error: str = "FakeLLM scripted failure"
    chunks: int | None = None
    break_after: int | None = None
    usage_in_stream: bool = True
    raw_usage: Any = None
    ignore_cap: bool = False
    usage_chunk_extra: Mapping[str, Any] | None = None
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    service_tier: str | None = None


ReplyLike = Union[Reply, Callable[["Received"], Reply]]


@dataclass
class Received:
    """A request FakeLLM received (kept in memory for assertions, never sent anywhere).

    ``body`` is the parsed JSON body; credentials headers are not kept.
    """

    api: str  # "chat", "responses", "messages", "gemini", or the Bedrock operation ("converse", ...)
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        found = self.body.get("model")
        if found is None and (named := _GEMINI_MODEL.search(self.path.split("?", 1)[0])) is not None:
            return named.group(1)
        if found is None and self.path.startswith("/model/"):  # Bedrock: /model/{modelId}/converse
            return unquote(self.path.split("/")[2])
        return found

    @property
    def stream(self) -> bool:
        return (bool(self.body.get("stream")) or ":streamGenerateContent" in self.path
                or (self.path.startswith("/model/") and self.path.split("?", 1)[0].endswith("-stream")))

    @property
    def output_cap(self) -> int | None:
        """The output cap the request carried, whichever field it used."""
        body = self.body
        bedrock = body.get("inferenceConfig")  # Bedrock Converse
        if isinstance(bedrock, Mapping) and bedrock.get("maxTokens") is not None:
            return int(bedrock["maxTokens"])
        gemini = body.get("generationConfig")
        if isinstance(gemini, Mapping) and gemini.get("maxOutputTokens") is not None:
            return int(gemini["maxOutputTokens"])
        for name in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
            value = body.get(name)
            if value is not None:
                return int(value)
        return None


@dataclass
class Rendered:
    """A reply resolved against a request: the numbers every wire format needs."""

    pieces: list[str]  # visible text, one output token each
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments JSON)
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    web_search_calls: int
    truncated: bool
    reply: Reply
    service_tier: str = "default"  # what an OpenAI answer says served it
    speed: str | None = None  # Anthropic fast mode, echoed in its usage

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def text_chunks(self) -> list[str]:
        """The visible text split into the reply's chunk count (one word each by default).

        Fewer chunks than words groups whole words; more chunks than words splits by characters.
        """
        n = self.reply.chunks
        pieces = self.pieces
        if not n or not pieces:
            return list(pieces)
        if n >= len(pieces):  # more chunks than words: split the text by characters
            text = self.text
            size = max(1, -(-len(text) // n))
            return [text[i : i + size] for i in range(0, len(text), size)]
        size = -(-len(pieces) // n)
        return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


def render(reply: Reply, received: Received) -> Rendered:
    """Resolve ``reply`` against ``received``: defaults, then the request's output cap."""
    pieces = _PIECE.findall(reply.text)
    tools = [(f"call_{i}", name, json.dumps(dict(args), sort_keys=True)) for i, (name, args) in enumerate(reply.tool_calls)]
    tool_tokens = sum(len(_PIECE.findall(a)) + 1 for _, _, a in tools)
    out = reply.output_tokens
    if out is None:
        out = len(pieces) + reply.reasoning_tokens + tool_tokens
    cap = received.output_cap
    truncated = False
    if cap is not None and out > cap and not reply.ignore_cap:
        out, truncated = cap, True
    reasoning = min(reply.reasoning_tokens, out)
    visible = out - reasoning
    if visible < len(pieces):
        pieces = pieces[:visible]
    if truncated:
        tools = []
    inp = reply.input_tokens if reply.input_tokens is not None else count_input(received.body)
    inp = max(inp, reply.cached_tokens + reply.cache_write_tokens)
    asked = received.body.get("service_tier")
    tier = reply.service_tier or (asked if isinstance(asked, str) and asked != "auto" else "default")
    speed = received.body.get("speed")
    return Rendered(
        pieces, tools, inp, out, reply.cached_tokens, reply.cache_write_tokens, reply.cache_write_1h_tokens,
        reasoning, reply.web_search_calls, truncated, reply, tier, speed if isinstance(speed, str) else None,
    )


def count_input(body: Mapping[str, Any]) -> int:
    """A plausible input-token count: a quarter of the text bytes plus 3 per message.

    Always at most breaker's strict bound (every text byte, plus a larger
    per-message overhead), as a real tokenizer's count is.
    """
    total = 0
    messages = 0
    for key in ("messages", "input", "contents", "system", "instructions", "systemInstruction", "tools", "toolConfig"):
        value = body.get(key)
        if value is None:
            continue
        total += _text_bytes(value)
        if key in ("messages", "input", "contents") and isinstance(value, list):
            messages += len(value)
        elif key == "input":
            messages += 1
    return -(-total // 4) + 3 * messages


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping):
        if value.get("type") in ("image_url", "input_image", "image"):
            return 0
        if "inlineData" in value or "fileData" in value:  # Gemini media: counted apart by the provider
            return 0
        if len(value) == 1 and ("image" in value or "video" in value or "document" in value):  # Bedrock media
            return 0
        return sum(_text_bytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    return 0
