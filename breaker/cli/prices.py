"""``breaker prices MODEL``: the rates the library will charge, and where they came from.

It asks the same ``PriceBook`` the engine uses (user overrides first, then
the genai-prices data bundled in the package), so what it prints is what
budgets are enforced with: no second source of truth.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

from ..checks import similar_models
from ..errors import ConfigError
from ..pricing import Price, PriceBook
from ._common import CliError
from .prices_update import add_arguments as add_update_arguments
from .render import Column, write_json, write_tables

__all__ = ["add_parser", "describe_price", "run"]

METERED = """Metered: text, audio, image and video input tokens (cache reads and writes
included), text, audio and image output tokens, reasoning, web and file search
fees, per-request fees, characters (text-to-speech), audio seconds
(transcription) and document pages. Service tiers (priority, flex), fast modes
and batch are billed at their own rates when the request or the response names
them. A model priced in any other unit (per message, annotated pages, video
output, citations) has no price here: its calls are refused as UnknownPrice,
never billed $0."""

HELP = "the rates the library uses for a model, and where they came from"
DESCRIPTION = """\
Show the rates breaker will charge for MODEL: input, output, cache read and cache
write per million tokens, long-context tiers (past a tier's input size, its rates
apply to the whole request, output included), and per-call fees (web searches,
requests). The source is either the genai-prices data bundled with the package
(never fetched over the network) or your own override.

Give your own prices the way Breaker(prices=...) takes them, in a JSON file:
  {"my-finetune": {"input": 3.0, "output": 12.0, "cache_read": 0.3}}
(USD per million tokens; "web_search" and "request" in USD each), or a string
naming the model whose price applies: {"prod-gpt4o": "gpt-4o"}.

""" + METERED

EXAMPLES = """\
examples:
  breaker prices gpt-4o
  breaker prices claude-sonnet-4-5 --provider anthropic
  breaker prices my-finetune --prices prices.json --format json"""

# genai-prices price keys -> (label, unit, multiplier to that unit)
RATE_LABELS: dict[str, tuple[str, str, int]] = {
    "input_mtok": ("input", "per 1M tokens", 1),
    "output_mtok": ("output", "per 1M tokens", 1),
    "cache_read_mtok": ("cache read", "per 1M tokens", 1),
    "cache_write_mtok": ("cache write (5 min)", "per 1M tokens", 1),
    "cache_write_1h_mtok": ("cache write (1 h)", "per 1M tokens", 1),
    "output_reasoning_mtok": ("reasoning output", "per 1M tokens", 1),
    "web_searches_kcount": ("web search fee", "per search", 1000),
    "storage_searches_kcount": ("file search fee", "per search", 1000),
    "requests_kcount": ("request fee", "per request", 1000),
    "input_audio_mtok": ("audio input", "per 1M tokens", 1),
    "cache_audio_read_mtok": ("audio cache read", "per 1M tokens", 1),
    "output_audio_mtok": ("audio output", "per 1M tokens", 1),
    "input_image_mtok": ("image input", "per 1M tokens", 1),
    "cache_image_read_mtok": ("image cache read", "per 1M tokens", 1),
    "output_image_mtok": ("image output", "per 1M tokens", 1),
    "input_video_mtok": ("video input", "per 1M tokens", 1),
    "input_mchars": ("input characters", "per 1M characters", 1),
    "audio_hours": ("audio", "per hour", 1),
    "input_audio_hours": ("audio input", "per hour", 1),
    "input_document_kpages": ("document pages", "per 1k pages", 1),
}




def add_parser(sub: Any) -> None:
    """Register ``breaker prices``."""
    p = sub.add_parser("prices", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", nargs="?", help="the model name as your requests give it (gpt-4o, "
                   "claude-sonnet-4-5, anthropic/claude-3-5-haiku-latest, …)")
    p.add_argument("--provider", metavar="P", help="the provider, when a name exists at several (openai, "
                   "anthropic, google, azure, aws, …)")
    p.add_argument("--prices", metavar="FILE", help="a JSON file of your own prices, as Breaker(prices=...) takes them")
    p.add_argument("--format", choices=("table", "json"), default="table", help="table (needs rich) or json")
    p.set_defaults(run=run)
    add_update_arguments(p)  # --update, --url, --data: prices_update.py (its run wraps this run)


def run(args: argparse.Namespace) -> int:
    """Print the price the engine would use; 2 (via ``CliError``) for a model with none."""
    book = PriceBook(_load_overrides(args.prices))
    price = book.lookup(args.model, args.provider)
    if price is None:
        raise CliError(_unknown(args.model, args.provider, book.why(args.model, args.provider)))
    info = describe_price(price)
    variants = [describe_price(v) for v in book.variants(args.model, args.provider)[1:]]
    if args.format == "json":
        write_json({**info, "variants": variants})
        return 0
    columns = [Column("rate", "rate"), Column("usd", "USD", _money, True), Column("unit", "unit")]
    tables = []
    for described in (info, *variants):
        name = f"{described['variant']} rates" if described["variant"] else "Base rates"
        for tier in described["tiers"]:
            title = (name if tier["above_input_tokens"] is None
                     else f"{name}, requests with more than {tier['above_input_tokens']:,} input tokens")
            tables.append((title, columns, tier["rates"]))
    where = f" at {info['provider']}" if info["provider"] else ""
    notes = [f"{info['model']}{where}: prices from {info['source']}."]
    if info["context_window"]:
        notes.append(f"Context window: {info['context_window']:,} tokens.")
    if len(info["tiers"]) > 1:
        notes.append("Past a tier's input size, that tier's rates apply to the whole request, output included.")
    if variants:
        notes.append("Variants apply when the request or its response names them (service_tier=\"priority\", "
                     "speed=\"fast\", batch jobs); rates a variant does not list are the base ones.")
    write_tables(tables, notes)
    return 0


def describe_price(price: Price) -> dict[str, Any]:
    """A JSON-ready description of a compiled price (rates as decimal strings, exact)."""
    tiers = []
    for threshold, rates in price.rates:
        rows = []
        for key, (label, unit, mult) in RATE_LABELS.items():
            if key in rates:
                rows.append({"rate": label, "key": key, "usd": str(_normal(Decimal(rates[key]) / mult)), "unit": unit})
        for key in sorted(set(rates) - set(RATE_LABELS)):  # a kind this command does not know yet
            rows.append({"rate": key, "key": key, "usd": str(_normal(Decimal(rates[key]))), "unit": key})
        tiers.append({"above_input_tokens": None if threshold < 0 else threshold, "rates": rows})
    return {
        "model": price.model,
        "provider": price.provider,
        "source": price.source,
        "context_window": price.context_window,
        "variant": price.variant,
        "tiers": tiers,
    }


def _normal(d: Decimal) -> Decimal:
    """Exact, with at least cents: 2.5 -> 2.50, 0.075 -> 0.075."""
    d = d.normalize()
    exponent = d.as_tuple().exponent  # an int for every finite Decimal ('n', 'N' or 'F' only for NaN and Infinity)
    return d.quantize(Decimal("0.01")) if isinstance(exponent, int) and exponent > -2 else d


def _money(text: str) -> str:
    return f"${text}"


def _load_overrides(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise CliError(f"cannot read --prices {path!r}: {e.strerror or e}") from None
    except ValueError as e:
        raise CliError(f"--prices {path!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"--prices {path!r} must hold an object like {{\"my-model\": {{\"input\": 3.0, \"output\": 12.0}}}}")
    try:
        PriceBook(data)
    except ConfigError as e:
        raise CliError(f"--prices {path!r}: {e}") from None
    return data


def _unknown(model: str, provider: str | None, why: str | None = None) -> str:
    where = f" at provider {provider!r}" if provider else ""
    lines = [f"no price is known for model {model!r}{where}" + (f": {why}." if why else ".")]
    close = _similar(model, provider)
    if close:
        lines.append(f"  Did you mean: {', '.join(close)}?")
    lines += [
        "  breaker never prices an unknown model at $0: calls to it raise UnknownPrice before they are sent.",
        "  Add its price where you build the Breaker (USD per million tokens; optional cache_read, cache_write):",
        f"    Breaker(prices={{{model!r}: {{'input': 3.0, 'output': 12.0}}}})",
        "  or pass Breaker(unknown_price='warn') to send such calls and enforce only token and call budgets.",
        f"  Check a price file with: breaker prices {model} --prices prices.json",
    ]
    return "\n".join(lines)


def _similar(model: str, provider: str | None) -> list[str]:
    """Bundled model ids that look like ``model`` (a typo is the usual cause)."""
    return similar_models(model, provider)
