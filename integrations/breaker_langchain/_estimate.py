"""A strict input bound and a content-free fingerprint for a request given as JSON-like data.

Why bytes: no BPE tokenizer produces more tokens than the UTF-8 bytes it
reads, so the byte count of every string in the request, plus a small
per-message overhead for the role markers a provider adds, bounds the input
tokens from above without shipping a tokenizer. The reservation made from it
can only be too large, never too small, which is what keeps settled spend
under a kill limit.

The fingerprint hashes the request (model, messages, tools) so the loop
detector can see "the same request again" without the library ever keeping
or sending prompt text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

__all__ = ["MESSAGE_OVERHEAD", "TOOLS_OVERHEAD", "input_bound", "fingerprint", "args_fingerprint"]

MESSAGE_OVERHEAD = 8
"""Tokens a provider may add around one message (role and separators; OpenAI adds 3-4)."""

TOOLS_OVERHEAD = 512
"""Tokens a provider may add when tools are offered (Anthropic's tool-use system prompt is ~350)."""

REQUEST_OVERHEAD = 16
"""Tokens added once per request (reply priming)."""


def _string_bytes(value: Any) -> int:
    """UTF-8 bytes of every string (keys included) in a JSON-like value."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, dict):
        return sum(_string_bytes(k) + _string_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_string_bytes(v) for v in value)
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return len(str(value))
    if isinstance(value, (bytes, bytearray)):
        return len(value) * 4 // 3 + 4  # sent as base64
    return len(str(value).encode("utf-8"))


def input_bound(messages: Iterable[Any], tools: Iterable[Any] = (), system: Any = None) -> int:
    """An upper bound on the input tokens of a request (strict: UTF-8 bytes plus overheads)."""
    total = REQUEST_OVERHEAD
    for message in messages:
        total += _string_bytes(message) + MESSAGE_OVERHEAD
    if system:
        total += _string_bytes(system) + MESSAGE_OVERHEAD
    tools = list(tools)
    if tools:
        total += TOOLS_OVERHEAD + sum(_string_bytes(t) for t in tools)
    return total


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")


def fingerprint(model: str, messages: Any, tools: Any = (), system: Any = None) -> str:
    """A content-free hash of the request: equal requests give equal fingerprints."""
    h = hashlib.blake2b(digest_size=16)
    for part in (model, system, messages, tools):
        h.update(_canonical(part))
        h.update(b"\x00")
    return h.hexdigest()


def args_fingerprint(arguments: Any) -> str:
    """A content-free hash of one tool call's arguments (a dict, or a JSON string)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass
    return hashlib.blake2b(_canonical(arguments), digest_size=12).hexdigest()
