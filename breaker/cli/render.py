"""Writing rows out as a terminal table (rich), JSON or CSV.

Commands build plain rows (dicts of machine values: ints, floats, strings)
and a list of ``Column``s; this module is the only place that knows about
output formats, so every command offers the same three. ``table`` uses
``rich`` when it is installed (the ``cli`` extra) and plain aligned text
when it is not; JSON and CSV never need it.

Ids (sessions, features, users, models) come from whoever called the library, so
they are shown literally and harmlessly: in tables as ``rich`` text, never markup
(``[link=...]`` stays those characters), or as plain text, with every character
Python does not print as itself written as its escape (ESC as ``\\x1b``, a right-to-left override
as ``\\u202e``); in CSV with a ``'`` before a cell that a spreadsheet would run as a
formula (one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return). JSON
escapes by itself and is left exactly as the data is.
"""

from __future__ import annotations

import csv
import json
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TextIO

from ._common import have_rich, need_rich

__all__ = ["Column", "FORMATS", "csv_cell", "visible", "write_csv", "write_json", "write_plain", "write_tables"]

TableSpec = tuple[str, Sequence["Column"], Sequence[dict[str, Any]]]
"""``(title, columns, rows)``: one table as the commands hand it over."""

FORMATS = ("table", "json", "csv")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as the start of a formula


def visible(text: str) -> str:
    """``text`` with each character that does not print as itself shown as its Python escape."""
    if text.isprintable():  # the usual id: nothing to do
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def csv_cell(value: Any) -> Any:
    """A CSV value no spreadsheet runs: text that starts like a formula gets a leading ``'``
    (numbers are written as numbers, a negative one included)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


@dataclass(frozen=True)
class Column:
    """One column: the row key, its header, how a table shows a value, and alignment."""

    key: str
    header: str
    show: Callable[[Any], str] = str
    numeric: bool = False


def write_json(payload: Any, out: TextIO | None = None) -> None:
    """Indented JSON with a trailing newline (stable key order for diffs)."""
    out = out or sys.stdout
    json.dump(payload, out, indent=2, default=str)
    out.write("\n")


def write_csv(columns: Sequence[Column], rows: Iterable[dict[str, Any]], out: TextIO | None = None) -> None:
    """CSV with a header of column keys and machine values (no currency signs)."""
    out = out or sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c.key) is None else csv_cell(row.get(c.key)) for c in columns])


def write_tables(tables: Sequence[TableSpec], notes: Sequence[str] = (), console: Any = None) -> None:
    """Rich tables, one per ``(title, columns, rows)``, then notes, sized to the terminal;
    plain text tables (``write_plain``) when ``rich`` is not installed."""
    if console is None and not have_rich():
        write_plain(tables, notes)
        return
    need_rich()
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False)
    for title, columns, rows in tables:
        cells = [[visible(_cell(c, row.get(c.key))) for c in columns] for row in rows]
        table = Table(title=Text(visible(title)), title_justify="left", title_style="bold", header_style="bold",
                      box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for i, c in enumerate(columns):
            widest = max((len(r[i]) for r in cells), default=1)
            header = max(len(line) for line in c.header.splitlines() or [""])
            # Figures are never cut or wrapped (write long headers on two lines); names fold if they must.
            table.add_column(Text(c.header), justify="right" if c.numeric else "left", no_wrap=c.numeric,
                             min_width=max(widest, header) if c.numeric else min(max(widest, header), 24),
                             overflow="fold")
        for r in cells:
            table.add_row(*(Text(cell) for cell in r))  # Text, not str: rich would read a str as markup
        console.print(table)
        console.print()
    for note in notes:
        console.print(Text(visible(note)), highlight=False)


def write_plain(tables: Sequence[TableSpec], notes: Sequence[str] = (), out: TextIO | None = None) -> None:
    """The same tables as plain text: a title, headers over a rule, aligned columns (figures to
    the right), then the notes. Cells are escaped as in rich tables and never cut: a log file or
    a pipe has no width to fit."""
    out = out or sys.stdout
    for title, columns, rows in tables:
        cells = [[visible(_cell(c, row.get(c.key))) for c in columns] for row in rows]
        heads = [[visible(line) for line in c.header.splitlines() or [""]] for c in columns]
        depth = max((len(h) for h in heads), default=0)
        heads = [[""] * (depth - len(h)) + h for h in heads]  # a two-line header sits on the rule
        widths = [max([_width(text) for text in heads[i]] + [_width(r[i]) for r in cells] + [1])
                  for i in range(len(columns))]

        def line(texts: Sequence[str]) -> str:
            return "  ".join(_pad(t, w, c.numeric) for t, w, c in zip(texts, widths, columns)).rstrip()

        out.write(visible(title) + "\n")
        for d in range(depth):
            out.write(line([h[d] for h in heads]) + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write(line(r) + "\n")
        out.write("\n")
    for note in notes:
        out.write(visible(note) + "\n")


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (CJK) characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _cell(column: Column, value: Any) -> str:
    if value is None:
        return "-"
    return column.show(value)
