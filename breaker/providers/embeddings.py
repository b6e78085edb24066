"""OpenAI ``embeddings.create``: input bounded before the call, ``usage.prompt_tokens`` after.

The input bound: a string costs at most its UTF-8 bytes in tokens (the byte-level BPE
rule of ``breaker.estimate``; a quarter of them with ``Breaker(input_estimate="loose")``),
a list of strings the sum of theirs, and token ids (a list of ints, or a list of such
lists) are an exact count. There is no output: the call is described with
``max_output_tokens=0``, so nothing is reserved or billed for output.

No fingerprint: embedding the same text again is how retrieval works (the same query,
a re-indexed document), not an agent looping, so identical-call detection leaves
embeddings alone.

``encoding_format``: the SDK asks for base64 when the caller does not say, and decodes
it before returning; ``usage`` is the same either way, so nothing here depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..adapter import Call, Patch, usage_error
from ..usage import Usage
from ._shapes import SENTINELS, field
from .attempt import Adapter

__all__ = ["EmbeddingsAdapter", "input_bound"]


def _text(s: str, strict: bool) -> int:
    n = len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
    return n if strict else -(-n // 4)


def input_bound(value: Any, strict: bool = True) -> tuple[int, int] | None:
    """``(input token bound, number of inputs)`` of an embeddings ``input``; ``None`` for a shape
    the SDK does not accept (it then raises its own error)."""
    if isinstance(value, str):
        return _text(value, strict), 1
    if isinstance(value, (bytes, bytearray, Mapping)) or not hasattr(value, "__iter__"):
        return None
    items = value if isinstance(value, (list, tuple)) else list(value)
    if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return len(items), 1  # one input given as token ids: an exact count
    total = 0
    for item in items:
        if isinstance(item, str):
            total += _text(item, strict)
        elif isinstance(item, (list, tuple)):
            total += len(item)  # token ids
        else:
            return None
    return total, len(items)


class EmbeddingsAdapter(Adapter):
    """``embeddings.create`` (``/embeddings``)."""

    provider = "openai"
    operation = "embeddings"
    name = "OpenAI embeddings"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = kwargs.get("model")
        inp = kwargs.get("input")
        if not isinstance(model, str) or inp is None or inp.__class__ in SENTINELS:
            return None
        found = input_bound(inp, strict)
        if found is None:
            return None
        bound, count = found
        return Call(model=model, provider=self.provider, input_tokens=bound, max_output_tokens=0,
                    operation=self.operation, messages=count, strict_provider=self.strict_provider)

    def apply(self, kwargs: dict[str, Any], patch: Patch, call: Call) -> dict[str, Any]:
        kw = dict(kwargs)
        if patch.model is not None:
            kw["model"] = patch.model
        if patch.hook is not None:
            kw = patch.hook(kw)
        return kw

    def usage(self, response: Any) -> Usage:
        u = field(response, "usage")
        if u is None:
            raise usage_error("An OpenAI embeddings response came back without `usage`", "nothing to price it from")
        prompt = field(u, "prompt_tokens")
        total = field(u, "total_tokens")
        if prompt is None and total is None:
            raise usage_error("OpenAI embeddings usage lacks prompt_tokens/total_tokens", f"got {u!r}")
        # total_tokens is prompt_tokens for embeddings; the larger is billed if a host says otherwise
        return Usage(input_tokens=max(prompt or 0, total or 0))
