"""The most output tokens a model can produce in one response: a request's real output ceiling.

Why: a request with no output cap can still produce only as much as the model's
maximum output (the provider rejects a larger ``max_tokens``), which for most
models is a small part of the context window (gpt-4o: 16,384 of 128,000). Reserving
the context window instead refuses affordable calls near a limit. Where a model is
not in this table, the context window (from genai-prices) is the bound, and with
neither, ``DEFAULT_OUTPUT_BOUND``.

Source: each provider's model documentation (OpenAI's model pages, Anthropic's
"Models overview" table, Google's Gemini model pages), read in November 2026.
Where a model can produce more with an opt-in (Claude 3.7 Sonnet's 128k output beta),
the larger figure is used: a ceiling here must never be below what the model can
send. A name matches its entry exactly or as a dated snapshot of it
(``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``, ``-latest``, ``-001``), also behind a
Bedrock id's region, vendor and version (``us.anthropic.claude-sonnet-4-20250514-v1:0``); any
other name (a newer model, a fine-tune) is not guessed from a family it resembles.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MAX_OUTPUT_TOKENS", "max_output_tokens", "same_tokenizer"]

MAX_OUTPUT_TOKENS: dict[str, int] = {
    # OpenAI
    "gpt-3.5-turbo": 4_096,
    "gpt-4-turbo": 4_096,
    "gpt-4-0125": 4_096,
    "gpt-4-1106": 4_096,
    "gpt-4": 8_192,
    "gpt-4o-2024-05-13": 4_096,
    "gpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "chatgpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.1-mini": 32_768,
    "gpt-4.1-nano": 32_768,
    "gpt-5-chat-latest": 16_384,
    "gpt-5": 128_000,
    "gpt-5-mini": 128_000,
    "gpt-5-nano": 128_000,
    "o1-preview": 32_768,
    "o1-mini": 65_536,
    "o1": 100_000,
    "o1-pro": 100_000,
    "o3": 100_000,
    "o3-mini": 100_000,
    "o3-pro": 100_000,
    "o4-mini": 100_000,
    # Anthropic
    "claude-3-haiku": 4_096,
    "claude-3-sonnet": 4_096,
    "claude-3-opus": 4_096,
    "claude-3-5-haiku": 8_192,
    "claude-3-5-sonnet": 8_192,
    "claude-3-7-sonnet": 128_000,
    "claude-sonnet-4": 64_000,
    "claude-opus-4": 32_000,
    "claude-opus-4-1": 32_000,
    "claude-sonnet-4-5": 64_000,
    "claude-opus-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    # Google
    "gemini-1.5-pro": 8_192,
    "gemini-1.5-flash": 8_192,
    "gemini-2.0-flash": 8_192,
    "gemini-2.0-flash-lite": 8_192,
    "gemini-2.5-pro": 65_536,
    "gemini-2.5-flash": 65_536,
    "gemini-2.5-flash-lite": 65_536,
}

_PREFIXES = ("openai/", "anthropic/", "models/", "google/")
# A Bedrock model id: an optional cross-region prefix (us., eu., apac., global. ...), the vendor,
# the model, its version ("-v1:0").
_BEDROCK_ID = re.compile(
    r"^(?:[a-z-]+\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|google)\.(.+?)(?:-v\d+)?(?::\d+)?$"
)
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|latest|preview(-\d{2}-\d{2})?)$")


@functools.lru_cache(maxsize=4096)
def max_output_tokens(model: str) -> int | None:
    """The model's maximum output tokens, or ``None`` when this table does not know it."""
    name = model.lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    bedrock = _BEDROCK_ID.match(name)
    if bedrock is not None:
        name = bedrock.group(1)
    found = MAX_OUTPUT_TOKENS.get(name)
    while found is None:
        dated = _SNAPSHOT.search(name)
        if dated is None:
            return None
        name = name[: dated.start()]
        found = MAX_OUTPUT_TOKENS.get(name)
    return found


# Models known to share one tokenizer (OpenAI's tiktoken encodings; Google's Gemini models).
# Most specific prefixes first. Anthropic publishes no tokenizer: no Claude family is listed.
_TOKENIZERS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k"), ("chatgpt-4o", "o200k"), ("gpt-4.1", "o200k"), ("gpt-4.5", "o200k"),
    ("gpt-5", "o200k"), ("o1", "o200k"), ("o3", "o200k"), ("o4", "o200k"),
    ("gpt-4", "cl100k"), ("gpt-3.5", "cl100k"),
    ("gemini-", "gemini"),
)


def _tokenizer(model: str) -> str | None:
    name = model.lower().removeprefix("openai/").removeprefix("models/")
    for prefix, family in _TOKENIZERS:
        if name.startswith(prefix):
            return family
    return None


def same_tokenizer(a: str, b: str) -> bool:
    """Whether two models are known to count the same text as the same tokens.

    A bound learned from one model's reported input holds for another only then
    (a degrade from gpt-4o to gpt-4o-mini keeps it; gpt-4o to gpt-3.5-turbo does not).
    """
    if a == b:
        return True
    family = _tokenizer(a)
    return family is not None and family == _tokenizer(b)
