"""The AWS Bedrock Runtime wire format FakeLLM speaks, for boto3's ``bedrock-runtime`` client.

Routes, as botocore's service model names them (``modelId`` URL-encoded in the path):

* ``POST /model/{modelId}/converse``: Converse JSON in, JSON out;
* ``POST /model/{modelId}/converse-stream``: the same request, the answer in
  AWS's event-stream framing (``application/vnd.amazon.eventstream``);
* ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream``: an
  Anthropic Messages body (``anthropic_version``, ``max_tokens``, ``messages``),
  answered with an Anthropic message, or with its stream events as ``chunk``
  events whose ``bytes`` are each event's JSON, as Bedrock sends them.

**The framing.** Each event-stream message is a 12-byte prelude (total length,
headers length, CRC32 of those 8 bytes), its headers (``:event-type``,
``:content-type``, ``:message-type``, each a string: name length, name, type 7,
value length, value), a JSON payload, and a CRC32 of everything before it, all
big-endian: the format ``botocore.eventstream`` parses. A Converse stream is
``messageStart``, per content block its ``contentBlockStart`` (tool use only),
``contentBlockDelta`` events and ``contentBlockStop``, ``messageStop``, and
``metadata`` with the usage.

**Usage** is reported as Bedrock reports it: ``inputTokens`` leaves the cache
reads and writes out (``cacheReadInputTokens``, ``cacheWriteInputTokens``, present
only when non-zero, with ``cacheDetails`` by TTL); ``totalTokens`` counts them in.
Errors are Bedrock's: a JSON ``{"message": ...}`` with the exception's name in
``x-amzn-ErrorType`` (429 ``ThrottlingException``, which botocore retries).
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import struct
from typing import Any
from urllib.parse import unquote

from .reply import Received, Rendered, render
from .wire import json_body, stream_events

__all__ = ["converse_body", "converse_events", "frame", "serve"]

_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
_ERRORS = {
    400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
    408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
    500: "InternalServerException", 503: "ServiceUnavailableException",
}
Event = tuple[str, Any]  # (":event-type", payload)


def frame(event_type: str, payload: Any, message_type: str = "event") -> bytes:
    """One event-stream message: see the module docstring."""
    data = json.dumps(payload).encode()
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", message_type)):
        n, v = name.encode(), value.encode()
        headers += struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v
    prelude = struct.pack("!II", 12 + len(headers) + len(data) + 4, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + data
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


# ---------------------------------------------------------------- Converse
def _usage(r: Rendered) -> Any:
    if r.reply.raw_usage is not None:
        return r.reply.raw_usage
    read, write, write_1h = r.cached_tokens, r.cache_write_tokens, r.cache_write_1h_tokens
    usage: dict[str, Any] = {
        "inputTokens": r.input_tokens - read - write,  # Bedrock leaves cache reads and writes out
        "outputTokens": r.output_tokens,
        "totalTokens": r.input_tokens + r.output_tokens,
    }
    if read or write:
        usage["cacheReadInputTokens"] = read
        usage["cacheWriteInputTokens"] = write
    if write:
        details = [("1h", write_1h), ("5m", write - write_1h)]
        usage["cacheDetails"] = [{"ttl": ttl, "inputTokens": n} for ttl, n in details if n]
    return usage


def _stop(r: Rendered) -> str:
    return "max_tokens" if r.truncated else ("tool_use" if r.tool_calls else "end_turn")


def _blocks(r: Rendered) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if r.reasoning_tokens:
        blocks.append({"reasoningContent": {"reasoningText": {"text": "(fake thinking)", "signature": "fake"}}})
    if r.pieces or not r.tool_calls:
        blocks.append({"text": r.text})
    for cid, name, args in r.tool_calls:
        blocks.append({"toolUse": {"toolUseId": f"tooluse_{cid}", "name": name, "input": json.loads(args)}})
    return blocks


def converse_body(r: Rendered) -> dict[str, Any]:
    """The JSON answer of ``converse``."""
    return {
        "output": {"message": {"role": "assistant", "content": _blocks(r)}},
        "stopReason": _stop(r), "usage": _usage(r), "metrics": {"latencyMs": 1},
    }


def converse_events(r: Rendered) -> list[Event]:
    """The events of ``converse_stream``, in order."""
    events: list[Event] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(_blocks(r)):
        if "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            for delta in ({"text": reasoning["text"]}, {"signature": reasoning["signature"]}):
                events.append(("contentBlockDelta", {"delta": {"reasoningContent": delta}, "contentBlockIndex": index}))
        elif "text" in block:
            for piece in r.text_chunks():
                events.append(("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
        else:
            tool = block["toolUse"]
            events.append(("contentBlockStart", {
                "start": {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}, "contentBlockIndex": index,
            }))
            events.append(("contentBlockDelta", {
                "delta": {"toolUse": {"input": json.dumps(tool["input"])}}, "contentBlockIndex": index,
            }))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": _stop(r)}))
    if r.reply.usage_in_stream:
        events.append(("metadata", {"usage": _usage(r), "metrics": {"latencyMs": 1}}))
    return events


# ---------------------------------------------------------------- InvokeModel (Anthropic bodies)
def _invoke_events(r: Rendered, model: str, body: dict[str, Any]) -> list[Event]:
    events = [data for _, data in stream_events("messages", r, model, body) if data.get("type") != "ping"]
    if events and events[-1].get("type") == "message_stop":  # Bedrock adds its own count to the last event
        events[-1] = {**events[-1], "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": r.input_tokens - r.cached_tokens - r.cache_write_tokens,
            "outputTokenCount": r.output_tokens, "invocationLatency": 1, "firstByteLatency": 1,
        }}
    return [("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events]


# ---------------------------------------------------------------- HTTP
def serve(handler: Any, fake: Any, raw: bytes, headers: dict[str, str]) -> None:
    """Answer one Bedrock Runtime request (``handler`` is FakeLLM's request handler)."""
    path = handler.path.split("?", 1)[0]
    parts = path.split("/")  # "", "model", modelId, operation
    if len(parts) != 4 or parts[3] not in _OPERATIONS:
        return _error(handler, 404, f"FakeLLM does not serve {path}", "UnknownOperationException")
    model, operation = unquote(parts[2]), parts[3]
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return _error(handler, 400, "the request body is not JSON")
    if not isinstance(body, dict):
        return _error(handler, 400, "the request body is not a JSON object")
    received = Received(operation, handler.path, body, headers)
    reply = fake._next(received)  # counted like any request that reached the provider
    if operation.startswith("invoke") and not isinstance(body.get("messages"), list):
        return _error(handler, 400, "FakeLLM answers invoke_model for Anthropic Messages bodies only "
                                    "(anthropic_version, max_tokens, messages)")
    if reply is None:
        return _error(handler, 500, "FakeLLM script exhausted and no default reply")
    if reply.status != 200:
        return _error(handler, reply.status, reply.error)
    rendered = render(reply, received)
    if operation == "converse":
        return handler._json(200, converse_body(rendered))
    if operation == "invoke":
        counts = {"x-amzn-bedrock-input-token-count": str(rendered.input_tokens - rendered.cached_tokens
                                                          - rendered.cache_write_tokens),
                  "x-amzn-bedrock-output-token-count": str(rendered.output_tokens)}
        return handler._json(200, json_body("messages", rendered, model), counts)
    events = converse_events(rendered) if operation == "converse-stream" else _invoke_events(rendered, model, body)
    return _stream(handler, [frame(kind, payload) for kind, payload in events], reply.break_after)


def _error(handler: Any, status: int, message: str, code: str | None = None) -> None:
    name = code or _ERRORS.get(status, "InternalServerException")
    handler._json(status, {"message": message}, {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/"})


def _stream(handler: Any, frames: list[bytes], break_after: int | None) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/vnd.amazon.eventstream")
    handler.send_header("transfer-encoding", "chunked")
    handler.send_header("x-amzn-requestid", "req_fake")
    handler.end_headers()
    for i, data in enumerate(frames):
        if break_after is not None and i >= break_after:
            # Drop the connection mid-body: no terminating chunk, so the client sees a broken stream.
            handler.wfile.flush()
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
