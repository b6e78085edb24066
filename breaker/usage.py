"""Normalized usage of one or more model requests.

Every provider reports tokens differently (Anthropic's ``input_tokens`` leaves
cache reads and writes out, OpenAI's ``prompt_tokens`` counts them in). The
adapters translate into this one shape so that pricing and budgets never have
to know which provider spoke.
"""

from __future__ import annotations

from .errors import UsageError

__all__ = ["Usage"]


_FIELDS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "requests", "tool_calls", "web_search_calls", "cache_write_1h_tokens",
)



class Usage:
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

    A value object: validated on construction (a negative or non-integer
    count, or parts larger than their whole, raise :class:`UsageError` instead
    of being priced), and meant to be treated as immutable; use ``replace`` or
    ``+`` to derive another. Hand-written rather than a frozen dataclass: one is
    built on every call, and a frozen dataclass costs ~4 µs to construct.
    """

    __slots__ = _FIELDS

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
    ) -> None:
        # Exact-type checks read ``__class__`` (an attribute load, cheaper than
        # nine type() calls), and one bitwise OR stands in for nine sign checks
        # (a negative int makes the OR negative): this runs on every call.
        if not (
            input_tokens.__class__ is int and output_tokens.__class__ is int
            and cache_read_tokens.__class__ is int and cache_write_tokens.__class__ is int
            and reasoning_tokens.__class__ is int and requests.__class__ is int and tool_calls.__class__ is int
            and web_search_calls.__class__ is int and cache_write_1h_tokens.__class__ is int
            and (input_tokens | output_tokens | cache_read_tokens | cache_write_tokens | reasoning_tokens
                 | requests | tool_calls | web_search_calls | cache_write_1h_tokens) >= 0
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

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)}" for n in _FIELDS if getattr(self, n))
        return f"Usage({parts})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable slots: not hashable

    def __reduce__(self) -> tuple[type, tuple[int, ...]]:
        return (Usage, tuple(getattr(self, n) for n in _FIELDS))

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens: what token budgets count."""
        return self.input_tokens + self.output_tokens

    def replace(self, **changes: int) -> Usage:
        """A copy with some fields changed (validated like any new ``Usage``)."""
        values = {n: getattr(self, n) for n in _FIELDS}
        values.update(changes)
        return Usage(**values)

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(*(getattr(self, n) + getattr(other, n) for n in _FIELDS))

    def __radd__(self, other: object) -> Usage:
        if other == 0:  # lets sum() work
            return self
        return self.__add__(other)


def _invalid(values: tuple[object, ...]) -> None:
    """Raise a UsageError that names the first thing wrong with ``values``."""
    named = dict(zip(_FIELDS, values))
    for name, value in named.items():
        if type(value) is not int or value < 0:  # type: ignore[operator]
            raise UsageError(
                f"Usage.{name} must be a non-negative int, got {value!r}. The provider "
                f"(or the caller of record()) reported usage that cannot be priced; "
                f"nothing was guessed."
            )
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


