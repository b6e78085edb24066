"""Our compiled integer prices against genai_prices.calc_price, to the nano-dollar."""

import random
from decimal import ROUND_CEILING, Decimal

import pytest
from genai_prices import Usage as GUsage
from genai_prices import calc_price

from breaker import Breaker, ConfigError, UnknownPrice, Usage
from breaker.adapter import Call
from breaker.pricing import PriceBook
from tests.conftest import genai_nano

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-5", "openai"),
    ("gpt-5-mini", "openai"),
    ("o3", "openai"),
    ("o4-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-opus-4-1", "anthropic"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gemini-2.5-pro", "google"),
    ("gemini-2.5-flash", "google"),
    ("gemini-2.0-flash", "google"),
    ("deepseek-chat", "deepseek"),
    ("deepseek-reasoner", "deepseek"),
    ("mistral-large-latest", "mistral"),
    ("grok-4", "x-ai"),
    ("command-r-plus", "cohere"),
    ("llama-3.3-70b-versatile", "groq"),
]


def _usages(rng: random.Random, n: int) -> list[Usage]:
    out = [Usage(200_000, 10), Usage(200_001, 10), Usage(0, 0), Usage(1, 1)]
    while len(out) < n:
        inp = rng.choice([rng.randint(0, 5000), rng.randint(0, 400_000), rng.randint(100_000, 300_000)])
        cr = rng.randint(0, inp) if rng.random() < 0.5 else 0
        cw = rng.randint(0, inp - cr) if rng.random() < 0.4 else 0
        cw1h = rng.randint(0, cw) if cw and rng.random() < 0.5 else 0
        out_t = rng.randint(0, 40_000)
        rsn = rng.randint(0, out_t) if rng.random() < 0.5 else 0
        ws = rng.randint(0, 3) if rng.random() < 0.2 else 0
        out.append(Usage(inp, out_t, cr, cw, rsn, cache_write_1h_tokens=cw1h, web_search_calls=ws))
    return out


def test_matches_calc_price_to_the_nano_dollar():
    book = PriceBook()
    rng = random.Random(20261123)
    pairs = 0
    for model, provider in MODELS:
        price = book.lookup(model, provider)
        assert price is not None, f"{model} should be priced"
        for usage in _usages(rng, 14):
            assert price.cost(usage) == genai_nano(usage, model, provider), (model, usage)
            pairs += 1
    assert pairs >= 200


def test_tier_cliff_applies_to_every_token():
    price = PriceBook().lookup("gemini-2.5-pro", "google")
    below, above = price.cost(Usage(200_000, 1000)), price.cost(Usage(200_001, 1000))
    assert above > 2 * below * 0.99  # the whole request moves to the higher rates
    # worst case for an input bound over the threshold uses the higher band
    fixed, per_out = price.worst_case(300_000)
    assert fixed >= price.cost(Usage(300_000, 0, cache_write_tokens=0)) - price.cost(Usage(0, 0))
    assert per_out * 1000 >= price.cost(Usage(300_000, 1000)) - price.cost(Usage(300_000, 0))


def test_worst_case_bounds_every_split_of_input():
    price = PriceBook().lookup("claude-opus-4-1", "anthropic")
    fixed, per_out = price.worst_case(10_000)
    for usage in [
        Usage(10_000, 500),
        Usage(10_000, 500, cache_write_tokens=10_000),
        Usage(10_000, 500, cache_write_tokens=10_000, cache_write_1h_tokens=10_000),
        Usage(10_000, 500, cache_read_tokens=10_000),
        Usage(9_000, 500, reasoning_tokens=500),
    ]:
        assert price.cost(usage) <= fixed + per_out * 500


def test_name_normalisation_and_unknowns():
    book = PriceBook()
    assert book.lookup("anthropic/claude-sonnet-4") is not None
    assert book.lookup("models/gemini-2.5-pro") is not None
    assert book.lookup("openai:gpt-4o") is not None
    # a fine-tune costs more than its base model: never guessed
    assert book.lookup("ft:gpt-4o-mini:acme::abc123") is None
    assert book.lookup("no-such-model-xyz") is None


def test_user_prices_override_and_validate():
    book = PriceBook({"gpt-4o": {"input": 1, "output": 2}, "my-ft": {"input": 3.0, "output": 12.0, "cache_read": 0.3}})
    assert book.lookup("gpt-4o").cost(Usage(1_000_000, 1_000_000)) == 3 * 10**9
    assert book.lookup("gpt-4o").source == "user override"
    ft = book.lookup("my-ft")
    # cache reads leave input when they have their own price
    assert ft.cost(Usage(1_000_000, 0, cache_read_tokens=1_000_000)) == 300_000_000
    with pytest.raises(ConfigError, match="unknown keys"):
        PriceBook({"x": {"input": 1, "output": 1, "inptu": 2}})
    with pytest.raises(ConfigError, match="needs"):
        PriceBook({"x": {"input": 1}})
    with pytest.raises(ConfigError, match=">= 0"):
        PriceBook({"x": {"input": -1, "output": 1}})


def test_unknown_model_is_refused_before_the_call_with_a_howto():
    guard = Breaker(alerts=[])
    with pytest.raises(UnknownPrice) as info:
        guard.admit(Call("my-private-model", "openai", input_tokens=10, max_output_tokens=10))
    assert "prices=" in str(info.value) and "unknown_price='warn'" in str(info.value)
    assert guard.spent("global").calls == 0
