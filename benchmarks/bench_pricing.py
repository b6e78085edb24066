"""Pricing one call: our compiled integer prices vs genai_prices.calc_price (and
LiteLLM's cost_per_token when installed), with the results checked identical.

Run: .venv/bin/python benchmarks/bench_pricing.py
"""

from __future__ import annotations

import os
from decimal import ROUND_CEILING

from genai_prices import Usage as GUsage
from genai_prices import calc_price

from _util import header, interleaved, row

from breaker import Usage
from breaker.pricing import PriceBook

CASES = [
    ("gpt-4o-mini", "openai", Usage(1500, 800, cache_read_tokens=1000)),
    ("claude-sonnet-4-5", "anthropic", Usage(250_000, 2000, cache_read_tokens=50_000, cache_write_tokens=10_000)),
    ("gemini-2.5-pro", "google", Usage(200_001, 500, reasoning_tokens=300)),
]


def _g(u: Usage) -> GUsage:
    return GUsage(input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
                  cache_write_tokens=u.cache_write_tokens, output_reasoning_tokens=u.reasoning_tokens)


def main() -> None:
    header("Pricing per call (same model, same usage, same result)")
    book = PriceBook()
    litellm_cost = None
    try:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from litellm import cost_per_token as litellm_cost  # type: ignore[no-redef]
    except Exception:  # litellm is optional
        pass
    for model, provider, usage in CASES:
        price = book.lookup(model, provider)
        ours = price.cost(usage)
        theirs = int((calc_price(_g(usage), model, provider_id=provider).total_price * 10**9).to_integral_value(ROUND_CEILING))
        assert ours == theirs, (model, ours, theirs)
        gu = _g(usage)
        fns = {
            "breaker": lambda: price.cost(usage),
            "lookup+price": lambda: book.lookup(model, provider).cost(usage),
            "calc_price": lambda: calc_price(gu, model, provider_id=provider),
        }
        if litellm_cost is not None:
            fns["litellm"] = lambda: litellm_cost(model=model, prompt_tokens=usage.input_tokens,
                                                  completion_tokens=usage.output_tokens)
        samples = interleaved(fns, calls=500, repeats=9)
        print(f" {model} ({provider}): ${ours / 1e9:.9f} both ways")
        row("breaker Price.cost", samples["breaker"], ratio_to=samples["calc_price"])
        row("breaker lookup + cost", samples["lookup+price"], ratio_to=samples["calc_price"])
        row("genai_prices.calc_price", samples["calc_price"])
        if "litellm" in samples:
            row("litellm.cost_per_token (no cache split)", samples["litellm"])


if __name__ == "__main__":
    main()
