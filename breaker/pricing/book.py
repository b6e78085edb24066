"""``PriceBook``: model names resolved to compiled prices (user overrides and aliases first, then
the genai-prices data bundled in the package), per provider and price variant, cached.

Nothing is ever fetched over the network here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from typing import Any

from ..errors import ConfigError
from .rates import EXACT, Price, UnmeteredUnits, compile_price

__all__ = ["PriceBook", "provider_for_url", "provider_id"]

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


class _Entry:
    """A resolved model (under one price context) whose price may change over time."""

    __slots__ = ("info", "provider", "context", "price", "valid_until")

    def __init__(self, info: Any, provider: Any, context: Context_ | None) -> None:
        self.info = info
        self.provider = provider
        self.context = context
        self.price: Price | None = None
        self.valid_until = -math.inf

    def constant(self) -> bool:
        """Whether this model has one price for all time (no dated or time-of-day prices)."""
        from genai_prices.types import ModelPrice

        if self.context and any(v.constraint is not None for v in self.info.price_variants or ()):
            return False
        return isinstance(self.info.prices, ModelPrice)

    def current(self, now: float) -> Price:
        if now < self.valid_until and self.price is not None:
            return self.price
        info = self.info
        when = datetime.fromtimestamp(now, tz=timezone.utc)
        context = dict(self.context) if self.context else None
        variant = _variant_name(info, context, when)
        self.price = compile_price(
            info.get_prices(when, context if variant else None),
            model=info.id,
            provider=self.provider.id,
            source=f"genai-prices {_genai_version()} (bundled)",
            context_window=info.context_window,
            variant=variant,
        )
        self.valid_until = now if self.context and not self.constant() else _valid_until(info, now)
        return self.price


Context_ = tuple[tuple[str, str], ...]  # a price context, hashable: (("service_tier", "priority"),)


def _variant_name(info: Any, context: Mapping[str, str] | None, when: datetime) -> str | None:
    """The name of the price variants ``context`` selects (``"priority"``, ``"batch"``), or ``None``."""
    if not context:
        return None
    names = [
        "/".join(v.when.values())
        for v in info.price_variants or ()
        if (v.constraint is None or v.constraint.active(when))
        and all(context.get(key) == value for key, value in v.when.items())
    ]
    return "+".join(names) or None


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


def _genai_version() -> str:
    """genai-prices' version, for a price's ``source`` (read when a price is compiled, not at
    import: ``importlib.metadata`` alone costs tens of milliseconds of start-up)."""
    import genai_prices

    return str(getattr(genai_prices, "__version__", "?"))


class PriceBook:
    """Resolves model names to compiled prices: user overrides first, then genai-prices.

    Lookups are cached per ``(model, provider, context, strict)``; a name that
    matches nothing resolves to ``None`` (never to $0), and ``why()`` says why.

    ``strict``: the provider was named (``wrap(client, provider=...)``, a known
    ``base_url`` host, ``record(provider=...)``), so only that provider's price
    applies (with genai-prices' own fallbacks, such as Azure serving OpenAI
    models); otherwise the provider is a hint, and a model it does not list is
    looked up under any provider.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, Any] | str] | None = None) -> None:
        self._overrides: dict[str, Price] = {}
        self._aliases: dict[str, str] = {}
        for name, spec in (overrides or {}).items():
            if isinstance(spec, str):
                if not spec.strip() or spec == name:
                    raise ConfigError(
                        f"prices[{name!r}] = {spec!r}: a string names the model whose price applies "
                        f"(prices={{'prod-gpt4o': 'gpt-4o'}}), and must be another model's name"
                    )
                self._aliases[name] = self._aliases.setdefault(name.lower(), spec)
                continue
            price = _user_price(name, spec)
            self._overrides[name] = price
            self._overrides.setdefault(name.lower(), price)
        for name, target in self._aliases.items():
            if target in self._aliases:
                raise ConfigError(f"prices[{name!r}] = {target!r} names another alias; name the priced model itself")
        self._cache: dict[tuple[Any, ...], _Entry | Price | None] = {}
        self._why: dict[tuple[str, str | None], str] = {}

    def lookup(
        self, model: str, provider: str | None = None, now: float | None = None,
        context: Context_ | None = None, strict: bool = False,
    ) -> Price | None:
        """The price for ``model`` (as the provider names it), or ``None`` if unknown.

        ``context`` selects genai-prices' price variants (``(("service_tier", "priority"),)``,
        ``(("processing", "batch"),)``): a model without that variant keeps its standard price.
        """
        key = (model, provider) if context is None and not strict else (model, provider, context, strict)
        try:
            entry = self._cache[key]
            if type(entry) is Price:  # the common case: a price that never changes
                return entry
        except KeyError:
            if len(self._cache) > 4096:
                self._cache.clear()
            entry = self._cache[key] = self._resolve(model, provider, context, strict)
        if entry is None or isinstance(entry, Price):
            return entry
        return entry.current(time.time() if now is None else now)

    def why(self, model: str, provider: str | None = None) -> str | None:
        """Why ``model`` has no price, when genai-prices has it but breaker cannot bill it."""
        return self._why.get((model, provider))

    def variants(self, model: str, provider: str | None = None) -> list[Price]:
        """Every price variant of ``model`` (service tiers, batch), standard first (for display)."""
        base = self.lookup(model, provider)
        if base is None:
            return []
        found = self._find(model, provider, False)
        contexts = [tuple(v.when.items()) for v in (found[1].price_variants or ())] if found else []
        out = [base]
        for context in contexts:
            price = self.lookup(model, provider, context=context)
            if (price is not None and price.variant and price.rates != base.rates
                    and all(p.variant != price.variant for p in out)):
                out.append(price)
        return out

    def _find(self, model: str, provider: str | None, strict: bool) -> tuple[Any, Any] | None:
        from genai_prices import data_snapshot

        snapshot = data_snapshot.get_snapshot()
        for ref, hint, named in _candidates(model, provider):
            for provider_id in ((hint,) if strict or named else (hint, None)) if hint else (None,):
                try:
                    return snapshot.find_provider_model(ref, None, provider_id, None)  # type: ignore[no-any-return]
                except LookupError:
                    continue
        return None

    def _resolve(self, model: str, provider: str | None, context: Context_ | None, strict: bool) -> _Entry | Price | None:
        override = self._overrides.get(model) or self._overrides.get(model.lower())
        if override is not None:
            return override
        alias = self._aliases.get(model) or self._aliases.get(model.lower())
        if alias is not None:
            return self._resolve(alias, provider, context, strict)
        found = self._find(model, provider, strict)
        if found is None:
            return None
        entry = _Entry(found[1], found[0], context)
        try:
            if entry.constant():
                return entry.current(time.time())
            entry.current(time.time())  # compile now: a price in units breaker cannot meter shows here
        except UnmeteredUnits as e:
            self._why[(model, provider)] = str(e)
            return None
        return entry


def provider_id(name: str) -> str | None:
    """The genai-prices provider id for ``name`` (``"xai"`` → ``"x-ai"``), ``None`` if it names none."""
    from genai_prices import data_snapshot

    key = _PROVIDER_ALIASES.get(name.lower(), name.lower())
    known = {p.id for p in data_snapshot.get_snapshot().providers}
    return key if key in known else None


def provider_for_url(url: str) -> str | None:
    """The genai-prices provider id whose API serves ``url`` (``https://api.groq.com/openai/v1`` →
    ``"groq"``), by the providers' own URL patterns; ``None`` for a host none of them claims."""
    import re

    from genai_prices import data_snapshot

    for p in data_snapshot.get_snapshot().providers:
        if p.api_pattern and re.match(p.api_pattern, url):
            return p.id  # type: ignore[no-any-return]
    return None


def _candidates(model: str, provider: str | None) -> list[tuple[str, str | None, bool]]:
    """Names to try for ``model``: as given, then with a provider prefix split off
    (``(name, provider hint, whether the name itself named the provider)``)."""
    name = model.strip()
    hint = _PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else None
    out = [(name, hint, False)]
    if name.startswith("models/"):
        out.append((name[len("models/"):], hint, False))
    for sep in ("/", ":"):
        head, found, tail = name.partition(sep)
        if found and head.lower() in _PROVIDER_ALIASES and tail:
            out.append((tail, _PROVIDER_ALIASES[head.lower()], True))
    return out


def _user_price(name: str, spec: Mapping[str, Any]) -> Price:
    with localcontext(EXACT):  # the host's decimal context never changes a user's price either
        return _user_price_exact(name, spec)


def _user_price_exact(name: str, spec: Mapping[str, Any]) -> Price:
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
