"""What every command shares: the user-facing error, ledgers, times, rich.

A command never prints a traceback for something the user can fix: it raises
``CliError`` with a sentence that says what to do, and ``main`` prints it and
exits with status 2 (the status ``argparse`` uses for bad arguments).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from ..budgets import parse_window
from ..errors import ConfigError
from ..ledgers.base import CallRecord
from ..redact import scrub

__all__ = [
    "CliError", "History", "add_ledger_arguments", "describe_span", "have_rich", "need_rich", "open_ledger",
    "parse_period", "parse_since", "read_history", "usd",
]

RICH_MISSING = (
    "this output needs the 'rich' package: pip install agent-cost-breaker[cli] "
    "(or use --format json / --format csv, which need nothing extra)"
)

Outcome = tuple[float, str, "str | None", "str | None", str]  # (at, session, feature, user, name)


class CliError(Exception):
    """A problem the user can fix; ``main`` prints it and exits with status 2."""


def have_rich() -> bool:
    """Whether ``rich`` (the ``cli`` extra) can be imported: tables use it when it can, plain text
    otherwise, so ``breaker report`` works on a bare install too."""
    try:
        need_rich()
    except CliError:
        return False
    return True


def need_rich() -> Any:
    """Import ``rich`` (the ``cli`` extra) or explain how to install it.

    Imported lazily so that ``--format json|csv`` and the library itself never
    need it.
    """
    try:
        import rich  # noqa: F401
        import rich.console
        import rich.table
    except ImportError:
        raise CliError(RICH_MISSING) from None
    return rich


def parse_since(text: str | None, now: float) -> float | None:
    """``--since``: a duration back from now (``90m``, ``1h``, ``7d``) or an ISO date/time.

    A date or time without a zone is read as UTC, because ledgers store UTC
    epoch seconds and a report should not shift with the reader's laptop.
    """
    if text is None:
        return None
    try:
        return now - parse_window(text, what="--since")
    except ConfigError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--since {text!r} is neither a duration nor a date; write e.g. --since 1h, --since 7d "
            f"or --since 2026-11-01 (ISO date, UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_period(text: str) -> int:
    """``--period``: a duration like ``7d`` or ``30d``, in seconds."""
    try:
        return parse_window(text, what="--period")
    except ConfigError:
        raise CliError(f"--period {text!r} is not a duration; write e.g. --period 7d, --period 30d or --period 12h") from None


def add_ledger_arguments(parser: Any) -> None:
    """``--ledger`` and ``--prefix``, the same for every command that reads a ledger."""
    parser.add_argument("--ledger", required=True, metavar="PATH|redis://…",
                        help="the SQLite ledger file (a path or sqlite:///abs/path.db), or a redis:// URL, "
                             "your Breaker writes to")
    parser.add_argument("--prefix", default="breaker:", metavar="P",
                        help="the key prefix of a Redis ledger, as given to ledgers.Redis(url, prefix=...) "
                             "(default: breaker:)")


def open_ledger(spec: str, prefix: str = "breaker:") -> Any:
    """The ledger a ``--ledger`` argument names: a SQLite file, or a ``redis://`` URL.

    A missing file is an error rather than a new empty ledger: a report of a
    mistyped path would otherwise silently show nothing.
    """
    from .. import ledgers
    from ..configfile import REDIS_SCHEMES, SQLITE_SCHEME, parse_ledger_url

    if spec.startswith(SQLITE_SCHEME):  # the configuration file's spelling: sqlite:///abs/path.db
        try:
            spec = parse_ledger_url(spec)[1] or spec
        except ConfigError as e:
            raise CliError(str(e).replace("ledger = ", "--ledger ", 1)) from None
    if spec.startswith(REDIS_SCHEMES):
        try:
            ledger = ledgers.Redis(spec, prefix=prefix)
        except ImportError:
            raise CliError("a redis:// ledger needs the redis client: pip install agent-cost-breaker[redis]") from None
        except Exception as e:
            raise CliError(f"cannot open the Redis ledger at {scrub(spec)}: {scrub(str(e))}") from None
        return ledger
    if not os.path.exists(spec):
        raise CliError(
            f"no ledger at {spec!r}: pass the SQLite file your Breaker writes "
            f"(Breaker(ledger=breaker.ledgers.SQLite({spec!r}))) or a redis:// URL"
        )
    if os.path.isdir(spec):
        raise CliError(f"{spec!r} is a directory; pass the SQLite ledger file inside it")
    _check_sqlite_ledger(spec)
    try:
        return ledgers.SQLite(spec)
    except Exception as e:
        raise CliError(f"cannot open {spec!r} as a breaker SQLite ledger: {e}") from None


def _check_sqlite_ledger(path: str) -> None:
    """Refuse a file that is not a breaker ledger *before* ``SQLite(path)`` opens it.

    ``SQLite(path)`` creates its tables in whatever database it is given; a
    read-only command must not add them to someone's unrelated database.
    """
    import sqlite3
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise CliError(f"cannot read {path!r} as a SQLite ledger: {e}") from None
    if "records" not in tables:
        raise CliError(
            f"{path!r} is not a breaker ledger (it has no call records); pass the file your Breaker "
            f"writes to: Breaker(ledger=breaker.ledgers.SQLite(path))"
        )


class History:
    """Call records and session outcomes read from a ledger, oldest first."""

    def __init__(self, records: list[CallRecord], outcomes: list[Outcome], since: float | None, now: float) -> None:
        self.records = records
        self.outcomes = outcomes
        self.since = since
        self.now = now

    @property
    def first(self) -> float:
        """When the earliest call in view was made."""
        return self.records[0].at if self.records else self.now


def read_history(spec: str, since_text: str | None, *, prefix: str = "breaker:", now: float | None = None) -> History:
    """Open ``spec`` and read what happened since ``since_text``; refuse an empty view."""
    now = time.time() if now is None else now
    since = parse_since(since_text, now)
    ledger = open_ledger(spec, prefix)
    try:
        try:
            records = sorted(ledger.records(since), key=lambda r: r.at)
            outcomes_of = getattr(ledger, "outcomes", None)
            outcomes: list[Outcome] = list(outcomes_of(since)) if outcomes_of is not None else []
        except Exception as e:
            raise CliError(f"cannot read the ledger at {scrub(spec)}: {scrub(str(e))}") from None
    finally:
        close = getattr(ledger, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
    if not records:
        when = f" since {_when(since)}" if since is not None else ""
        raise CliError(
            f"the ledger at {scrub(spec)} holds no call records{when}. Calls are recorded when a Breaker "
            f"uses this ledger (Breaker(ledger=breaker.ledgers.SQLite(path))) and makes calls"
            + ("; try a longer --since" if since is not None else "")
        )
    return History(records, outcomes, since, now)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def describe_span(history: History, start: float | None = None) -> str:
    """What a report covers, e.g. ``"from 2026-11-23 09:00 UTC to 2026-11-23 17:00 UTC"``."""
    if start is None:
        start = history.since if history.since is not None else history.first
    return f"from {_when(start)} to {_when(history.now)}"


def usd(nano: int | None) -> str:
    """Nano-USD as a person reads it (the library's own formatting)."""
    from ..budgets import USD, format_amount

    if nano is None:
        return "unpriced"
    return format_amount(USD, nano)

