"""``breaker check-config PATH``: build a Breaker from a configuration file, and say what it holds.

Why a command: a configuration file is deployed by people who do not read the
service's code, and a mistake in it (a typo'd key, a budget of ``-1``, a Slack URL
pasted inline) should fail in CI or at review, not when the service starts. The
file is read exactly as ``Breaker.from_config`` reads it (no SDK is patched, no
call is made), and a short summary shows the budgets, the ledger and the alerts,
credentials hidden. A bad file exits 2 with the key, its value and the fix.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..redact import scrub
from ._common import CliError
from .render import visible

__all__ = ["add_parser", "run", "summary"]

HELP = "validate a TOML configuration file for Breaker.from_config (exit 2 names the key to fix)"
DESCRIPTION = """\
Read a configuration file as Breaker.from_config(PATH) does and build the Breaker
(without patching any SDK or making any call), then print its budgets, ledger and
alerts. Secrets are named in the file (url_env = "SLACK_WEBHOOK_URL",
ledger_env = "BREAKER_REDIS_URL") and read from the environment; they are never
printed. A bad file exits 2 with the key (e.g. budgets[1].usd), its value and the fix."""

EXAMPLES = """\
examples:
  breaker check-config /etc/breaker/breaker.toml
  SLACK_WEBHOOK_URL=https://hooks.slack.com/services/… breaker check-config breaker.toml"""


def add_parser(sub: Any) -> None:
    """Register ``breaker check-config``."""
    p = sub.add_parser("check-config", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="the TOML file, e.g. /etc/breaker/breaker.toml")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """0 and a summary when the file builds a Breaker; 2 (via ``CliError``) with the fix when not."""
    from ..configfile import load
    from ..engine import Breaker

    try:
        guard, config = load(Breaker, args.path)
    except ConfigError as e:
        raise CliError(str(e)) from None
    try:
        for line in summary(guard, config):
            print(visible(scrub(line)))
    finally:
        _close(guard)
    return 0


def summary(guard: Any, config: Any) -> list[str]:
    """What the file configures, one line each (ids and amounts, never a secret)."""
    lines = [f"{config.path}: OK", f"  ledger: {config.ledger}"]
    if guard.budgets:
        lines.append("  budgets:")
        for b in guard.budgets:
            extra = [b.on_exceed]
            if b.warn_at:
                extra.append("warn at " + ", ".join(f"{f:.0%}" for f in b.warn_at))
            if b.degrade_at is not None:
                extra.append(f"degrade from {b.degrade_at:.0%}")
            lines.append(f"    {b.describe()} ({'; '.join(extra)})")
    else:
        lines.append("  budgets: none (calls are priced and recorded, never refused for money)")
    lines.append("  loops: " + ("off" if guard.loops is None else f"on ({guard.loops.on_detect} on detection)"))
    if guard.degrade is not None:
        d = guard.degrade
        parts = [f"{k} -> {v}" for k, v in (d.model_map or {}).items()]
        parts += [f"{name.replace('_', ' ')} {getattr(d, name)}" for name in
                  ("max_output_tokens", "reasoning_effort", "keep_last_messages") if getattr(d, name) is not None]
        lines.append(f"  degrade: {', '.join(parts) or 'no change'}")
    lines.append("  alerts: " + ("; ".join(config.alerts) if config.alerts else "none"))
    own = config.raw.get("prices") or {}
    if own:
        lines.append(f"  prices of your own: {', '.join(sorted(own))}")
    lines.append(f"  unknown prices: {guard.unknown_price}; ledger unreachable: fail {guard.on_ledger_error}")
    if config.env:
        lines.append(f"  read from the environment (values not shown): {', '.join(dict.fromkeys(config.env))}")
    return lines


def _close(guard: Any) -> None:
    """A check leaves nothing running: the ledger's connections and the sinks' workers closed."""
    for sink in guard.alerts:
        close = getattr(sink, "close", None)
        if callable(close):
            try:
                close(0)
            except Exception:
                pass
    try:
        guard.ledger.close()
    except Exception:
        pass
