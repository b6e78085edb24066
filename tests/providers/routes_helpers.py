"""What the tests of the OpenAI SDK's other billed routes share: the genai-prices reference
for a ``breaker.Usage`` with any of its units, and small audio files."""

from __future__ import annotations

from decimal import ROUND_CEILING

from breaker import Usage
from breaker.testing.media_wire import wav_file

_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "output_reasoning_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "input_image_tokens": "input_image_tokens",
    "output_image_tokens": "output_image_tokens",
    "input_characters": "input_characters",
    "audio_seconds": "audio_seconds",
    "input_audio_seconds": "input_audio_seconds",
}


def reference(usage: Usage, model: str, provider: str = "openai") -> int:
    """``genai_prices.calc_price`` of one request, in nano-USD rounded up (as breaker rounds)."""
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    g = GUsage(**{key: getattr(usage, name) for name, key in _KEYS.items() if getattr(usage, name)})
    total = calc_price(g, model, provider_id=provider).total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


def nano(usd: float) -> int:
    return round(usd * 1_000_000_000)


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent 8-bit mono WAV file of ``seconds``."""
    return wav_file(b"\x80" * int(seconds * rate), rate=rate, width=1)
