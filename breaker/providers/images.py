"""OpenAI images: ``images.generate``, ``images.edit``, ``images.create_variation``.

GPT image models report ``usage``: ``input_tokens`` (text and image, with
``input_tokens_details.image_tokens``) and ``output_tokens`` (with
``output_tokens_details.image_tokens`` where the model reports it). They map to
``Usage(input_tokens, output_tokens, input_image_tokens=..., output_image_tokens=...)``;
without output details every output token is counted an image token (what GPT image
output is, and never the cheaper rate). SVG output adds the SVG author's tokens
(``svg_usage``), billed at the image model's rates: one call is priced under one model.

DALL·E models report no usage and are priced per image, which genai-prices does not
list: such a call is refused before it is sent (``UnknownPrice``) unless a price is given
(``Breaker(prices={"dall-e-3": {"input": 0, "output": 0, "request": 0.04}})``); sent,
it is billed its bound (``warn_unreadable``), whose ``requests=1`` carries that fee.

Bounds, since no image request can cap its output (``media.FixedOutput``):

* input: the prompt's bytes (``breaker.estimate``) plus ``INPUT_IMAGE_TOKENS`` per image
  (and mask) given to an edit;
* output: per image, ``OUTPUT_TOKENS`` of the quality for a 1024×1024 image, scaled by the
  requested area (OpenAI's own table: 272 / 1,056 / 4,160 tokens for low / medium /
  high at 1024×1024, 408 / 1,584 / 6,240 at 1536×1024: area scaling is never below
  it); ``auto`` quality counts as high, a quality this table does not know (``xhigh``,
  ``max``) as four times high; ``auto`` size as 1536×1024, an unreadable size as
  3840×2160 (the largest the API accepts). Times ``n``, times the GIF frames, plus 100
  tokens per partial image of a stream (OpenAI's figure).

No fingerprint: asking for the same picture again is how people pick among images, so
identical-call detection leaves these routes alone (the spend and step detectors do not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..adapter import Call, ESTIMATOR, usage_error
from ..usage import Usage
from ._shapes import field, value
from .media import FixedOutput
from .streams import Meter

__all__ = ["ImagesAdapter", "ImagesMeter", "image_usage", "output_bound"]

INPUT_IMAGE_TOKENS = 10_000
"""Bound per image (or mask) given to an edit: vision patches (at most ~1,600 tokens) plus
what ``input_fidelity="high"`` adds (6,240 at 1536×1024), with margin."""

OUTPUT_TOKENS = {"low": 272, "medium": 1_056, "high": 4_160, "auto": 4_160, "standard": 4_160, "hd": 4_160}
"""Output tokens of one 1024×1024 image, by quality."""

PARTIAL_IMAGE_TOKENS = 100
GIF_FRAMES = 9  # the API's default frame count for GIF output
_UNKNOWN_QUALITY = 4 * 4_160
_AUTO_SIZE = (1536, 1024)
_LARGEST = (3840, 2160)
_MEGA = 1024 * 1024
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
NO_MODEL = "(model not given)"


def _dimensions(size: Any) -> tuple[int, int]:
    if size is None or size == "auto":
        return _AUTO_SIZE
    match = _SIZE.match(size) if isinstance(size, str) else None
    return (int(match[1]), int(match[2])) if match else _LARGEST


def output_bound(kwargs: Mapping[str, Any]) -> int:
    """The most output tokens an image request can be billed (module docstring)."""
    quality = value(kwargs, "quality")
    per_mega = OUTPUT_TOKENS.get(quality, _UNKNOWN_QUALITY) if quality is not None else OUTPUT_TOKENS["auto"]
    width, height = _dimensions(value(kwargs, "size"))
    per_image = -(-per_mega * width * height // _MEGA)
    if value(kwargs, "output_format") == "gif":
        frames = value(kwargs, "frame_count")
        per_image *= frames if isinstance(frames, int) and frames > 0 else GIF_FRAMES
    partials = value(kwargs, "partial_images")
    if isinstance(partials, int) and partials > 0:
        per_image += PARTIAL_IMAGE_TOKENS * partials
    n = value(kwargs, "n")
    return per_image * (n if isinstance(n, int) and n > 0 else 1)


def image_usage(u: Any, svg: Any = None) -> Usage:
    """``Usage`` of a GPT image model's ``usage`` (and ``svg_usage``), from SDK objects or dicts."""
    if u is None:
        raise usage_error(
            "An OpenAI images response came back without `usage`",
            "DALL·E models report none (priced per image: give a 'request' price), and a host may strip it",
        )
    inp = field(u, "input_tokens")
    out = field(u, "output_tokens")
    if inp is None or out is None:
        raise usage_error("OpenAI images usage lacks input_tokens/output_tokens", f"got {u!r}")
    image_in = field(field(u, "input_tokens_details"), "image_tokens") or 0
    odet = field(u, "output_tokens_details")
    image_out = out if odet is None else field(odet, "image_tokens") or 0
    reasoning = 0
    if svg is not None:
        s_out = field(svg, "output_tokens") or 0
        inp += field(svg, "input_tokens") or 0
        out += s_out
        reasoning = min(field(svg, "reasoning_tokens") or 0, s_out)
    return Usage(input_tokens=inp, output_tokens=out, reasoning_tokens=reasoning,
                 input_image_tokens=image_in, output_image_tokens=image_out)


_COMPLETED = frozenset({"image_generation.completed", "image_edit.completed"})


class ImagesMeter(Meter):
    """An image stream: usage on each ``*.completed`` event (summed: one per image when ``n > 1``)."""

    __slots__ = ()

    def feed(self, event: Any) -> bool:
        if field(event, "type") in _COMPLETED:
            usage = image_usage(field(event, "usage"))
            self.usage = usage if self.usage is None else self.usage + usage
        return True

    def billed(self, ticket: Any) -> Usage:
        """A stream that ended before its usage: the partial images cost the whole bound."""
        return ticket.worst_case_usage()  # type: ignore[no-any-return]


class ImagesAdapter(FixedOutput):
    """One images route: ``kind`` is ``"generate"``, ``"edit"`` or ``"variation"``."""

    provider = "openai"
    operation = "images"

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"OpenAI images.{kind}"
        self.what = f"images.{kind}"

    def describe(self, kwargs: Mapping[str, Any], strict: bool) -> Call | None:
        model = value(kwargs, "model")
        if model is None:
            model = "dall-e-2" if self.kind == "variation" else NO_MODEL  # variations: DALL·E 2 only
        if not isinstance(model, str):
            return None
        prompt = value(kwargs, "prompt")
        bound = ESTIMATOR.estimate(model, None, system=prompt if isinstance(prompt, str) else None, strict=strict)[0]
        if self.kind == "edit":
            images = value(kwargs, "image")
            count = len(images) if isinstance(images, (list, tuple)) and not _is_file_tuple(images) else 1
            bound += INPUT_IMAGE_TOKENS * (count + (value(kwargs, "mask") is not None))
        return Call(model=model, provider=self.provider, input_tokens=bound, max_output_tokens=output_bound(kwargs),
                    operation=self.operation, stream=kwargs.get("stream") is True, messages=1,
                    strict_provider=self.strict_provider)

    def usage(self, response: Any) -> Usage:
        return image_usage(field(response, "usage"), field(response, "svg_usage"))

    def meter(self, hide_usage: bool) -> Meter:
        return ImagesMeter(hide_usage)


def _is_file_tuple(v: Any) -> bool:
    """``("name.png", content, ...)``: one file given as a tuple, not a list of files."""
    return isinstance(v, tuple) and len(v) >= 2 and isinstance(v[0], (str, type(None))) and not isinstance(v[1], str)
