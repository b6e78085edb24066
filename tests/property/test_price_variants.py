"""Every genai-prices model with a price variant (service tiers, fast modes, batch), an audio, image or
video rate, a per-request fee or a non-token unit: breaker's compiled integer price equals
``calc_price`` (with ``price_context``) to the nano-dollar, over random usages of every unit."""

from __future__ import annotations

import random
import warnings
from decimal import ROUND_CEILING

from genai_prices import Usage as GUsage
from genai_prices import calc_price, data_snapshot
from genai_prices.types import ModelPrice
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker import Usage
from breaker.pricing import PriceBook
from breaker.usage import UNITS

_GENAI_KEY = {"reasoning_tokens": "output_reasoning_tokens", "web_search_calls": "web_searches",
              "file_search_calls": "storage_searches"}
_SPECIAL = ("audio", "image", "video", "requests", "mchars", "hours", "pages", "searches")


def _special(info) -> bool:
    prices = [info.prices] if isinstance(info.prices, ModelPrice) else [c.prices for c in info.prices]
    keys = {k for p in prices for k, v in vars(p).items() if v is not None}
    return bool(info.price_variants) or any(word in k for k in keys for word in _SPECIAL)


def _usage(rng: random.Random) -> Usage:
    inp = rng.choice([rng.randint(0, 5000), rng.randint(0, 400_000)])
    out = rng.randint(0, 30_000)
    ia = rng.randint(0, inp) if rng.random() < .4 else 0
    ii = rng.randint(0, inp - ia) if rng.random() < .3 else 0
    cr = rng.randint(0, inp) if rng.random() < .5 else 0
    car = rng.randint(0, min(cr, ia)) if rng.random() < .5 else 0
    cir = rng.randint(0, min(cr - car, ii)) if rng.random() < .5 else 0
    cw = rng.randint(0, inp - cr) if rng.random() < .3 else 0
    oa = rng.randint(0, out) if rng.random() < .3 else 0
    oi = rng.randint(0, out - oa) if rng.random() < .3 else 0
    secs = rng.randint(0, 4000) if rng.random() < .3 else 0
    return Usage(
        inp, out, cr, cw, rng.randint(0, out - oa - oi) if rng.random() < .3 else 0,
        requests=rng.choice([0, 1]),  # genai-prices bills one request whatever it is told; so does breaker web_search_calls=rng.randint(0, 2) if rng.random() < .2 else 0,
        input_audio_tokens=ia, input_image_tokens=ii, cache_audio_read_tokens=car, cache_image_read_tokens=cir,
        output_audio_tokens=oa, output_image_tokens=oi, audio_seconds=secs,
        input_audio_seconds=secs if rng.random() < .5 else 0,
        input_characters=rng.randint(0, 10_000) if rng.random() < .3 else 0,
        input_document_pages=rng.randint(0, 50) if rng.random() < .2 else 0,
        file_search_calls=rng.randint(0, 3) if rng.random() < .2 else 0,
    )


def _reference(usage: Usage, model: str, provider: str, context: dict | None) -> int:
    values = {}
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "reasoning_tokens", "web_search_calls", *UNITS):
        if getattr(usage, name):
            values[_GENAI_KEY.get(name, name)] = getattr(usage, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = calc_price(GUsage(**values), model, provider_id=provider, price_context=context).total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


def test_every_variant_and_unit_price_matches_calc_price():
    book = PriceBook()
    rng = random.Random(20261202)
    checked = models = 0
    for provider in data_snapshot.get_snapshot().providers:
        for info in provider.models:
            if not _special(info):
                continue
            for context in [None, *(dict(v.when) for v in info.price_variants or ())]:
                price = book.lookup(info.id, provider.id, context=tuple(context.items()) if context else None,
                                    strict=True)
                if price is None:  # an id genai-prices' own rules do not match, or units breaker cannot meter
                    continue
                models += 1
                for _ in range(6):
                    usage = _usage(rng)
                    try:
                        expected = _reference(usage, info.id, provider.id, context)
                    except ValueError:  # genai-prices rejects some unit mixes (cached audio without totals)
                        continue
                    assert price.cost(usage) == expected, (provider.id, info.id, context, usage)
                    checked += 1
    assert models > 300 and checked > 1500


def _special_prices() -> list:
    book = PriceBook()
    found = []
    for provider in data_snapshot.get_snapshot().providers:
        for info in provider.models:
            if _special(info):
                price = book.lookup(info.id, provider.id, strict=True)
                if price is not None:
                    found.append(price)
    return found


_SPECIAL_PRICES = _special_prices()


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_a_text_only_request_never_costs_more_than_its_text_rate_worst_case(data):
    """``Price.worst_case(n, text_only=True)`` (``Call.text_only``): whatever split of ``n`` input
    tokens into plain, cache read and cache write (5 min, 1 h) a text-only request is billed, and
    whatever its output, it costs no more than that reservation, which is never above the
    any-kind one (and below it where audio, image or video input is dearer)."""
    price = data.draw(st.sampled_from(_SPECIAL_PRICES))
    inp = data.draw(st.integers(0, 1_200_000))
    out = data.draw(st.integers(0, 100_000))
    cr = data.draw(st.integers(0, inp))
    cw = data.draw(st.integers(0, inp - cr))
    cw1h = data.draw(st.integers(0, cw))
    reasoning = data.draw(st.integers(0, out))
    fixed, per = price.worst_case(inp, True)
    assert price.cost(Usage(inp, out, cr, cw, reasoning, cache_write_1h_tokens=cw1h)) <= fixed + per * out
    any_fixed, any_per = price.worst_case(inp)
    assert fixed <= any_fixed and per == any_per
