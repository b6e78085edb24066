"""The fixed bounds of a request's non-text parts (images, documents, audio, video), per shape.

``breaker.estimate`` bounds text by its UTF-8 bytes; a part that is not text is
bounded here instead:

* an image part (``image_url``, ``input_image``, ``image``) counts
  ``IMAGE_PART_TOKENS`` (above what OpenAI and Anthropic charge for the
  largest image they accept after resizing), not the size of its data;
* a document or file part counts the bytes of its data plus
  ``DOCUMENT_PART_TOKENS``. For very image-heavy PDFs this is an estimate, not a bound;
* an OpenAI ``input_audio`` part counts the bytes of its data plus ``DOCUMENT_PART_TOKENS``
  (as a Gemini audio blob does); an assistant turn's ``audio`` sent back by id counts
  ``DOCUMENT_PART_TOKENS``, an estimate, since the audio's length is not in the request;
* Gemini media parts (``inline_data`` / ``inlineData``): an ``image/*`` blob counts
  ``IMAGE_PART_TOKENS`` (Gemini 3 bills at most 1,120 a image at high resolution,
  Gemini 2.x 258 per 768-pixel tile: 6,000 covers images up to about 3,500 pixels a
  side); audio, video and PDF blobs count the bytes of their data (Gemini bills 32
  tokens a second of audio, about 263 a second of video, 258 a page: below what any
  such file weighs) plus ``DOCUMENT_PART_TOKENS``; a ``file_data`` reference (an
  uploaded file, a URI; also a bare ``{"file_uri": ..., "mime_type": ...}`` part, which
  the SDK sends as one) counts ``DOCUMENT_PART_TOKENS``, an estimate, since its size is
  not in the request. An uploaded ``types.File`` passed itself as a part (the SDK sends
  it as a ``file_data`` reference) carries its ``size_bytes``: it counts like a blob of
  that size, a bound; without a size, ``DOCUMENT_PART_TOKENS``, the same estimate. A PIL
  image object counts ``IMAGE_PART_TOKENS``;
* Bedrock Converse blocks (``{"image": {...}}``, ``{"document": ...}``, ``{"video": ...}``):
  an image counts ``IMAGE_PART_TOKENS``; a document or video counts the bytes of its
  data (or of its text source) plus ``DOCUMENT_PART_TOKENS``. One given by an S3
  location counts ``DOCUMENT_PART_TOKENS`` only: an estimate, since its size is not in
  the request (long videos especially).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

__all__ = ["DOCUMENT_PART_TOKENS", "IMAGE_PART_TOKENS", "converse_media", "gemini_file", "gemini_media"]

IMAGE_PART_TOKENS = 6_000
"""Bound per image part. OpenAI bills at most ~1,600 tokens for one image at high detail
(GPT-4.1-mini-style patches cap at 1,536), Anthropic ~1,600 (more for its high-resolution
models, under 5,000); 6,000 covers all of them."""

DOCUMENT_PART_TOKENS = 6_000
"""Added per document / file part on top of the bytes of its data (page images)."""


def _text_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def gemini_media(part: Any) -> tuple[int, int, Any]:
    """``measure`` of a Gemini media part: see the module docstring."""
    blob = part.get("inline_data") or part.get("inlineData")
    if not isinstance(blob, Mapping):  # a file reference: its size is not in the request
        return 0, DOCUMENT_PART_TOKENS, ("<media>", repr(sorted(part.items(), key=repr)))
    mime = blob.get("mime_type") or blob.get("mimeType") or ""
    data = blob.get("data")
    if isinstance(data, (bytes, bytearray)):
        size, key = len(data), hash(bytes(data))  # the data's hash, never its text, in the fingerprint
    elif isinstance(data, str):
        size, key = len(data) * 3 // 4 + 3, hash(data)  # base64 text: the bytes it decodes to
    else:
        size, key = 0, None
    return _gemini_data(str(mime), size, ("<media>", str(mime), key))


def gemini_file(value: Any) -> tuple[int, int, Any] | None:
    """``measure`` of google-genai's ``types.File`` (an upload's handle) given as a part, which the
    SDK sends as a ``file_data`` reference; ``None`` when ``value`` is not one (checked by its type's
    name, so that sizing need not import google-genai). Its ``size_bytes`` is the data Gemini reads,
    so it bounds the part as a blob's bytes do; only the URI and MIME type (never the name's text)
    go into the fingerprint."""
    t = type(value)
    if t.__name__ != "File" or not t.__module__.startswith("google.genai"):
        return None
    mime = str(getattr(value, "mime_type", None) or "")
    size = getattr(value, "size_bytes", None)
    canonical = ("<media>", mime, getattr(value, "uri", None) or getattr(value, "name", None))
    return _gemini_data(mime, size if type(size) is int and size > 0 else 0, canonical)


def _gemini_data(mime: str, size: int, canonical: Any) -> tuple[int, int, Any]:
    """The rule for Gemini media data of ``size`` bytes, inline or uploaded (module docstring): an
    image counts ``IMAGE_PART_TOKENS``, anything else its bytes plus ``DOCUMENT_PART_TOKENS``."""
    if mime.startswith("image/"):
        return 0, IMAGE_PART_TOKENS, canonical
    return size, DOCUMENT_PART_TOKENS, canonical


def converse_media(block: Any, measure: Callable[[Any], tuple[int, int, Any]]) -> tuple[int, int, Any] | None:
    """``measure`` of a Bedrock Converse media block (see the module docstring); ``None`` when
    it is not one (a one-key mapping named like one, in a tool schema say). ``measure`` is
    ``breaker.estimate.measure``, for a text or S3 source."""
    ((kind, part),) = block.items()
    source = part.get("source") if isinstance(part, Mapping) else None
    if not isinstance(source, Mapping):
        return None
    data = source.get("bytes")
    if isinstance(data, (bytes, bytearray)):
        size, key = len(data), hash(bytes(data))  # the data's hash, never its text, in the fingerprint
    else:  # an S3 location, or a document's text source
        size, _, canonical = measure(source)
        key = hash(canonical)
    found = ("<media>", kind, str(part.get("format")), key)
    if kind == "image":
        return 0, IMAGE_PART_TOKENS, found
    name = part.get("name")  # a document's name is part of the prompt
    return size + (_text_len(name) if isinstance(name, str) else 0), DOCUMENT_PART_TOKENS, found
