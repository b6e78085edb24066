"""The Gemini REST wire format FakeLLM speaks (``google-genai`` pointed at it).

Routes: ``POST /{version}/models/{model}:generateContent`` answers JSON,
``:streamGenerateContent?alt=sse`` answers server-sent events (``data: {...}``
chunks, no event names, no ``[DONE]``), ``:countTokens`` answers
``{"totalTokens": n}``. The model is named in the path, not in the body.

Usage is stated the way the Gemini API states it, from a ``Rendered`` reply
(which follows breaker's convention): ``promptTokenCount`` includes the cached
tokens (``cachedContentTokenCount``); ``candidatesTokenCount`` is the visible
answer only and ``thoughtsTokenCount`` the thinking, the two together being the
reply's ``output_tokens``; counts that are zero are left out, as the API's
proto3 JSON leaves them out. In a stream every chunk carries ``usageMetadata``
with the prompt count and the answer so far (cumulative, never an increment),
and the last chunk, with ``finishReason``, carries the final figures. Gemini has
no per-request cache writes (explicit caches are created and billed apart), so
``Reply.cache_write_tokens`` has no field here; ``Reply.raw_usage`` is sent
verbatim as ``usageMetadata`` (on the last chunk of a stream), which is how a
test states modality breakdowns (``promptTokensDetails``) or tool-use prompt tokens.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from .reply import Rendered

__all__ = ["count_body", "error_body", "json_body", "stream_events"]

_ids = itertools.count(1)
Event = tuple[str | None, Any]

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def count_body(tokens: int) -> dict[str, Any]:
    return {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}


def _usage(r: Rendered, visible: int | None = None, final: bool = True) -> Any:
    """``usageMetadata``: the final figures, or (``final=False``) those of the answer so far."""
    if r.reply.raw_usage is not None:
        return r.reply.raw_usage if final else None
    shown = r.output_tokens - r.reasoning_tokens if visible is None else visible
    u: dict[str, Any] = {
        "promptTokenCount": r.input_tokens,
        "totalTokenCount": r.input_tokens + shown + r.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": r.input_tokens}],
    }
    if shown:
        u["candidatesTokenCount"] = shown
    if r.reasoning_tokens:
        u["thoughtsTokenCount"] = r.reasoning_tokens
    if r.cached_tokens:
        u["cachedContentTokenCount"] = r.cached_tokens
        u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": r.cached_tokens}]
    return u


def _wants_thoughts(body: Mapping[str, Any]) -> bool:
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    return bool(thinking.get("includeThoughts") or thinking.get("include_thoughts"))  # the SDK sends either


def _grounding(r: Rendered) -> dict[str, Any] | None:
    if not r.web_search_calls:
        return None
    return {"webSearchQueries": [f"fake query {i}" for i in range(r.web_search_calls)],
            "groundingChunks": [{"web": {"uri": "https://example.invalid/", "title": "fake"}}]}


def _finish(r: Rendered) -> str:
    return "MAX_TOKENS" if r.truncated else "STOP"


def _calls(r: Rendered) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": name, "args": json.loads(args)}} for _, name, args in r.tool_calls]


def _candidate(parts: list[dict[str, Any]], r: Rendered, final: bool) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        cand["finishReason"] = _finish(r)
        grounding = _grounding(r)
        if grounding is not None:
            cand["groundingMetadata"] = grounding
    return cand


def _response(cand: dict[str, Any], usage: Any, model: str, rid: str) -> dict[str, Any]:
    data: dict[str, Any] = {"candidates": [cand], "modelVersion": model, "responseId": rid}
    if usage is not None:
        data["usageMetadata"] = usage
    return data


def json_body(r: Rendered, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if r.reasoning_tokens and _wants_thoughts(body):
        parts.append({"text": "(fake thinking)", "thought": True})
    if r.pieces or not r.tool_calls:
        parts.append({"text": r.text})
    parts += _calls(r)
    return _response(_candidate(parts, r, True), _usage(r), model, f"fake-{next(_ids)}")


def stream_events(r: Rendered, model: str, body: Mapping[str, Any]) -> list[Event]:
    """One chunk per piece of text (then one per tool call); the last one finishes with the final usage."""
    rid = f"fake-{next(_ids)}"
    with_usage = r.reply.usage_in_stream
    visible = r.output_tokens - r.reasoning_tokens
    chunks = r.text_chunks()
    steps: list[tuple[list[dict[str, Any]], int]] = []  # (parts, visible tokens so far)
    if r.reasoning_tokens and _wants_thoughts(body):
        steps.append(([{"text": "(fake thinking)", "thought": True}], 0))
    words = 0
    for piece in chunks:
        words += max(1, len(piece.split()))
        steps.append(([{"text": piece}], min(words, visible)))
    for call in _calls(r):
        steps.append(([call], visible))
    if not steps or steps[-1][1] < visible or not (r.pieces or r.tool_calls):
        steps.append(([{"text": ""}], visible))
    events: list[Event] = []
    for i, (parts, so_far) in enumerate(steps):
        final = i == len(steps) - 1
        usage = _usage(r, so_far, final) if with_usage else None
        events.append((None, _response(_candidate(parts, r, final), usage, model, rid)))
    return events
