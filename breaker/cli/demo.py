"""``breaker demo``: a runaway agent, watched and stopped live.

The agent of ``_agent.py`` runs against ``FakeLLM`` (no API key, no
network) through a real ``openai.OpenAI`` client wrapped by a real
``Breaker``. The terminal shows the session's spend against its budget as it
grows, each detection and degradation as it happens, the kill, and then the
session report. ``--live`` runs the same agent against the OpenAI API under
a budget of a cent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any, TypedDict

from ._agent import fake_script, run_agent
from ._common import CliError
from ._live import open_display
from .report import group_records
from .report_sections import waste_summary

__all__ = ["add_parser", "run"]

HELP = "a runaway agent against a built-in fake LLM, stopped live (no API key)"
DESCRIPTION = """\
Run a small agent that goes runaway three ways (a retry loop, tool thrash, then a
history that grows every step) under a session budget, and watch breaker detect
the loops, degrade the calls to a cheaper model, and kill the session when the
budget cannot pay for the next call. The agent catches every Exception and still
cannot swallow the kill.

By default the model is breaker.testing.FakeLLM, a local server speaking the
OpenAI API: no API key, no network, nothing spent. With --live and OPENAI_API_KEY
set, the same agent calls the real OpenAI API under a budget of $0.01."""


class Setup(TypedDict):
    """The model the agent asks for, the cheaper one it is degraded to, and the session budget in USD."""

    model: str
    cheaper: str
    budget: float


FAKE: Setup = {"model": "gpt-4o", "cheaper": "gpt-4o-mini", "budget": 0.05}
LIVE: Setup = {"model": "gpt-4o-mini", "cheaper": "gpt-4.1-nano", "budget": 0.01}


def add_parser(sub: Any) -> None:
    """Register ``breaker demo``."""
    p = sub.add_parser("demo", help=HELP, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--live", action="store_true", help="call the real OpenAI API (needs OPENAI_API_KEY; spends < $0.01)")
    p.add_argument("--ledger", metavar="PATH", help="also record the calls in this SQLite file, "
                   "for `breaker report --ledger PATH` afterwards")
    p.add_argument("--plain", action="store_true", help="plain lines instead of a live progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the runaway agent; 0 once it was killed as intended (1 if the offline run was not)."""
    if args.live and not os.environ.get("OPENAI_API_KEY"):
        raise CliError("--live calls the real OpenAI API and needs OPENAI_API_KEY in the environment; "
                       "run `breaker demo` without --live for the offline demo (no key needed)")
    try:
        import openai
    except ImportError:
        raise CliError("the demo drives the OpenAI SDK: pip install agent-cost-breaker[openai]") from None
    import breaker

    setup = LIVE if args.live else FAKE
    with ExitStack() as stack:
        ledger = _ledger(args.ledger, stack)
        display = stack.enter_context(open_display(setup["budget"], plain=args.plain))
        guard = breaker.Breaker(
            budgets=[breaker.Budget(usd=setup["budget"])],
            loops=breaker.LoopPolicy(max_identical=3, max_tool_repeats=3, on_detect="degrade"),
            degrade=breaker.Degrade(model_map={setup["model"]: setup["cheaper"]}, max_output_tokens=200),
            alerts=[display.event],
            ledger=ledger,
        )
        if args.live:
            client = openai.OpenAI(max_retries=0)
        else:
            from ..testing import FakeLLM

            fake = stack.enter_context(FakeLLM(default=fake_script))
            client = openai.OpenAI(base_url=fake.base_url, api_key="fake-key", max_retries=0)
        client = guard.wrap(client)
        # A fresh session per run: a kill is sticky, so re-running against the same
        # --ledger must not start inside the previous run's tripped session.
        session_id = f"demo-{uuid.uuid4().hex[:6]}"
        display.intro(session_id, setup["model"], setup["cheaper"],
                      "the OpenAI API" if args.live else "FakeLLM (offline)")

        started = time.monotonic()
        killed: BaseException | None = None
        session = None
        try:
            with guard.session(session_id, feature="support", user="demo") as session:
                run_agent(client, setup["model"], lambda phase, result: display.step(phase, result, session))
        except breaker.SessionKilled as e:
            killed = e
        display.done(killed)
        records = [r for r in ledger.records() if r.session == session_id]  # not earlier runs in --ledger
        display.report(session, setup["budget"], group_records(records, [], "model"), killed,
                       time.monotonic() - started)
        for text in waste_summary(records):  # where the money went: retries, loops, cache, history
            display.line("  " + text)
    if killed is None and not args.live:
        print("breaker demo: the agent was expected to be killed and was not; please report this", file=sys.stderr)
        return 1
    return 0


def _ledger(path: str | None, stack: ExitStack) -> Any:
    from .. import ledgers

    if path is None:
        return ledgers.Memory(keep_records=10_000)
    try:
        ledger = ledgers.SQLite(path)
    except Exception as e:
        raise CliError(f"cannot open --ledger {path!r} as a SQLite ledger: {e}") from None
    stack.callback(ledger.close)
    return ledger
