"""The input bound and the content-free fingerprint of a request, cheaply.

Why a byte count: every byte-level BPE tokenizer (OpenAI's, Anthropic's)
turns N bytes of text into at most N tokens, so the UTF-8 byte count of
every text part of a request is an upper bound on its input tokens that
needs no tokenizer and cannot be beaten by unusual text. Reserving that bound
(plus a per-message overhead for the chat template) is what lets a budget be
enforced with zero overshoot. The count is deliberately generous: dict keys
and numbers inside messages and tool schemas count too, since tool
definitions are rendered into the prompt.

Non-text parts get fixed bounds, documented here:

* an image part (``image_url``, ``input_image``, ``image``) counts
  ``IMAGE_PART_TOKENS`` (above what OpenAI and Anthropic charge for the
  largest image they accept after resizing), not the size of its data;
* a document or file part counts the bytes of its data plus
  ``DOCUMENT_PART_TOKENS``. For very image-heavy PDFs this is an estimate, not a bound.

``strict=False`` gives the looser estimate (a quarter of the bytes, about
what tokenizers produce for English and code). It reserves less, so more
calls fit a small budget, but it **gives up the zero-overshoot guarantee**:
a request that tokenizes worse than 4 bytes per token can cost more than was
reserved, and the settled spend may pass a limit by that difference.

Why the caches: an agent re-sends its whole history on every step, so
measuring every message on every call would cost O(steps²) over a run. Each
message is measured once and remembered by object identity (with its
``content`` checked by identity too, so a message whose content is replaced
is measured again); a conversation that grows by appending (or is rebuilt
from the same message objects) is recognised by its first two messages and
only the new tail is looked up, which makes a call O(1) amortised in Python
work (the prefix check is one C-speed list compare). Caches are bounded LRUs
holding references to the measured objects (which keeps ``id()`` reuse from
ever matching a different object). Editing a message that was already sent
*in place* (``msg["content"] = ...`` on the same dict) is not noticed on the
recognised prefix; append new messages or replace the message object instead,
as agent loops do.

The fingerprint is Python's ``hash`` of a canonical form of model, messages
and tools: stable within a process (what loop detection needs), never text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Callable, Any

__all__ = [
    "DOCUMENT_PART_TOKENS",
    "IMAGE_PART_TOKENS",
    "MESSAGE_OVERHEAD",
    "REQUEST_OVERHEAD",
    "Estimator",
    "estimate",
    "measure",
]

IMAGE_PART_TOKENS = 6_000
"""Bound per image part. OpenAI bills at most ~1,600 tokens for one image at high detail
(GPT-4.1-mini-style patches cap at 1,536), Anthropic ~1,600 (more for its high-resolution
models, under 5,000); 6,000 covers all of them."""

DOCUMENT_PART_TOKENS = 6_000
"""Added per document / file part on top of the bytes of its data (page images)."""

MESSAGE_OVERHEAD = 8
"""Per message: role markers and separators of the chat template (OpenAI's is 3–4)."""

REQUEST_OVERHEAD = 16
"""Per request: reply priming and the tool-definition wrapper."""

_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
_DOCUMENT_TYPES = frozenset({"document", "file", "input_file"})
_MAX_MESSAGES = 16_384
_MAX_CONVERSATIONS = 256


def _text_len(s: str) -> int:
    # isascii() is O(1) for CPython strings: no encode for the common case.
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def measure(value: Any) -> tuple[int, int, Any]:
    """``(text_bytes, fixed_tokens, canonical)`` of one message, part, tool or system value.

    ``canonical`` is a hashable form (dicts as sorted item tuples) for fingerprints.
    """
    if isinstance(value, str):
        return _text_len(value), 0, value
    if isinstance(value, (dict, Mapping)):
        if type(value) is dict:
            # The common message, {"role": "user", "content": "..."}: all strings, no nesting.
            n = 0
            for k, v in value.items():
                if type(v) is not str or type(k) is not str:
                    break
                n += _text_len(k) + _text_len(v)
            else:
                return n, 0, tuple(sorted(value.items()))
        kind = value.get("type")
        if kind in _IMAGE_TYPES:
            return 0, IMAGE_PART_TOKENS, ("<image>", _canon_plain(value))
        n, fixed, items = 0, DOCUMENT_PART_TOKENS if kind in _DOCUMENT_TYPES else 0, []
        for k, v in value.items():
            b, f, c = measure(v)
            n += b + (_text_len(k) if isinstance(k, str) else 0)
            fixed += f
            items.append((k, c))
        items.sort(key=_first)
        return n, fixed, tuple(items)
    if isinstance(value, (list, tuple)):
        n = fixed = 0
        items = []
        for v in value:
            b, f, c = measure(v)
            n += b
            fixed += f
            items.append(c)
        return n, fixed, tuple(items)
    if value is None or isinstance(value, bool):
        return 0, 0, value
    if isinstance(value, (int, float)):
        return len(repr(value)), 0, value
    if isinstance(value, (bytes, bytearray)):
        return len(value), 0, bytes(value)
    dump = getattr(value, "model_dump", None)  # SDK objects passed back as messages
    if dump is not None:
        return measure(dump(exclude_none=True, mode="json"))
    if hasattr(value, "__iter__"):
        return measure(list(value))
    text = str(value)
    return _text_len(text), 0, text


def _first(item: tuple[Any, Any]) -> str:
    return str(item[0])


def _canon_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), _canon_plain(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_canon_plain(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


_EMPTY: tuple[list[Any], list[int], list[int], list[int]] = ([], [0], [0], [0])
"""A conversation's cached state: (messages, prefix text bytes, prefix fixed bounds, prefix hashes).

Replaced as one tuple, never mutated, so concurrent callers never see a
message list paired with another list's sums (a race only costs a recount).
"""


class Estimator:
    """Measures requests with bounded caches. Thread-safe; one per process is enough."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: OrderedDict[int, tuple[Any, Any, int, int, int]] = OrderedDict()
        self._conversations: OrderedDict[tuple[int, int], tuple[list[Any], list[int], list[int], list[int]]] = (
            OrderedDict()
        )
        self._objects: OrderedDict[int, tuple[Any, int, int, int, int]] = OrderedDict()

    # one message: (ref, content ref, bytes, fixed tokens, hash)
    def _message(self, m: Any) -> tuple[int, int, int]:
        key = id(m)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        hit = self._messages.get(key)
        if hit is not None and hit[0] is m and hit[1] is content:
            return hit[2], hit[3], hit[4]
        b, f, c = measure(m)
        h = hash(c)
        with self._lock:
            self._messages[key] = (m, content, b, f, h)
            if len(self._messages) > _MAX_MESSAGES:
                self._messages.popitem(last=False)
        return b, f, h

    def _object(self, obj: Any) -> tuple[int, int, int]:
        """Tools, system prompts: measured once per object."""
        if isinstance(obj, str):
            return _text_len(obj), 0, hash(obj)
        key = id(obj)
        hit = self._objects.get(key)
        if hit is not None and hit[0] is obj and (not isinstance(obj, list) or hit[1] == len(obj)):
            return hit[2], hit[3], hit[4]
        b, f, c = measure(obj)
        h = hash(c)
        with self._lock:
            self._objects[key] = (obj, len(obj) if isinstance(obj, list) else 0, b, f, h)
            if len(self._objects) > _MAX_CONVERSATIONS:
                self._objects.popitem(last=False)
        return b, f, h

    def messages(self, messages: Sequence[Any]) -> tuple[int, int, int, int]:
        """``(text_bytes, fixed_tokens, prefix_hash, count)`` of a message list.

        The conversation seen last with the same first two messages is reused
        up to the longest prefix of identical message objects (a C-speed list
        compare); only messages past it are looked up (by identity, with a
        content identity check) or measured.
        """
        items = messages if type(messages) is list else list(messages)
        n = len(items)
        if n == 0:
            return 0, 0, 0, 0
        key = (id(items[0]), id(items[1]) if n > 1 else 0)
        state = self._conversations.get(key) or _EMPTY
        old, sizes, fixed, hashes = state
        known = len(old)
        if known <= n and (items[:known] if known < n else items) == old:
            k = known  # the same conversation, grown (or rebuilt from the same messages)
        elif 1 < known <= n + 1 and items[: known - 1] == old[:-1]:
            k = known - 1  # a sibling request: same history, another last message
        else:  # the history was edited (trimmed, rewritten): find the common prefix
            k = 0
            limit = min(known, n)
            while k < limit and items[k] is old[k]:
                k += 1
        if k < n:
            sizes, fixed, hashes = sizes[: k + 1], fixed[: k + 1], hashes[: k + 1]
            size, fix, h = sizes[-1], fixed[-1], hashes[-1]
            for m in items[k:]:
                b, f, mh = self._message(m)
                size += b
                fix += f
                h = hash((h, mh))
                sizes.append(size)
                fixed.append(fix)
                hashes.append(h)
            with self._lock:
                self._conversations.pop(key, None)
                self._conversations[key] = (list(items), sizes, fixed, hashes)
                if len(self._conversations) > _MAX_CONVERSATIONS:
                    self._conversations.popitem(last=False)
        return sizes[n], fixed[n], hashes[n], n

    def estimate(
        self,
        model: str,
        messages: Sequence[Any] | None,
        *,
        system: Any = None,
        tools: Any = None,
        strict: bool = True,
    ) -> tuple[int, int, int]:
        """``(input_token_bound, fingerprint, message_count)`` of one request."""
        size, fix, h, n = self.messages(messages) if messages else (0, 0, 0, 0)
        if system is not None:
            b, f, sh = self._object(system)
            size += b
            fix += f
            h = hash((h, sh))
            n += 1
        if tools:
            b, f, th = self._object(tools)
            size += b
            fix += f
            h = hash((h, th))
        if not strict:
            size = -(-size // 4)
        return size + fix + MESSAGE_OVERHEAD * n + REQUEST_OVERHEAD, hash((model, h)), n


_default = Estimator()


def estimate(
    model: str, messages: Sequence[Any] | None, *, system: Any = None, tools: Any = None, strict: bool = True
) -> tuple[int, int, int]:
    """``(input_token_bound, fingerprint, message_count)`` using the process-wide caches.

    ``strict=True`` (default) is an upper bound on input tokens; ``strict=False``
    is the looser estimate that gives up the zero-overshoot guarantee.
    """
    return _default.estimate(model, messages, system=system, tools=tools, strict=strict)


def trimmed(
    model: str, messages: Sequence[Any], style: str, *, system: Any = None, tools: Any = None, strict: bool = True
) -> Callable[[int], int]:
    """``Call.trimmed_input`` for a request: the bound once cut to its last ``n``
    messages by ``breaker.degrade.trim_messages``. Computed only when a degrade
    actually trims, so it costs nothing on ordinary calls."""

    def bound(n: int) -> int:
        from .degrade import trim_messages

        return estimate(model, trim_messages(messages, n, style=style), system=system, tools=tools, strict=strict)[0]

    return bound
