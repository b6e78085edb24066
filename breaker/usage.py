"""Normalized usage of one or more model requests.

Every provider reports tokens differently (Anthropic's ``input_tokens`` leaves
cache reads and writes out, OpenAI's ``prompt_tokens`` counts them in). The
adapters translate into this one shape so that pricing and budgets never have
to know which provider spoke.
"""

from __future__ import annotations

from typing import Any

from .errors import UsageError

__all__ = ["MAX_UNITS", "UNITS", "Usage"]

MAX_UNITS = (1 << 40) - 1
"""The most of any one count a ``Usage`` may hold: 1,099,511,627,775 (about 1.1 × 10¹²), far past
any model's context window, hours of audio or a batch's requests. A count beyond it is a
corrupted report (10³⁰ tokens would trip a lifetime budget for good), refused as ``UsageError``.
A power of two less one, so that one shift checks nine counts at once (see ``Usage.__init__``)."""


_CORE = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "requests", "tool_calls", "web_search_calls", "cache_write_1h_tokens",
)
# Units most calls never report (other modalities, other billing units). They are
# keyword-only and kept out of the slots: an instance stores one only when it is
# non-zero, so the common text call pays nothing for them.
UNITS = (
    "input_audio_tokens", "cache_audio_read_tokens", "output_audio_tokens",
    "input_image_tokens", "cache_image_read_tokens", "output_image_tokens",
    "input_video_tokens", "file_search_calls", "input_characters",
    "audio_seconds", "input_audio_seconds", "input_document_pages",
)
_FIELDS = _CORE + UNITS
# (part, whole): each part is counted inside its whole, as genai-prices' units are.
_PARTS = (
    (("input_audio_tokens", "input_image_tokens", "input_video_tokens"), "input_tokens"),
    (("cache_audio_read_tokens", "cache_image_read_tokens"), "cache_read_tokens"),
    (("cache_audio_read_tokens",), "input_audio_tokens"),
    (("cache_image_read_tokens",), "input_image_tokens"),
    (("output_audio_tokens", "output_image_tokens"), "output_tokens"),
    (("input_audio_seconds",), "audio_seconds"),
)


class _Units:
    """Class-level zeros for the rarely reported units (see ``UNITS``)."""

    input_audio_tokens = cache_audio_read_tokens = output_audio_tokens = 0
    input_image_tokens = cache_image_read_tokens = output_image_tokens = 0
    input_video_tokens = file_search_calls = input_characters = 0
    audio_seconds = input_audio_seconds = input_document_pages = 0



class Usage(_Units):
    """Token and request counts, all non-negative integers.

    Attributes:
        input_tokens: every input token, **including** cache reads and writes.
        output_tokens: every output token, **including** reasoning tokens.
        cache_read_tokens: input tokens served from the prompt cache (part of ``input_tokens``).
        cache_write_tokens: input tokens written to the prompt cache (part of ``input_tokens``).
        reasoning_tokens: hidden reasoning tokens (part of ``output_tokens``).
        requests: how many provider requests this usage covers.
        tool_calls: tool calls the model asked for.
        web_search_calls: server-side web searches (billed per call by most providers).
        cache_write_1h_tokens: the part of ``cache_write_tokens`` written with a 1-hour TTL
            (Anthropic bills those higher than 5-minute writes).

    Keyword-only, for the calls that have them (each named as genai-prices names
    its unit, and counted inside its whole the way the token counts are):
    ``input_audio_tokens`` / ``input_image_tokens`` / ``input_video_tokens`` (parts of
    ``input_tokens``), ``cache_audio_read_tokens`` / ``cache_image_read_tokens`` (parts of
    ``cache_read_tokens`` and of their modality's input), ``output_audio_tokens`` /
    ``output_image_tokens`` (parts of ``output_tokens``), ``file_search_calls``,
    ``input_characters`` (text-to-speech), ``audio_seconds`` and its part
    ``input_audio_seconds`` (transcription), ``input_document_pages`` (OCR).

    A value object: validated on construction (a negative or non-integer
    count, or parts larger than their whole, raise :class:`UsageError` instead
    of being priced), and meant to be treated as immutable; use ``replace`` or
    ``+`` to derive another. Hand-written rather than a frozen dataclass: one is
    built on every call, and a frozen dataclass costs ~4 µs to construct.
    """

    __slots__ = _CORE  # the rare units live in the base's __dict__, only when non-zero

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    requests: int
    tool_calls: int
    web_search_calls: int
    cache_write_1h_tokens: int

    def __init__(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        requests: int = 1,
        tool_calls: int = 0,
        web_search_calls: int = 0,
        cache_write_1h_tokens: int = 0,
        **units: int,
    ) -> None:
        # Exact-type checks read ``__class__`` (an attribute load, cheaper than
        # nine type() calls), and one bitwise OR stands in for nine range checks:
        # shifted right by 40 it is 0 only if every count is in [0, MAX_UNITS] (a
        # negative int makes the OR negative, -1 once shifted; a count past MAX_UNITS
        # leaves a bit). The shift takes the place of the one sign comparison that was
        # here, so the bound costs no extra instruction: this runs on every call.
        if not (
            input_tokens.__class__ is int and output_tokens.__class__ is int
            and cache_read_tokens.__class__ is int and cache_write_tokens.__class__ is int
            and reasoning_tokens.__class__ is int and requests.__class__ is int and tool_calls.__class__ is int
            and web_search_calls.__class__ is int and cache_write_1h_tokens.__class__ is int
            and not (input_tokens | output_tokens | cache_read_tokens | cache_write_tokens | reasoning_tokens
                     | requests | tool_calls | web_search_calls | cache_write_1h_tokens) >> 40
            and cache_read_tokens + cache_write_tokens <= input_tokens
            and reasoning_tokens <= output_tokens
            and cache_write_1h_tokens <= cache_write_tokens
        ):
            _invalid((
                input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                requests, tool_calls, web_search_calls, cache_write_1h_tokens,
            ))
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        self.reasoning_tokens = reasoning_tokens
        self.requests = requests
        self.tool_calls = tool_calls
        self.web_search_calls = web_search_calls
        self.cache_write_1h_tokens = cache_write_1h_tokens
        if units:
            self._set_units(units)

    def _set_units(self, units: dict[str, int]) -> None:
        unknown = units.keys() - set(UNITS)
        if unknown:
            raise TypeError(
                f"Usage() got unknown fields {sorted(unknown)}; the fields are {list(_FIELDS)}"
            )
        for name, value in units.items():
            if value.__class__ is not int or not 0 <= value <= MAX_UNITS:
                _invalid_count(name, value)
            if value:
                self.__dict__[name] = value
        for parts, whole in _PARTS:
            total = sum(getattr(self, part) for part in parts)
            if total > getattr(self, whole):
                raise UsageError(
                    f"{' + '.join(parts)} ({total}) exceed {whole} ({getattr(self, whole)}); "
                    f"{whole} must include them."
                )

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)}" for n in _FIELDS if getattr(self, n))
        return f"Usage({parts})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable slots: not hashable

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (tuple(getattr(self, n) for n in _CORE), dict(self.__dict__)))

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens: what token budgets count."""
        return self.input_tokens + self.output_tokens

    def replace(self, **changes: int) -> Usage:
        """A copy with some fields changed (validated like any new ``Usage``)."""
        values = {n: getattr(self, n) for n in _CORE}
        values.update(self.__dict__)
        values.update(changes)
        return Usage(**values)

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        units = {n: getattr(self, n) + getattr(other, n) for n in {*self.__dict__, *other.__dict__}}
        return Usage(*(getattr(self, n) + getattr(other, n) for n in _CORE), **units)

    def __radd__(self, other: object) -> Usage:
        if other == 0:  # lets sum() work
            return self
        return self.__add__(other)


def _rebuild(core: tuple[int, ...], units: dict[str, int]) -> Usage:
    return Usage(*core, **units)


def _invalid(values: tuple[object, ...]) -> None:
    """Raise a UsageError that names the first thing wrong with ``values``."""
    named = dict(zip(_CORE, values))
    for name, value in named.items():
        if type(value) is not int or not 0 <= value <= MAX_UNITS:  # type: ignore[operator]
            _invalid_count(name, value)
    if named["cache_read_tokens"] + named["cache_write_tokens"] > named["input_tokens"]:  # type: ignore[operator]
        raise UsageError(
            f"cache_read_tokens ({named['cache_read_tokens']}) + cache_write_tokens "
            f"({named['cache_write_tokens']}) exceed input_tokens ({named['input_tokens']}); "
            f"input_tokens must include cached tokens."
        )
    if named["reasoning_tokens"] > named["output_tokens"]:  # type: ignore[operator]
        raise UsageError(
            f"reasoning_tokens ({named['reasoning_tokens']}) exceed output_tokens "
            f"({named['output_tokens']}); output_tokens must include reasoning tokens."
        )
    raise UsageError(
        f"cache_write_1h_tokens ({named['cache_write_1h_tokens']}) exceed cache_write_tokens "
        f"({named['cache_write_tokens']}); the 1-hour writes are part of them."
    )


def _invalid_count(name: str, value: object) -> None:
    if type(value) is int and value > MAX_UNITS:
        raise UsageError(
            f"Usage.{name}={value:,} is beyond any real call (at most {MAX_UNITS:,}, about 10**12). The "
            f"provider (or the caller of record()) reported usage that cannot be right; it was not "
            f"counted, so it cannot trip a budget for good."
        )
    raise UsageError(
        f"Usage.{name} must be a non-negative int, got {value!r}. The provider "
        f"(or the caller of record()) reported usage that cannot be priced; "
        f"nothing was guessed."
    )
