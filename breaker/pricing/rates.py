"""A model's price compiled into integer rates (``Price``), exactly as genai-prices computes it.

``genai_prices.calc_price`` is exact but takes ~100 µs a call; the engine
prices every call twice (worst case at admission, real cost at settlement), so
we resolve a model once, reproduce genai-prices' rules as integer arithmetic,
and cache the result:

* **Leaves.** genai-prices carves a priced sub-unit out of its parent: with a
  cache-read price, cache reads leave ``input_tokens`` and are billed at the
  cache rate; without one they stay in input. Because that decomposition is
  linear, it folds into one integer coefficient per ``Usage`` field.
* **Tiers.** Once a request's input passes a tier threshold, the tier's rates
  apply to *all* its units (a cliff). Each threshold starts a *band* with its
  own coefficient vector; pricing picks the band by the request's input.
* **Integers.** A coefficient is nano-USD per unit scaled by ``den`` (10^6 or
  more), so a cost is ``ceil(dot(coefficients, usage) / den)`` nano-USD, the
  same as ``ceil(calc_price(...).total_price * 10^9)``.

Data come from the copy bundled in the ``genai-prices`` package; nothing is
ever fetched over the network here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, localcontext
from operator import attrgetter, mul
from typing import Any

from ..errors import ConfigError
from ..usage import UNITS, Usage

__all__ = ["MAX_NANO", "NANO", "Price", "UnmeteredUnits", "compile_price"]

NANO = 1_000_000_000  # nano-USD per USD

# Usage field -> genai-prices usage key: every unit breaker meters. A model priced in any
# other unit (per message, per annotated page, video output, citations...) cannot be
# metered, and is refused as unpriced rather than billed without that unit.
_FIELD_KEYS: tuple[tuple[str, str], ...] = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("cache_write_1h_tokens", "cache_write_1h_tokens"),
    ("reasoning_tokens", "output_reasoning_tokens"),
    ("web_search_calls", "web_searches"),
    ("file_search_calls", "storage_searches"),
    *((name, name) for name in UNITS if name != "file_search_calls"),
)
_USAGE_KEY = {key: name for name, key in _FIELD_KEYS}
# One token of each kind a request can bill, as usage vectors: the dearest of them bounds
# a request's input (and output) whatever its mix of cache, modality and reasoning.
_INPUT_KINDS: tuple[dict[str, int], ...] = (
    {"input_tokens": 1},
    {"input_tokens": 1, "cache_read_tokens": 1},
    {"input_tokens": 1, "cache_write_tokens": 1},
    {"input_tokens": 1, "cache_write_tokens": 1, "cache_write_1h_tokens": 1},
    {"input_tokens": 1, "input_audio_tokens": 1},
    {"input_tokens": 1, "input_audio_tokens": 1, "cache_read_tokens": 1, "cache_audio_read_tokens": 1},
    {"input_tokens": 1, "input_image_tokens": 1},
    {"input_tokens": 1, "input_image_tokens": 1, "cache_read_tokens": 1, "cache_image_read_tokens": 1},
    {"input_tokens": 1, "input_video_tokens": 1},
)
# A request of text alone (``Call.text_only``): the kinds above that bill no audio, image or video.
_TEXT_FIELDS = frozenset({"input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens"})
_TEXT_INPUT_KINDS = tuple(kind for kind in _INPUT_KINDS if kind.keys() <= _TEXT_FIELDS)
_OUTPUT_KINDS: tuple[dict[str, int], ...] = (
    {"output_tokens": 1},
    {"output_tokens": 1, "reasoning_tokens": 1},
    {"output_tokens": 1, "output_audio_tokens": 1},
    {"output_tokens": 1, "output_image_tokens": 1},
)
# genai-prices bills Groq's Whisper models at least 10 seconds a request.
_MIN_AUDIO_SECONDS = {("groq", "whisper-large-v3"): 10, ("groq", "whisper-large-v3-turbo"): 10}
MAX_NANO = 2**63 - 1  # the most any ledger holds (a signed 64-bit integer: SQLite, Redis)

@dataclass(frozen=True, slots=True)
class Price:
    """One model's price as integer coefficients.

    ``fields`` are the ``Usage`` fields this price bills (input and output
    always, then whatever else it prices), ``bands`` a tuple of
    ``(threshold, coefficients, request_fee)``: a request uses the last band
    whose threshold its input tokens exceed (the base band has -1). ``rates``
    keeps the source figures (genai-prices price keys) for display; ``variant``
    names the price variant (``"priority"``, ``"batch"``...) or is ``None``.
    """

    model: str
    provider: str | None
    source: str
    context_window: int | None
    fields: tuple[str, ...]
    bands: tuple[tuple[int, tuple[int, ...], int], ...]
    den: int
    rates: tuple[tuple[int, Mapping[str, Decimal]], ...]
    variant: str | None = None
    min_audio_seconds: int = 0
    # Per band: (threshold, dearest input rate, dearest output rate, request fee), precomputed
    # because worst_case runs on every admission.
    worst: tuple[tuple[int, int, int, int], ...] = ()
    worst_text: tuple[tuple[int, int, int, int], ...] = ()  # the same, of a request of text alone
    terms: Any = None  # attrgetter(*fields): the usage vector in one C-level call

    def __post_init__(self) -> None:
        index = {name: i for i, name in enumerate(self.fields)}

        def dearest(c: tuple[int, ...], kinds: tuple[dict[str, int], ...]) -> int:
            # a field this price leaves out costs nothing extra: sum the ones it has
            return max(sum(c[index[f]] * n for f, n in kind.items() if f in index) for kind in kinds)

        for name, kinds in (("worst", _INPUT_KINDS), ("worst_text", _TEXT_INPUT_KINDS)):
            object.__setattr__(self, name, tuple(
                (threshold, dearest(c, kinds), dearest(c, _OUTPUT_KINDS), fee) for threshold, c, fee in self.bands))
        object.__setattr__(self, "terms", attrgetter(*self.fields))

    def _band(self, input_tokens: int) -> tuple[int, tuple[int, ...], int]:
        bands = self.bands
        chosen = bands[0]
        for band in bands:
            if input_tokens > band[0]:
                chosen = band
        return chosen

    def cost(self, usage: Usage) -> int:
        """Exact cost of one request's usage in nano-USD, rounded up.

        One C-level pass (``attrgetter`` + ``map``): this runs on every settled call.
        A per-request fee is billed for every request, at least one: a usage that
        says ``requests=0`` was still a request.
        """
        bands = self.bands
        _, c, fee = bands[0] if len(bands) == 1 else self._band(usage.input_tokens)
        if self.min_audio_seconds and 0 < usage.audio_seconds < self.min_audio_seconds:
            floor = self.min_audio_seconds
            usage = usage.replace(audio_seconds=floor, input_audio_seconds=floor)
        total = sum(map(mul, self.terms(usage), c))
        if fee:
            total += fee * (usage.requests or 1)
        return -(-total // self.den)

    def worst_case(self, input_tokens: int, text_only: bool = False) -> tuple[int, int]:
        """``(fixed, per_output_token)`` nano-USD bounds for a request.

        ``fixed`` covers ``input_tokens`` input tokens as if each were billed at
        the dearest input kind (a cache write, or an audio token, can cost more
        than plain input) plus the per-request fee; ``per_output_token`` is the
        dearest output rate, rounded up. Every band the input could land in is
        considered, so the bound holds whatever the real input count is, up to
        ``input_tokens``. ``text_only`` (``Call.text_only``): the request holds no
        image, audio or video, so only the text kinds (plain, cache read, cache
        writes) can be billed.
        """
        worst = self.worst_text if text_only else self.worst
        if len(worst) == 1:
            _, worst_in, worst_out, fee = worst[0]
        else:
            worst_in, worst_out, fee = _dearest_reachable(worst, input_tokens)
        den = self.den
        return -(-(input_tokens * worst_in + fee) // den), -(-worst_out // den)

    def units_cost(self, units: Mapping[str, int]) -> int:
        """The most ``units`` (non-token units: characters, seconds, pages...) can cost, in
        any band, rounded up: what a request's ``Call.units`` bound adds to its reservation."""
        index = {name: i for i, name in enumerate(self.fields)}  # units it does not price cost nothing
        total = max(sum(c[index[name]] * n for name, n in units.items() if name in index) for _, c, _ in self.bands)
        if self.min_audio_seconds and "audio_seconds" in index and units.get("audio_seconds"):
            total = max(total, self.min_audio_seconds * max(c[index["audio_seconds"]] for _, c, _ in self.bands))
        return -(-total // self.den)


def _dearest_reachable(worst: tuple[tuple[int, int, int, int], ...], input_tokens: int) -> tuple[int, int, int]:
    """``(input rate, output rate, fee)``, the dearest of the bands ``input_tokens`` can reach.

    Apart from ``Price.worst_case`` so that its comprehensions (which capture ``input_tokens``)
    make no closure cell on the single-band path every ordinary call takes.
    """
    reachable = [w for w in worst if w[0] == -1 or w[0] < input_tokens]
    return max(w[1] for w in reachable), max(w[2] for w in reachable), max(w[3] for w in reachable)


class UnmeteredUnits(ValueError):
    """A price in units breaker cannot meter (so no call of that model can be billed right)."""


def compile_price(
    model_price: Any,
    *,
    model: str,
    provider: str | None,
    source: str,
    context_window: int | None = None,
    variant: str | None = None,
) -> Price:
    """Compile a genai-prices ``ModelPrice`` into a :class:`Price`.

    Decimal arithmetic runs in a context of its own: the host application's
    ``decimal`` context (``getcontext().prec = 2``, traps) never changes a price.
    """
    with localcontext(EXACT):
        return _compile(model_price, model, provider, source, context_window, variant)


# The decimal context prices compile in, whatever the host application's is.
EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN, Emin=-999999, Emax=999999, traps=[InvalidOperation, DivisionByZero])


def _compile(
    model_price: Any, model: str, provider: str | None, source: str, context_window: int | None, variant: str | None,
) -> Price:
    from genai_prices.decompose import is_descendant_or_self
    from genai_prices.types import TieredPrices
    from genai_prices.units import _get_registry

    registry = _get_registry()
    stored = {k: v for k, v in vars(model_price).items() if v is not None and not k.startswith("_")}
    by_usage: dict[str, Any] = {}
    unmetered = []
    for price_key, value in stored.items():
        try:
            unit = registry.unit_for_price_key(price_key)
        except KeyError:
            unmetered.append(price_key)
            continue
        if unit.usage_key != "requests" and unit.usage_key not in _USAGE_KEY:
            unmetered.append(price_key)
            continue
        by_usage[unit.usage_key] = value
    if unmetered:
        raise UnmeteredUnits(
            f"{model!r} is priced in units breaker cannot meter ({', '.join(sorted(unmetered))})"
        )
    units = {key: registry.units[key] for key in by_usage}
    fee_value = by_usage.pop("requests", None)

    thresholds = sorted({
        t.start for v in (*by_usage.values(), fee_value) if isinstance(v, TieredPrices) for t in v.tiers
    })
    band_starts = [-1, *thresholds]

    def price_at(value: Any, band_start: int) -> Decimal:
        if not isinstance(value, TieredPrices):
            return value  # type: ignore[no-any-return]
        chosen = value.base
        for tier in value.tiers:
            if tier.start <= band_start and band_start >= 0:
                chosen = tier.price
        return chosen  # type: ignore[no-any-return]

    # Leaf decomposition (as genai_prices.decompose.compute_leaf_values), as
    # linear combinations of usage keys.
    token_units = sorted((units[k] for k in by_usage), key=lambda u: (-len(u.dimensions), u.usage_key))
    leaves: dict[str, dict[str, int]] = {}
    for unit in token_units:
        expr = {unit.usage_key: 1}
        for other in token_units:
            if other is not unit and other.usage_key in leaves and is_descendant_or_self(unit, other):
                for k, v in leaves[other.usage_key].items():
                    expr[k] = expr.get(k, 0) - v
        leaves[unit.usage_key] = expr

    fields = ("input_tokens", "output_tokens", *sorted(
        {_USAGE_KEY[k] for expr in leaves.values() for k in expr} - {"input_tokens", "output_tokens"}
    ))
    # Coefficients are nano-USD per unit times ``den``: ``base`` (a multiple of every unit's
    # ``per``: 10^6 tokens, 3600 seconds...) keeps a per-hour price exact, and a power of
    # ten on top clears the prices' decimal places.
    base = math.lcm(*(registry.units[k].per for k in (*by_usage, "requests")))
    raw_bands: list[tuple[int, dict[str, Decimal], Decimal]] = []
    for start in band_starts:
        coeff: dict[str, Decimal] = {name: Decimal(0) for name in fields}
        for key, value in by_usage.items():
            per_unit = price_at(value, start) * NANO * (base // units[key].per)  # nano-USD per unit, x base
            for k, v in leaves[key].items():
                coeff[_USAGE_KEY[k]] += per_unit * v
        fee = (price_at(fee_value, start) * NANO * (base // registry.units["requests"].per)
               if fee_value is not None else Decimal(0))
        raw_bands.append((start, coeff, fee))

    scale = 1
    for _ in range(30):
        if all(
            (c * scale) == (c * scale).to_integral_value()
            for _, band, fee in raw_bands for c in (*band.values(), fee)
        ):
            break
        scale *= 10
    else:  # pragma: no cover - prices with > 30 decimals do not exist
        raise ConfigError(f"price for {model!r} has too many decimal places to compile exactly")

    bands = tuple(
        (start, tuple(int(band[name] * scale) for name in fields), int(fee * scale)) for start, band, fee in raw_bands
    )
    den = base * scale
    priced = {**by_usage, **({"requests": fee_value} if fee_value is not None else {})}
    rates = tuple(
        (start, {registry.units[k].price_key: price_at(v, start) for k, v in priced.items()}) for start in band_starts
    )
    floor = _MIN_AUDIO_SECONDS.get((provider or "", model), 0)
    return Price(model, provider, source, context_window, fields, bands, den, rates, variant, floor)
