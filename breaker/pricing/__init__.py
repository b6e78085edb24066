"""Prices: what a call costs, in integer nano-USD, exactly as the provider bills it.

``rates``  a model's price compiled into integer coefficients (``Price``, ``compile_price``)
``book``   model names resolved to prices: overrides, aliases, providers, variants (``PriceBook``)
"""

from .book import PriceBook, provider_for_url, provider_id
from .rates import MAX_NANO, NANO, Price, UnmeteredUnits, compile_price

__all__ = ["MAX_NANO", "NANO", "Price", "PriceBook", "UnmeteredUnits", "compile_price", "provider_for_url",
           "provider_id"]
