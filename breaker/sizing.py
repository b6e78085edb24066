"""One value's size: the UTF-8 bytes of its text, the fixed tokens of its media parts, its canonical form.

The pieces ``breaker.estimate`` bounds a request with (its module docstring says why bytes bound
tokens), kept apart from the estimator's caches: ``measure`` of one message, part, tool list or
system value; ``materialize`` for requests holding one-shot iterators; ``interned`` for frameworks
that rebuild their message dicts on every call. Non-text parts (images, documents, audio, video) get
the fixed bounds documented in ``breaker.parts``.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from typing import Any

from .parts import DOCUMENT_PART_TOKENS, IMAGE_PART_TOKENS, converse_media, gemini_file, gemini_media

__all__ = ["OneShot", "interned", "materialize", "measure"]

_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
# Parts counted as the bytes of their data plus DOCUMENT_PART_TOKENS: documents, files, and OpenAI's
# ``input_audio`` (like a Gemini audio blob: see breaker.parts).
_DOCUMENT_TYPES = frozenset({"document", "file", "input_file", "input_audio"})


def _text_len(s: str) -> int:
    # isascii() is O(1) for CPython strings: no encode for the common case.
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def measure(value: Any) -> tuple[int, int, Any]:
    """``(text_bytes, fixed_tokens, canonical)`` of one message, part, tool or system value.

    ``canonical`` is a hashable form (dicts as sorted item tuples) for fingerprints.
    """
    # Exact-type checks first: parsed JSON, messages and tool schemas are plain
    # str / dict / list, and an exact check skips the ``Mapping`` ABC check
    # (a Python-level ``__instancecheck__``) that a list would otherwise pay.
    t = type(value)
    if t is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))), 0, value
    if t is dict:
        # The common message, {"role": "user", "content": "..."}: all strings, no nesting.
        # _text_len inlined: one function call per key and per value is most of the cost here.
        n = 0
        for k, v in value.items():
            if type(v) is not str or type(k) is not str:
                break
            if k.isascii() and v.isascii():
                n += len(k) + len(v)
            else:
                n += _text_len(k) + _text_len(v)
        else:
            # (FileData has three fields: file_uri, mime_type, display_name)
            if ("file_uri" in value or "fileUri" in value) and len(value) <= 3:
                return gemini_media({"file_data": value})  # a FileData dict as a Gemini part: a file reference
            return n, 0, tuple(sorted(value.items()))
        return _mapping(value)
    if t is list or t is tuple:
        return _sequence(value)
    if isinstance(value, str):
        return _text_len(value), 0, value
    if isinstance(value, (dict, Mapping)):
        return _mapping(value)
    if isinstance(value, (list, tuple)):
        return _sequence(value)
    if value is None or isinstance(value, bool):
        return 0, 0, value
    if isinstance(value, (int, float)):
        return len(repr(value)), 0, value
    if isinstance(value, (bytes, bytearray)):
        return len(value), 0, bytes(value)
    if isinstance(value, type):  # a class (a pydantic model given as a response format): its name
        return _text_len(value.__qualname__), 0, value.__qualname__
    if type(value).__module__.startswith("PIL."):  # an image google-genai sends as an image part
        return 0, IMAGE_PART_TOKENS, ("<image>", getattr(value, "size", None), id(value))
    dump = getattr(value, "model_dump", None)  # SDK objects passed back as messages
    if dump is not None:
        uploaded = gemini_file(value)  # an upload's handle given as a part: sent as a file reference
        if uploaded is not None:
            return uploaded
        return measure(dump(exclude_none=True, mode="json"))
    if hasattr(value, "__next__") and not isinstance(value, io.IOBase):
        raise OneShot  # reading it here would leave the SDK nothing to send
    if hasattr(value, "__iter__") and not isinstance(value, io.IOBase):
        return measure(list(value))
    text = str(value)
    return _text_len(text), 0, text


class OneShot(Exception):
    """A one-shot iterator (a generator, ``iter([...])``) inside a request: measuring it
    would consume it. The caller copies the request with ``materialize`` and measures that."""


def materialize(value: Any) -> Any:
    """``value`` with every one-shot iterator inside it read into a list.

    Containers on the way to an iterator are copied; nothing of the caller's is
    changed, and everything else is the same object. The SDK serialises a list
    exactly as it would have the iterator, so the request on the wire is the same.
    """
    if type(value) is str or value is None:
        return value
    if isinstance(value, Mapping):
        items = {k: materialize(v) for k, v in value.items()}
        return items if any(items[k] is not v for k, v in value.items()) else value
    if isinstance(value, (list, tuple)):
        seq = [materialize(v) for v in value]
        if all(a is b for a, b in zip(seq, value)):
            return value
        return seq if isinstance(value, list) else tuple(seq)
    if hasattr(value, "__next__") and not isinstance(value, io.IOBase):
        return [materialize(v) for v in value]
    return value


def _mapping(value: Any) -> tuple[int, int, Any]:
    """``measure`` of a mapping that is not all strings (nested parts, images, documents)."""
    kind = value.get("type")
    if type(kind) is not str:  # a JSON schema: "type" may be a list (["string", "null"]) or a property named type
        kind = None
    elif kind in _IMAGE_TYPES:
        return 0, IMAGE_PART_TOKENS, ("<image>", _canon_plain(value))
    if "inline_data" in value or "inlineData" in value or "file_data" in value or "fileData" in value:
        return gemini_media(value)
    if len(value) == 1 and ("image" in value or "document" in value or "video" in value):
        media = converse_media(value, measure)
        if media is not None:
            return media
    n, fixed, items = 0, DOCUMENT_PART_TOKENS if kind in _DOCUMENT_TYPES else 0, []
    if "audio" in value and "role" in value and isinstance(value["audio"], Mapping):
        fixed += DOCUMENT_PART_TOKENS  # an OpenAI assistant turn's audio, sent back by id: its length is not here
    for k, v in value.items():
        b, f, c = measure(v)
        n += b + (_text_len(k) if isinstance(k, str) else 0)
        fixed += f
        items.append((k, c))
    items.sort(key=_first)
    return n, fixed, tuple(items)


def _sequence(value: Any) -> tuple[int, int, Any]:
    n = fixed = 0
    items = []
    for v in value:
        b, f, c = measure(v)
        n += b
        fixed += f
        items.append(c)
    return n, fixed, tuple(items)


def _first(item: tuple[Any, Any]) -> str:
    return str(item[0])


def _canon_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), _canon_plain(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_canon_plain(v) for v in value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _figures(m: Any) -> tuple[int, int, int]:
    """``(text_bytes, fixed_tokens, hash(canonical))`` of one message, uncached.

    The plain ``{"role": ..., "content": ...}`` dict of strings (most
    messages) is done inline, without ``measure``'s loop and sort: its
    canonical form is known to be ``(("content", c), ("role", r))`` (keys
    sorted), so the hash is the one ``measure`` would give, and a message has
    one fingerprint whichever way it was measured. (``Estimator.estimate``
    repeats these lines inline for a sibling request's last message.)
    """
    if type(m) is dict and len(m) == 2:
        role = m.get("role")
        content = m.get("content")
        if type(role) is str and type(content) is str:  # two keys, both present: exactly these two
            if role.isascii() and content.isascii():
                b = 11 + len(role) + len(content)  # 11: len("role") + len("content")
            else:
                b = 11 + _text_len(role) + _text_len(content)
            return b, 0, hash((("content", content), ("role", role)))
    b, f, c = measure(m)
    return b, f, hash(c)


class _NotPlain(Exception):
    pass


def _content_key(value: Any) -> Any:
    """A hashable key of a JSON-plain value (type-tagged, so ``1``, ``1.0`` and ``True`` differ)."""
    t = type(value)
    if t is str:
        return value
    if t is dict:
        if not all(type(k) is str for k in value):
            raise _NotPlain
        return (dict, *[(k, _content_key(v)) for k, v in value.items()])
    if t is list:
        return (list, *[_content_key(v) for v in value])
    if value is None or t is int or t is float or t is bool:
        return (t, value)
    raise _NotPlain


_INTERNED: dict[Any, Any] = {}
_MAX_INTERNED = 16_384


def interned(items: Any) -> Any:
    """``items`` with each plain message dict replaced by one private copy per content.

    Frameworks that rebuild the message dicts of a conversation on every call
    (LiteLLM, the OpenAI Agents SDK) make ``ESTIMATOR`` compare those messages by
    value and measure each new copy it keeps: equal messages become the same
    object here, so the identity checks answer. Give the result to the
    estimator only; the copy is breaker's own, so nothing the framework later does
    to its dicts changes it. Other items pass as they are.
    """
    if type(items) is not list:
        return items
    table = _INTERNED
    out = []
    for m in items:
        if type(m) is not dict:
            out.append(m)
            continue
        try:
            key = _content_key(m)
        except _NotPlain:
            out.append(m)
            continue
        hit = table.get(key)
        if hit is None:
            hit = table[key] = copy.deepcopy(m)
            if len(table) > _MAX_INTERNED:  # oldest first (dicts keep insertion order)
                table.pop(next(iter(table)), None)
        out.append(hit)
    return out
