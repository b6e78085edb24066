"""The wire formats FakeLLM speaks, as plain functions over a ``Rendered`` reply.

Each API has a JSON body and a list of server-sent events. Events are
``(event_name | None, data)`` pairs; ``data`` is a dict (sent as JSON) or the
literal ``"[DONE]"``. Shapes follow what the official SDKs parse: OpenAI chat
completions, OpenAI Responses and Anthropic Messages here; Gemini's REST format
in ``gemini_wire``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from . import gemini_wire
from .reply import Rendered

__all__ = ["error_body", "json_body", "stream_events"]

_ids = itertools.count(1)
Event = tuple[str | None, Any]


def json_body(api: str, r: Rendered, model: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    if api == "gemini":  # Gemini's answer depends on the request (thought parts): gemini_wire
        return gemini_wire.json_body(r, model, body or {})
    return _JSON[api](r, model)


def stream_events(api: str, r: Rendered, model: str, body: dict[str, Any]) -> list[Event]:
    return _EVENTS[api](r, model, body)


def error_body(api: str, status: int, message: str) -> dict[str, Any]:
    if api in ("gemini", "gemini_count_tokens"):
        return gemini_wire.error_body(status, message)
    if api == "messages":
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


# ---------------------------------------------------------------- OpenAI chat completions
def _chat_usage(r: Rendered) -> Any:
    if r.reply.raw_usage is not None:
        return r.reply.raw_usage
    return {
        "prompt_tokens": r.input_tokens,
        "completion_tokens": r.output_tokens,
        "total_tokens": r.input_tokens + r.output_tokens,
        "prompt_tokens_details": {"cached_tokens": r.cached_tokens, "cache_write_tokens": r.cache_write_tokens,
                                  "audio_tokens": r.reply.audio_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": r.reasoning_tokens, "audio_tokens": r.reply.audio_output_tokens,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _chat_finish(r: Rendered) -> str:
    return "length" if r.truncated else ("tool_calls" if r.tool_calls else "stop")


def _chat_json(r: Rendered, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text if r.pieces or not r.tool_calls else None,
                               "refusal": None}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in r.tool_calls
        ]
    return {
        "id": f"chatcmpl-fake{next(_ids)}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _chat_finish(r), "logprobs": None}],
        "usage": _chat_usage(r), "system_fingerprint": "fp_fake", "service_tier": r.service_tier,
    }


def _chat_events(r: Rendered, model: str, body: dict[str, Any]) -> list[Event]:
    cid, created = f"chatcmpl-fake{next(_ids)}", int(time.time())
    usage_wanted = bool((body.get("stream_options") or {}).get("include_usage")) and r.reply.usage_in_stream

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
        data: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                "service_tier": r.service_tier,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if usage_wanted:
            data["usage"] = None
        return (None, data)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in r.text_chunks()]
    for i, (tid, name, args) in enumerate(r.tool_calls):
        events.append(chunk({"tool_calls": [{"index": i, "id": tid, "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args}}]}))
    events.append(chunk({}, _chat_finish(r)))
    if usage_wanted:
        events.append((None, {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                              "service_tier": r.service_tier, "choices": [], "usage": _chat_usage(r),
                              **(r.reply.usage_chunk_extra or {})}))
    events.append((None, "[DONE]"))
    return events


# ---------------------------------------------------------------- OpenAI Responses
def _resp_usage(r: Rendered) -> Any:
    if r.reply.raw_usage is not None:
        return r.reply.raw_usage
    return {
        "input_tokens": r.input_tokens,
        "input_tokens_details": {"cached_tokens": r.cached_tokens},
        "output_tokens": r.output_tokens,
        "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
        "total_tokens": r.input_tokens + r.output_tokens,
    }


def _resp_items(r: Rendered, done: bool) -> list[dict[str, Any]]:
    status = "completed" if done else "in_progress"
    items: list[dict[str, Any]] = [
        {"type": "web_search_call", "id": f"ws_{i}", "status": "completed",
         "action": {"type": "search", "query": "fake"}}
        for i in range(r.web_search_calls)
    ]
    if r.pieces or not r.tool_calls:
        items.append({"type": "message", "id": "msg_fake", "status": status, "role": "assistant",
                      "content": [{"type": "output_text", "text": r.text if done else "", "annotations": [],
                                   "logprobs": []}] if done else []})
    for cid, name, args in r.tool_calls:
        items.append({"type": "function_call", "id": f"fc_{cid}", "call_id": cid, "name": name,
                      "arguments": args if done else "", "status": status})
    return items


def _resp_object(r: Rendered, model: str, rid: str, done: bool) -> dict[str, Any]:
    status = ("incomplete" if r.truncated else "completed") if done else "in_progress"
    return {
        "id": rid, "object": "response", "created_at": int(time.time()), "model": model, "status": status,
        "output": _resp_items(r, True) if done else [],
        "usage": _resp_usage(r) if done else None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and r.truncated else None,
        "error": None, "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0,
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "text": {"format": {"type": "text"}},
        "service_tier": r.service_tier,
    }


def _resp_json(r: Rendered, model: str) -> dict[str, Any]:
    return _resp_object(r, model, f"resp_fake{next(_ids)}", True)


def _resp_events(r: Rendered, model: str, body: dict[str, Any]) -> list[Event]:
    rid = f"resp_fake{next(_ids)}"
    seq = itertools.count()
    events: list[Event] = []

    def emit(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

    emit("response.created", response=_resp_object(r, model, rid, False))
    emit("response.in_progress", response=_resp_object(r, model, rid, False))
    final = _resp_items(r, True)
    for index, (start, item) in enumerate(zip(_resp_items(r, False), final)):
        emit("response.output_item.added", output_index=index, item=start)
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part)
            for piece in r.text_chunks():
                emit("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                     delta=piece, logprobs=[])
            emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                 text=r.text, logprobs=[])
            emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                 part=item["content"][0])
        elif item["type"] == "function_call":
            emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                 delta=item["arguments"])
            emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                 arguments=item["arguments"], name=item["name"])
        emit("response.output_item.done", output_index=index, item=item)
    done = _resp_object(r, model, rid, True)
    if not r.reply.usage_in_stream:
        done["usage"] = None
    emit("response.incomplete" if r.truncated else "response.completed", response=done)
    return events


# ---------------------------------------------------------------- Anthropic Messages
def _msg_usage(r: Rendered) -> Any:
    if r.reply.raw_usage is not None:
        return r.reply.raw_usage
    w1h = r.cache_write_1h_tokens
    return {
        # Anthropic's input_tokens leaves cache reads and writes out.
        "input_tokens": r.input_tokens - r.cached_tokens - r.cache_write_tokens,
        "output_tokens": r.output_tokens,
        "cache_read_input_tokens": r.cached_tokens,
        "cache_creation_input_tokens": r.cache_write_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": r.cache_write_tokens - w1h, "ephemeral_1h_input_tokens": w1h},
        "server_tool_use": {"web_search_requests": r.web_search_calls, "web_fetch_requests": 0},
        "service_tier": "standard",
        **({"speed": r.speed} if r.speed else {}),
    }


def _msg_stop(r: Rendered) -> str:
    return "max_tokens" if r.truncated else ("tool_use" if r.tool_calls else "end_turn")


def _msg_blocks(r: Rendered) -> list[dict[str, Any]]:
    import json

    blocks: list[dict[str, Any]] = []
    if r.reasoning_tokens:
        blocks.append({"type": "thinking", "thinking": "(fake thinking)", "signature": "fake-signature"})
    if r.pieces or not r.tool_calls:
        blocks.append({"type": "text", "text": r.text, "citations": None})
    for cid, name, args in r.tool_calls:
        blocks.append({"type": "tool_use", "id": f"toolu_{cid}", "name": name, "input": json.loads(args)})
    return blocks


def _msg_json(r: Rendered, model: str) -> dict[str, Any]:
    return {"id": f"msg_fake{next(_ids)}", "type": "message", "role": "assistant", "model": model,
            "content": _msg_blocks(r), "stop_reason": _msg_stop(r), "stop_sequence": None, "usage": _msg_usage(r)}


def _msg_events(r: Rendered, model: str, body: dict[str, Any]) -> list[Event]:
    events: list[Event] = []

    def emit(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, **data}))

    usage = _msg_usage(r)
    start_usage = dict(usage, output_tokens=1) if isinstance(usage, dict) else usage
    emit("message_start", message={"id": f"msg_fake{next(_ids)}", "type": "message", "role": "assistant",
                                   "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": start_usage})
    emit("ping")
    for index, block in enumerate(_msg_blocks(r)):
        if block["type"] == "text":
            emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
            for piece in r.text_chunks():
                emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        elif block["type"] == "thinking":
            emit("content_block_start", index=index, content_block={"type": "thinking", "thinking": "", "signature": ""})
            emit("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": block["thinking"]})
            emit("content_block_delta", index=index, delta={"type": "signature_delta", "signature": block["signature"]})
        else:
            import json

            emit("content_block_start", index=index,
                 content_block={"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
            emit("content_block_delta", index=index,
                 delta={"type": "input_json_delta", "partial_json": json.dumps(block["input"])})
        emit("content_block_stop", index=index)
    if r.reply.usage_in_stream:
        # message_delta.usage is cumulative: the final figures, not an increment.
        emit("message_delta", delta={"stop_reason": _msg_stop(r), "stop_sequence": None}, usage=usage)
    emit("message_stop")
    return events


_JSON = {"chat": _chat_json, "responses": _resp_json, "messages": _msg_json}
_EVENTS = {"chat": _chat_events, "responses": _resp_events, "messages": _msg_events,
           "gemini": gemini_wire.stream_events}
