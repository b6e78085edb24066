"""The ``breaker`` command: ``demo``, ``report``, ``prices``, ``forecast``.

One module per command, each with ``add_parser(subparsers)`` and
``run(args) -> int``. ``main`` turns what a user can fix (``CliError``) into a
one-line message and exit status 2, like ``argparse`` does for bad
arguments, so no one is shown a traceback for a mistyped path.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..version import __version__
from ._common import CliError

__all__ = ["CliError", "build_parser", "main"]

DESCRIPTION = """\
agent-cost-breaker: budgets, exact pricing, loop detection and an unswallowable kill
for LLM agents. Start with `breaker demo` (no API key needed)."""


def build_parser() -> argparse.ArgumentParser:
    """The full command line (each command adds its own sub-parser)."""
    from . import check_config, dashboard, demo, forecast, grant, prices, report, trips

    parser = argparse.ArgumentParser(prog="breaker", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"agent-cost-breaker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (demo, report, prices, forecast, dashboard, check_config, grant, trips):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 a problem the user can fix)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as e:
        print(f"breaker {args.command}: error: {_shown(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"breaker {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `breaker report … | head`
        return 0


def _shown(message: str) -> str:
    """An error message as a terminal may show it: credentials hidden, each line's control
    characters escaped (a message can quote an id or a store's error text)."""
    from ..redact import scrub
    from .render import visible

    return "\n".join(visible(line) for line in scrub(message).split("\n"))
