"""``breaker grant``: an operator adds headroom to one scope on a shared ledger and lifts its trip.

The same as ``Breaker.grant`` (``engine.trips.grant``), from a shell: the grant is written to
the ledger, so every process using it sees it at its next call, and logged there with who
granted (``--by``, default the login name), when and how much (``breaker report`` lists it).
What a grant raises: the limits of the scope's lifetime budgets and of its calendar-period
budgets for the current period; rolling windows free by themselves (``ledgers.base``).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from typing import Any

from ..budgets import TOKENS, USD, format_amount
from ..engine.trips import grant
from ..errors import ConfigError, LedgerError
from ..ledgers.base import GrantRecord
from ..redact import scrub
from ._common import CliError, add_ledger_arguments, open_ledger
from .render import visible, write_json

__all__ = ["add_parser", "grant_row", "read_grants", "run"]

HELP = "give a tripped (or nearly spent) scope more budget, on a shared ledger"
DESCRIPTION = """\
Give one scope (a session, feature, user, tag value, or the global scope) more
budget on a shared ledger, and lift its trip: every process using the ledger sees
it at its next call. The limits of the scope's whole-life budgets, and of its
calendar-period budgets for the current period, rise by the amount; rolling
windows free by themselves. The spend itself is not changed (reports show all of
it). The grant is logged with who granted (--by, default your login name), when
and how much; `breaker report` lists grants, `breaker trips` what is tripped."""

EXAMPLES = """\
examples:
  breaker grant --ledger /var/lib/app/breaker.db --per session --key ticket-42 --usd 1.00
  breaker grant --ledger redis://cache:6379/0 --per feature --key summarize --usd 50 --by alice
  breaker grant --ledger breaker.db --per user --key acme --tokens 200000 --calls 50"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("grant", help=HELP, description=DESCRIPTION,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--per", default="session", metavar="SCOPE",
                   help="session (default), feature, user, global, or tag:NAME, as in Budget(per=...)")
    p.add_argument("--key", metavar="ID", help="the session id, feature, user or tag value (not for global)")
    p.add_argument("--usd", metavar="DOLLARS", help="dollars of headroom, e.g. 1.00")
    p.add_argument("--tokens", type=int, metavar="N", help="tokens of headroom")
    p.add_argument("--calls", type=int, metavar="N", help="calls of headroom")
    p.add_argument("--by", metavar="NAME", help="who grants, for the record (default: your login name)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ledger = open_ledger(args.ledger, args.prefix)
    try:
        record = grant(ledger, args.usd, args.tokens, args.calls, per=args.per, key=args.key, by=args.by,
                       now=time.time())
    except ConfigError as e:
        raise CliError(str(e).replace("grant(", "breaker grant (", 1)) from None
    except LedgerError as e:
        raise CliError(scrub(str(e))) from None
    finally:
        _close(ledger)
    if args.format == "json":
        write_json(grant_row(record))
        return 0
    lifted = (f"{record.lifted} trip marker{'s' if record.lifted != 1 else ''} lifted" if record.lifted
              else "it was not tripped")
    print(f"Granted {_amounts(record)} to {visible(record.scope)} by {visible(record.by)}: its lifetime and period budgets have "
          f"that much more headroom ({record.counters} counter{'s' if record.counters != 1 else ''}); {lifted}. "
          f"Every process using this ledger sees it at its next call.")
    return 0


def _amounts(record: GrantRecord) -> str:
    parts = [format_amount(m, a) for m, a in ((USD, record.usd_nano), (TOKENS, record.tokens), (2, record.calls)) if a]
    return " and ".join(parts)


def grant_row(record: GrantRecord) -> dict[str, Any]:
    """A grant as JSON and the report show it."""
    return {"at": datetime.fromtimestamp(record.at, tz=timezone.utc).isoformat(timespec="seconds"),
            "scope": record.scope, "usd": record.usd_nano / 1e9, "usd_nano": record.usd_nano,
            "tokens": record.tokens, "calls": record.calls, "by": record.by, "amount": _amounts(record),
            "counters": record.counters, "trips_lifted": record.lifted}


def read_grants(spec: str, since: float | None, prefix: str = "breaker:") -> list[GrantRecord]:
    """The grants logged on the ledger ``spec`` since ``since`` (for ``breaker report``)."""
    ledger = open_ledger(spec, prefix)
    try:
        return list(getattr(ledger, "grants", lambda since=None: [])(since))
    except Exception as e:
        raise CliError(f"cannot read the grants on the ledger at {scrub(spec)}: {scrub(str(e))}") from None
    finally:
        _close(ledger)


def _close(ledger: Any) -> None:
    try:
        ledger.close()
    except Exception:
        pass
