"""Prices compiled once per model into integer rates.

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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from importlib.metadata import version
from typing import Any
from operator import attrgetter, mul

from .errors import ConfigError
from .usage import Usage

__all__ = ["Price", "PriceBook", "NANO"]

NANO = 1_000_000_000  # nano-USD per USD

# Usage field -> genai-prices usage key, in coefficient-vector order.
_FIELD_KEYS: tuple[tuple[str, str], ...] = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("cache_write_1h_tokens", "cache_write_1h_tokens"),
    ("reasoning_tokens", "output_reasoning_tokens"),
    ("web_search_calls", "web_searches"),
    ("requests", "requests"),
)
_IN, _OUT, _CR, _CW, _CW1H, _RSN, _WS, _REQ = range(8)

# User price keys -> (genai price key, multiplier to genai's unit).
_USER_KEYS: dict[str, tuple[str, int]] = {
    "input": ("input_mtok", 1),
    "output": ("output_mtok", 1),
    "cache_read": ("cache_read_mtok", 1),
    "cache_write": ("cache_write_mtok", 1),
    "cache_write_1h": ("cache_write_1h_mtok", 1),
    "reasoning": ("output_reasoning_mtok", 1),
    "web_search": ("web_searches_kcount", 1000),  # user gives USD per search
    "request": ("requests_kcount", 1000),  # user gives USD per request
}

# Prefixes that name a provider in front of a model name ("anthropic/claude-…",
# "openai:gpt-5"); mapped to genai-prices provider ids.
_PROVIDER_ALIASES = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google-gla": "google",
    "google-vertex": "google",
    "vertex_ai": "google",
    "bedrock": "aws",
    "aws": "aws",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "cerebras": "cerebras",
    "perplexity": "perplexity",
}


# Usage fields in the order of a band's coefficients (see ``_IN`` ... ``_REQ``).
_USAGE_TERMS = attrgetter(
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "reasoning_tokens", "web_search_calls", "requests",
)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's price as integer coefficients.

    ``bands`` is a tuple of ``(threshold, coefficients)``; a request uses the
    last band whose threshold its input tokens exceed (the base band has -1).
    ``rates`` keeps the source figures (USD per million tokens, or per call)
    for display.
    """

    model: str
    provider: str | None
    source: str
    context_window: int | None
    bands: tuple[tuple[int, tuple[int, ...]], ...]
    den: int
    rates: tuple[tuple[int, Mapping[str, Decimal]], ...]
    # Per band: (threshold, dearest input rate, dearest output rate, request fee), precomputed
    # because worst_case runs on every admission.
    worst: tuple[tuple[int, int, int, int], ...] = ()

    def __post_init__(self) -> None:
        worst = tuple(
            (threshold, c[_IN] + max(0, c[_CR], c[_CW], c[_CW] + c[_CW1H]), c[_OUT] + max(0, c[_RSN]), c[_REQ])
            for threshold, c in self.bands
        )
        object.__setattr__(self, "worst", worst)

    def _coefficients(self, input_tokens: int) -> tuple[int, ...]:
        bands = self.bands
        if len(bands) == 1:
            return bands[0][1]
        chosen = bands[0][1]
        for threshold, coeffs in bands:
            if input_tokens > threshold:
                chosen = coeffs
        return chosen

    def cost(self, usage: Usage) -> int:
        """Exact cost of one request's usage in nano-USD, rounded up.

        One C-level pass (``attrgetter`` + ``map``): this runs on every settled call.
        """
        bands = self.bands
        c = bands[0][1] if len(bands) == 1 else self._coefficients(usage.input_tokens)
        return -(-sum(map(mul, _USAGE_TERMS(usage), c)) // self.den)

    def worst_case(self, input_tokens: int) -> tuple[int, int]:
        """``(fixed, per_output_token)`` nano-USD bounds for a request.

        ``fixed`` covers ``input_tokens`` input tokens as if each were billed at
        the dearest input kind (a cache write can cost more than plain input)
        plus the per-request fee; ``per_output_token`` is the dearest output
        rate, rounded up. Every band the input could land in is considered, so
        the bound holds whatever the real input count is, up to ``input_tokens``.
        """
        worst = self.worst
        if len(worst) == 1:
            _, worst_in, worst_out, fee = worst[0]
        else:
            reachable = [w for w in worst if w[0] == -1 or w[0] < input_tokens]
            worst_in = max(w[1] for w in reachable)
            worst_out = max(w[2] for w in reachable)
            fee = max(w[3] for w in reachable)
        den = self.den
        return -(-(input_tokens * worst_in + fee) // den), -(-worst_out // den)


def compile_price(
    model_price: Any,
    *,
    model: str,
    provider: str | None,
    source: str,
    context_window: int | None = None,
) -> Price:
    """Compile a genai-prices ``ModelPrice`` into a :class:`Price`."""
    from genai_prices.decompose import is_descendant_or_self
    from genai_prices.types import TieredPrices
    from genai_prices.units import _get_registry

    registry = _get_registry()
    units = {key: registry.units[key] for _, key in _FIELD_KEYS}
    priced = {key: getattr(model_price, unit.price_key, None) for key, unit in units.items()}
    priced = {key: value for key, value in priced.items() if value is not None}

    thresholds = sorted({t.start for v in priced.values() if isinstance(v, TieredPrices) for t in v.tiers})
    band_starts = [-1, *thresholds]

    def price_at(value: Any, band_start: int) -> Decimal:
        if not isinstance(value, TieredPrices):
            return value
        chosen = value.base
        for tier in value.tiers:
            if tier.start <= band_start and band_start >= 0:
                chosen = tier.price
        return chosen

    # Leaf decomposition (as genai_prices.decompose.compute_leaf_values), as
    # linear combinations of usage keys.
    token_units = sorted(
        (units[k] for k in priced if k != "requests"), key=lambda u: (-len(u.dimensions), u.usage_key)
    )
    leaves: dict[str, dict[str, int]] = {}
    for unit in token_units:
        expr = {unit.usage_key: 1}
        for other in token_units:
            if other is not unit and other.usage_key in leaves and is_descendant_or_self(unit, other):
                for k, v in leaves[other.usage_key].items():
                    expr[k] = expr.get(k, 0) - v
        leaves[unit.usage_key] = expr

    raw_bands: list[tuple[int, dict[str, Decimal]]] = []
    for start in band_starts:
        coeff: dict[str, Decimal] = {key: Decimal(0) for _, key in _FIELD_KEYS}
        for key, value in priced.items():
            per_unit = price_at(value, start) * NANO / units[key].per  # nano-USD per unit
            expr = {"requests": 1} if key == "requests" else leaves[key]
            for k, v in expr.items():
                coeff[k] += per_unit * v
        raw_bands.append((start, coeff))

    den = 1
    for _ in range(30):
        if all((c * den) == (c * den).to_integral_value() for _, band in raw_bands for c in band.values()):
            break
        den *= 10
    else:  # pragma: no cover - prices with > 30 decimals do not exist
        raise ConfigError(f"price for {model!r} has too many decimal places to compile exactly")

    bands = tuple(
        (start, tuple(int(band[key] * den) for _, key in _FIELD_KEYS)) for start, band in raw_bands
    )
    rates = tuple(
        (start, {units[k].price_key: price_at(v, start) for k, v in priced.items()}) for start in band_starts
    )
    return Price(model, provider, source, context_window, bands, den, rates)


class _Entry:
    """A resolved model whose price may change over time (dated price lists)."""

    __slots__ = ("info", "provider", "price", "valid_until", "ignored")

    def __init__(self, info: Any, provider: Any) -> None:
        self.info = info
        self.provider = provider
        self.price: Price | None = None
        self.valid_until = -math.inf

    def constant(self) -> bool:
        """Whether this model has one price for all time (no dated or time-of-day prices)."""
        from genai_prices.types import ModelPrice

        return isinstance(self.info.prices, ModelPrice)

    def current(self, now: float) -> Price:
        if now < self.valid_until and self.price is not None:
            return self.price
        info = self.info
        when = datetime.fromtimestamp(now, tz=timezone.utc)
        model_price = info.get_prices(when)
        self.price = compile_price(
            model_price,
            model=info.id,
            provider=self.provider.id,
            source=f"genai-prices {_GENAI_VERSION} (bundled)",
            context_window=info.context_window,
        )
        self.valid_until = _valid_until(info, now)
        return self.price


def _valid_until(info: Any, now: float) -> float:
    """Until when the price picked at ``now`` stays the one genai-prices would pick."""
    from genai_prices.types import ModelPrice, StartDateConstraint

    if isinstance(info.prices, ModelPrice):
        return math.inf
    starts = []
    for conditional in info.prices:
        constraint = conditional.constraint
        if constraint is None:
            continue
        if not isinstance(constraint, StartDateConstraint):
            return now  # time-of-day prices: resolve on every call
        start = constraint.start_date
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        starts.append(start.timestamp())
    later = [s for s in starts if s > now]
    return min(later) if later else math.inf


try:
    _GENAI_VERSION = version("genai-prices")
except Exception:  # pragma: no cover
    _GENAI_VERSION = "?"


class PriceBook:
    """Resolves model names to compiled prices: user overrides first, then genai-prices.

    Lookups are cached per ``(model, provider)``; a name that matches nothing
    resolves to ``None`` (never to $0).
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides: dict[str, Price] = {}
        for name, spec in (overrides or {}).items():
            price = _user_price(name, spec)
            self._overrides[name] = price
            self._overrides.setdefault(name.lower(), price)
        self._cache: dict[tuple[str, str | None], _Entry | Price | None] = {}

    def lookup(self, model: str, provider: str | None = None, now: float | None = None) -> Price | None:
        """The price for ``model`` (as the provider names it), or ``None`` if unknown."""
        key = (model, provider)
        try:
            entry = self._cache[key]
            if type(entry) is Price:  # the common case: a price that never changes
                return entry
        except KeyError:
            if len(self._cache) > 4096:
                self._cache.clear()
            entry = self._cache[key] = self._resolve(model, provider)
        if entry is None or isinstance(entry, Price):
            return entry
        return entry.current(time.time() if now is None else now)

    def _resolve(self, model: str, provider: str | None) -> _Entry | Price | None:
        override = self._overrides.get(model) or self._overrides.get(model.lower())
        if override is not None:
            return override
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        for ref, hint in _candidates(model, provider):
            for provider_id in ((hint, None) if hint else (None,)):
                try:
                    found_provider, info = snapshot.find_provider_model(ref, None, provider_id, None)
                except LookupError:
                    continue
                entry = _Entry(info, found_provider)
                if entry.constant():
                    return entry.current(time.time())
                return entry
        return None


def _candidates(model: str, provider: str | None) -> list[tuple[str, str | None]]:
    """Names to try for ``model``: as given, then with a provider prefix split off."""
    name = model.strip()
    hint = _PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else None
    out = [(name, hint)]
    if name.startswith("models/"):
        out.append((name[len("models/"):], hint))
    for sep in ("/", ":"):
        head, found, tail = name.partition(sep)
        if found and head.lower() in _PROVIDER_ALIASES and tail:
            out.append((tail, _PROVIDER_ALIASES[head.lower()]))
    return out


def _user_price(name: str, spec: Mapping[str, Any]) -> Price:
    from genai_prices.types import ModelPrice

    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"prices[{name!r}] must be a dict like {{'input': 3.0, 'output': 12.0}} "
            f"(USD per million tokens), got {spec!r}"
        )
    unknown = set(spec) - set(_USER_KEYS) - {"context_window"}
    if unknown:
        raise ConfigError(
            f"prices[{name!r}] has unknown keys {sorted(unknown)}; use {sorted(_USER_KEYS)} "
            f"(tokens in USD per million, 'web_search' and 'request' in USD each)"
        )
    missing = {"input", "output"} - set(spec)
    if missing:
        raise ConfigError(f"prices[{name!r}] needs {sorted(missing)} (USD per million tokens)")
    kwargs: dict[str, Decimal] = {}
    for key, (price_key, mult) in _USER_KEYS.items():
        if key not in spec:
            continue
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            raise ConfigError(f"prices[{name!r}][{key!r}] must be a number, got {value!r}")
        try:
            dec = Decimal(str(value))
        except Exception:
            raise ConfigError(f"prices[{name!r}][{key!r}] must be a number, got {value!r}") from None
        if not dec.is_finite() or dec < 0:
            raise ConfigError(f"prices[{name!r}][{key!r}] must be a finite number >= 0, got {value!r}")
        kwargs[price_key] = dec * mult
    window = spec.get("context_window")
    if window is not None and (type(window) is not int or window <= 0):
        raise ConfigError(f"prices[{name!r}]['context_window'] must be a positive int, got {window!r}")
    return compile_price(ModelPrice(**kwargs), model=name, provider=None, source="user override", context_window=window)
