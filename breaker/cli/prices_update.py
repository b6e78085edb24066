"""``breaker prices --update``: newer genai-prices data, fetched only when asked, and what changed.

The library never fetches prices by itself (not at import, not at call time):
budgets are enforced with the genai-prices data bundled in the installed
package. This command is the one way to get newer data, and it is explicit
end to end:

1. ``breaker prices --update`` downloads the data genai-prices publishes (the
   address its own ``UpdatePrices`` reads, or ``--url``; ``file://`` works for a
   copy fetched elsewhere), checks that genai-prices can read it, prints what
   changed against the data used so far (the file at ``--data`` if there is one,
   else the bundled data) and saves it to ``--data`` (default:
   ``~/.cache/agent-cost-breaker/genai-prices.json``).
2. Nothing reads that file unless told to. A program calls
   ``use_prices_file(path)`` before it builds its ``Breaker``: the file becomes
   genai-prices' *custom snapshot* (genai-prices' own mechanism, the one
   ``UpdatePrices`` uses), which every ``PriceBook`` built afterwards reads.
   ``breaker prices MODEL --data PATH`` shows a model's rates from it.

Reading genai-prices' payload needs its parser, ``genai_prices.types._providers_from_raw``
(the function ``UpdatePrices.fetch`` calls; genai-prices has no public one). That one
private name is used here only, and ``tests/cli/test_prices_update.py`` pins it, so a
genai-prices release that moves it fails a test, not a user's pricing: the bundled
data and ``breaker prices MODEL`` never go through this module.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from ._common import CliError

__all__ = ["add_arguments", "compare", "default_path", "fetch", "load", "parse", "run", "use_prices_file"]

MAX_BYTES = 256 * 1024 * 1024  # the published data is a few MB; anything this large is not it
TIMEOUT = 60.0
SHOWN = 25  # models listed per kind of change in the text output


def default_path() -> Path:
    """Where ``--update`` saves by default: ``$XDG_CACHE_HOME/agent-cost-breaker/genai-prices.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "agent-cost-breaker" / "genai-prices.json"


def default_url() -> str:
    """The address genai-prices' own ``UpdatePrices`` fetches from."""
    from genai_prices.update_prices import DEFAULT_UPDATE_URL

    return DEFAULT_UPDATE_URL


def fetch(url: str, timeout: float = TIMEOUT) -> bytes:
    """The payload at ``url`` (``https://``, ``http://`` or ``file://``), or a ``CliError`` saying why not."""
    if not url.startswith(("https://", "http://", "file://")):
        raise CliError(f"--url {url!r}: give an https:// address (or file:///path for a copy you fetched yourself)")
    request = urllib.request.Request(url, headers={"User-Agent": "agent-cost-breaker (breaker prices --update)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw: bytes = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise CliError(f"fetching {url} failed: HTTP {e.code} {e.reason}; check the address (--url) or try later") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise CliError(f"cannot fetch {url}: {reason}; check the network (or pass --url file:///path to a copy)") from None
    if len(raw) > MAX_BYTES:
        raise CliError(f"{url} sent more than {MAX_BYTES // 2**20} MB; that is not genai-prices data")
    return raw


def parse(raw: bytes | str, *, source: str, when: datetime | None = None) -> Any:
    """genai-prices data (its JSON list of providers) as a ``genai_prices.data_snapshot.DataSnapshot``."""
    from genai_prices import data_snapshot

    try:
        from genai_prices.types import _providers_from_raw
    except ImportError:
        raise CliError(
            "this genai-prices release no longer offers the parser `breaker prices --update` uses; "
            "install the genai-prices version agent-cost-breaker was tested with, or update agent-cost-breaker"
        ) from None
    try:
        payload = json.loads(raw)
    except ValueError as e:
        raise CliError(f"{source} is not JSON ({e}); it is not genai-prices data") from None
    if not isinstance(payload, list):
        raise CliError(f"{source} holds a JSON {type(payload).__name__}, not genai-prices' list of providers")
    try:
        providers = _providers_from_raw(payload)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CliError(f"{source} is not data this genai-prices can read: {first}") from None
    if not any(p.models for p in providers):
        raise CliError(f"{source} lists no models; refusing to use it")
    stamp = (when or datetime.now(timezone.utc)).astimezone().replace(tzinfo=None)  # genai-prices' own: naive local
    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=True, timestamp=stamp)


def load(path: str | os.PathLike[str]) -> Any:
    """The genai-prices data saved at ``path`` by ``--update``, as a ``DataSnapshot``."""
    try:
        raw = Path(path).read_bytes()
        mtime = os.path.getmtime(path)
    except OSError as e:
        raise CliError(f"cannot read the prices data at {os.fspath(path)!r}: {e.strerror or e}; "
                       f"create it with `breaker prices --update --data {os.fspath(path)}`") from None
    return parse(raw, source=os.fspath(path), when=datetime.fromtimestamp(mtime, tz=timezone.utc))


def use_prices_file(path: str | os.PathLike[str]) -> Any:
    """Price with the data saved at ``path`` from now on, in this process; returns the snapshot.

    Call it before building the ``Breaker``: a ``PriceBook`` keeps the prices it has
    looked up. ``genai_prices.data_snapshot.set_custom_snapshot(None)`` goes back to
    the bundled data.
    """
    from genai_prices import data_snapshot

    snapshot = load(path)
    data_snapshot.set_custom_snapshot(snapshot)
    return snapshot


def compare(old: Any, new: Any, when: datetime | None = None) -> dict[str, Any]:
    """What changed between two snapshots: models added, removed, repriced (rates in force at ``when``)."""
    when = when or datetime.now(timezone.utc)
    before, after = _models(old), _models(new)
    changed, later = [], []
    for key in sorted(before.keys() & after.keys()):
        was, now = _rates(before[key].get_prices(when)), _rates(after[key].get_prices(when))
        if was != now:
            changed.append({"model": _name(key), "rates": {
                k: [was.get(k), now.get(k)] for k in sorted(was.keys() | now.keys()) if was.get(k) != now.get(k)}})
        elif _schedule(before[key]) != _schedule(after[key]):
            later.append(_name(key))
    return {
        "added": [_name(k) for k in sorted(after.keys() - before.keys())],
        "removed": [_name(k) for k in sorted(before.keys() - after.keys())],
        "changed": changed,
        "changed_later": later,  # same rates today; dated prices or price variants (tiers, batch) differ
        "providers": len(new.providers),
        "models": len(after),
    }


def _models(snapshot: Any) -> dict[tuple[str, str], Any]:
    return {(p.id, m.id): m for p in snapshot.providers for m in p.models}


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def _rates(price: Any) -> dict[str, str]:
    """A price's rates as exact strings (``"2.5"``, ``"3 (4.5 past 200,000 input tokens)"``)."""
    out = {}
    for key, value in vars(price).items():
        if key.startswith("_") or value is None:
            continue
        if isinstance(value, Decimal):
            out[key] = _decimal(value)
        elif hasattr(value, "base") and hasattr(value, "tiers"):  # genai_prices.types.TieredPrices
            tiers = ", ".join(f"{_decimal(t.price)} past {t.start:,} input tokens" for t in value.tiers)
            out[key] = f"{_decimal(value.base)} ({tiers})"
        else:
            out[key] = str(value)
    return out


def _decimal(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _schedule(model: Any) -> str:
    return repr((model.prices, model.price_variants))


# ------------------------------------------------------------------ the command line

def add_arguments(parser: Any) -> None:
    """``--update``, ``--url`` and ``--data`` on ``breaker prices`` (whose ``run`` it wraps)."""
    parser.add_argument("--update", action="store_true",
                        help="fetch genai-prices' newest data, say what changed and save it to --data "
                             "(breaker never fetches prices unless you run this)")
    parser.add_argument("--url", metavar="URL", help="where --update fetches from (default: where genai-prices "
                        "publishes it; file:///path for a copy you fetched yourself)")
    parser.add_argument("--data", metavar="FILE", help=f"genai-prices data saved by --update: where --update saves "
                        f"it (default: {default_path()}), and, with MODEL, the data its rates are read from")
    parser.set_defaults(run=functools.partial(run, show=parser.get_default("run")))


def run(args: argparse.Namespace, show: Callable[[argparse.Namespace], int]) -> int:
    """``--update``, or ``show`` (``breaker prices MODEL``) with the data at ``--data``."""
    if args.update:
        if args.model:
            raise CliError(f"--update fetches the data of every model; then see {args.model}'s rates with "
                           f"`breaker prices {args.model} --data FILE`")
        return _update(args)
    if args.url:
        raise CliError("--url says where --update fetches from; add --update")
    if not args.model:
        raise CliError("name a MODEL (breaker prices gpt-4o), or pass --update to fetch newer genai-prices data")
    if args.data:
        snapshot = use_prices_file(args.data)
        print(f"breaker prices: rates from the genai-prices data in {args.data} (saved {_saved(snapshot)}), "
              f"not the bundled data", file=sys.stderr)
    return show(args)


def _update(args: argparse.Namespace) -> int:
    from genai_prices import data_snapshot

    url = args.url or default_url()
    path = Path(args.data) if args.data else default_path()
    raw = fetch(url)
    new = parse(raw, source=url)
    if path.exists():
        old = load(path)
        against = f"the data saved at {path} ({_saved(old)})"
    else:
        old, against = data_snapshot.get_snapshot(), f"the bundled genai-prices {_genai_version()} data"
    changes = compare(old, new)
    _save(path, raw)
    if getattr(args, "format", "table") == "json":
        json.dump({"url": url, "saved_to": str(path), "compared_with": against, **changes}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print("\n".join(_describe(changes, url, against, path)))
    return 0


def _describe(changes: dict[str, Any], url: str, against: str, path: Path) -> list[str]:
    lines = [f"Fetched genai-prices data from {url}: {_count(changes['providers'], 'provider')}, "
             f"{_count(changes['models'], 'model')}.",
             f"Compared with {against}:"]
    kinds = (("added", "model added", "models added"), ("removed", "model removed", "models removed"),
             ("changed_later", "model with new dated or variant prices", "models with new dated or variant prices"))
    if changes["changed"]:
        n = len(changes["changed"])
        lines.append(f"  {n:,} {'model' if n == 1 else 'models'} with new prices (USD per million tokens, "
                     f"per thousand for *_kcount):")
        for item in changes["changed"][:SHOWN]:
            rates = "; ".join(f"{key} {old or '-'} -> {new or '-'}" for key, (old, new) in item["rates"].items())
            lines.append(f"    {item['model']}: {rates}")
        if n > SHOWN:
            lines.append(f"    … and {n - SHOWN:,} more (--format json lists them all)")
    for key, one, many in kinds:
        names = changes[key]
        if names:
            more = f", … and {len(names) - SHOWN:,} more" if len(names) > SHOWN else ""
            lines.append(f"  {len(names):,} {one if len(names) == 1 else many}: {', '.join(names[:SHOWN])}{more}")
    if not (changes["changed"] or any(changes[k] for k, _, _ in kinds)):
        lines.append("  nothing changed: no model added or removed, no price changed.")
    lines += [
        f"Saved to {path}. breaker uses it only where you ask for it:",
        f"  breaker prices MODEL --data {path}",
        f"  in Python, before building the Breaker: from breaker.cli.prices_update import use_prices_file; "
        f"use_prices_file({str(path)!r})",
    ]
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _save(path: Path, raw: bytes) -> None:
    """Write ``raw`` to ``path`` whole or not at all (a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".genai-prices-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise CliError(f"cannot save the prices data to {path}: {e.strerror or e}; pass --data FILE somewhere "
                       f"writable") from None


def _saved(snapshot: Any) -> str:
    return f"{snapshot.timestamp:%Y-%m-%d %H:%M} local time"


def _genai_version() -> str:
    import genai_prices

    return str(getattr(genai_prices, "__version__", "?"))
