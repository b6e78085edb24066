"""What ``breaker demo`` shows while the agent runs: spend against budget, events, the report.

Two renderings of the same lines: a rich progress bar that fills as the
session spends (in a terminal), or plain lines (in a pipe, in CI, with
``--plain``, or without the ``cli`` extra). Both get the same calls in the
same order, so what a test reads from a pipe is what a person sees.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..events import Event
from ..pricing import NANO
from ._common import CliError, need_rich, usd
from .render import visible

__all__ = ["Display", "open_display"]

LABELS = {
    "threshold": "BUDGET",
    "loop": "LOOP",
    "degraded": "DEGRADE",
    "tripped": "KILL",
    "unknown_price": "PRICE",
    "ledger_error": "LEDGER",
}
STYLES = {"BUDGET": "yellow", "LOOP": "magenta", "DEGRADE": "cyan", "KILL": "bold red"}
PACE = 0.12  # seconds between calls in a terminal, so a person can follow


def _money(amount_usd: float) -> str:
    return usd(round(amount_usd * NANO))


class Display:
    """Plain lines on stdout; ``RichDisplay`` adds the live bar."""

    pace = 0.0

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.calls = 0
        self.spent = 0.0
        self._last: dict[str, str] = {}  # the last message of each kind

    def line(self, text: str, style: str | None = None) -> None:
        print(visible(text), flush=True)  # ids and provider text, literally (no escape sequences)

    def progress(self, phase: str) -> None:
        """Move the spend bar (plain lines carry the figure instead)."""

    def intro(self, session_id: str, model: str, cheaper: str, where: str) -> None:
        self.line(f"A runaway agent on {model} against {where}, in session {session_id!r} "
                  f"with a budget of {_money(self.budget)}.")
        self.line(f"Loops degrade the calls to {cheaper}; the budget kills the session. "
                  f"The agent catches every Exception.")
        self.line("")

    def step(self, phase: str, result: Any, session: Any) -> None:
        self.calls += 1
        if isinstance(result, BaseException):
            self.line(f"{self.calls:>3}  {phase:<14}  agent swallowed {type(result).__name__}: {result}")
        else:
            spent = session.cost_usd
            delta, self.spent = spent - self.spent, spent
            usage = getattr(result, "usage", None)
            tokens = (f"{usage.prompt_tokens:>6,} in {usage.completion_tokens:>4,} out" if usage is not None
                      else "usage unknown")
            self.line(f"{self.calls:>3}  {phase:<14}  {getattr(result, 'model', '?'):<12} {tokens}  "
                      f"+{_money(delta):<8} {_money(spent)} of {_money(self.budget)} "
                      f"({spent / self.budget:.0%})")
        self.progress(phase)
        if self.pace:
            time.sleep(self.pace)

    def event(self, event: Event) -> None:
        """An alert sink: every event the guard emits becomes a line."""
        label = LABELS.get(event.kind)
        if label is None:
            return
        if self._last.get(event.kind) == event.message:  # a detector that keeps firing: say so, briefly
            self.line(f"     {label:<8} the same again", STYLES.get(label))
            return
        self._last[event.kind] = event.message
        self.line(f"     {label:<8} {event.message}", STYLES.get(label))

    def done(self, killed: BaseException | None) -> None:
        self.line("")
        if killed is not None:
            self.line("The agent's `except Exception` never saw the kill (breaker.Tripped is a BaseException); "
                      "the session boundary raised:")
            self.line(f"SessionKilled: {killed}", "bold red")
        else:
            self.line("The agent finished without being killed.")

    def report(self, session: Any, budget: float, by_model: Sequence[Any], killed: Any, elapsed: float) -> None:
        """The session report: totals, the stop reason, spend by model."""
        self.line("")
        self.line(f"Session report: {session.id} (feature {session.feature}, user {session.user})", "bold")
        self.line(f"  {session.calls} calls, {session.tokens:,} tokens, {_money(session.cost_usd)} "
                  f"of a {_money(budget)} budget; {sum(g.degraded_calls for g in by_model)} calls degraded")
        if killed is not None:
            self.line(f"  stopped by: {killed.reason}; every later call in the session is refused before it is sent")
        from .report import table_columns, table_row

        rows = [table_row(g) for g in by_model]
        try:
            need_rich()
        except CliError:
            for r in rows:
                self.line(f"  {r['key']:<14} {r['calls']:>3} calls {r['input_tokens']:>8,} in "
                          f"{r['output_tokens']:>6,} out  {r['cost']}  {r['degraded_calls']} degraded")
        else:
            from .render import write_tables

            columns = table_columns("model", ("key", "calls", "input_tokens", "output_tokens", "cost", "degraded_calls"))
            write_tables([("Spend by model", columns, rows)], console=self.console())
        self.line(f"  ran in {elapsed:.1f}s")

    def console(self) -> Any:
        """Where tables go (a fresh rich console on stdout)."""
        sys.stdout.flush()
        return None


class RichDisplay(Display):
    """The same lines above a live bar of the session's spend against its budget."""

    pace = PACE

    def __init__(self, budget: float, progress: Any) -> None:
        super().__init__(budget)
        self._progress = progress
        self._task = progress.add_task("starting", total=budget, spent=_money(0), limit=_money(budget))

    def line(self, text: str, style: str | None = None) -> None:
        from rich.text import Text

        self._progress.console.print(Text(visible(text), style=style or ""), highlight=False)

    def done(self, killed: BaseException | None) -> None:
        self._progress.update(self._task, description="KILLED" if killed is not None else "finished")
        self._progress.stop()  # the report below is printed under the final bar, not redrawn with it
        super().done(killed)

    def console(self) -> Any:
        return self._progress.console

    def progress(self, phase: str) -> None:
        self._progress.update(self._task, completed=min(self.spent, self.budget), description=phase,
                              spent=_money(self.spent))


@contextmanager
def open_display(budget: float, *, plain: bool = False) -> Iterator[Display]:
    """A rich display in a terminal (when rich is installed), plain lines otherwise."""
    if plain or not sys.stdout.isatty():
        yield Display(budget)
        return
    try:
        need_rich()
    except CliError:
        yield Display(budget)
        return
    from rich.progress import BarColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("[bold]session spend[/] {task.description:<14}"),
        BarColumn(bar_width=40),
        TextColumn("{task.fields[spent]} of {task.fields[limit]}"),
        transient=False,
    )
    with progress:
        yield RichDisplay(budget, progress)
