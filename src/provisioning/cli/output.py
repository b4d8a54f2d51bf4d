"""What the CLI prints: tables that stay whole at any width, JSON/YAML, colours only
on a terminal (never with ``NO_COLOR``), control characters of data never reaching
a terminal.

Plain Python on purpose: the fast paths (``task list``, ``env``) print through this
module without importing Rich."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple, TextIO

# A cell or a part of a line: plain text, or (text, style).
Part = str | tuple[str, str]

ANSI = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "bold red": "1;31",
    "bold green": "1;32",
}

# Escape sequences (CSI, OSC) whole, then every other C0/C1 control but tab and newline.
CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)

STATUS_STYLE = {
    "pending": "yellow",
    "queued": "yellow",
    "running": "cyan",
    "cancelling": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "timed_out": "red",
    "rolled_back": "magenta",
    "rollback_failed": "red",
    "ok": "green",
    "changed": "yellow",
}

SHORT_ID = 8


class Format(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"

    @property
    def machine(self) -> bool:
        return self in (Format.JSON, Format.YAML)


class BadFormat(ValueError):
    """``--output`` names no known format."""


def choose_format(output: str | None, json_out: bool) -> Format:
    if json_out:
        if output not in (None, "json"):
            raise BadFormat(f"--json and --output {output} exclude each other")
        return Format.JSON
    if output is None:
        return Format.TABLE
    try:
        return Format(output.lower())
    except ValueError:
        raise BadFormat(
            f"--output {output!r}: expected one of {', '.join(f.value for f in Format)}"
        ) from None


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def colour_on(stream: TextIO) -> bool:
    """Colours only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    return (
        is_terminal(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


def strip_controls(text: str) -> str:
    return CONTROL.sub("", text)


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit tables to: the terminal's (``COLUMNS`` wins), or ``None`` on a
    pipe or file, where nothing is wrapped or dropped."""
    if not is_terminal(stream):
        return None
    import shutil  # with it come bz2 and lzma: only for a terminal

    return shutil.get_terminal_size().columns


def paint(text: str, style: str | None, colour: bool) -> str:
    code = ANSI.get(style or "")
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code and text else text


def status_part(status: str) -> tuple[str, str]:
    return (status, STATUS_STYLE.get(status, ""))


def short_id(value: str) -> str:
    return value[:SHORT_ID]


def line(*parts: Part, stream: TextIO | None = None) -> None:
    """One line of parts; data is stripped of control characters on a terminal."""
    target = stream or sys.stdout
    colour = colour_on(target)
    tty = is_terminal(target)
    pieces = []
    for part in parts:
        text, style = (part, None) if isinstance(part, str) else part
        pieces.append(paint(strip_controls(text) if tty else text, style, colour))
    target.write("".join(pieces) + "\n")
    target.flush()


def notice(message: str, label: str = "notice") -> None:
    """One message on stderr."""
    style = "bold red" if label == "error" else "yellow"
    line((f"{label}:", style), " ", message, stream=sys.stderr)


def data(value: Any, fmt: Format = Format.JSON) -> None:
    """``value`` as JSON (indented) or YAML on stdout."""
    if fmt is Format.YAML:
        import yaml

        text = yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(value, indent=2, default=str) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    """JSON's view of ``value`` (datetimes as text), which YAML then dumps."""
    return json.loads(json.dumps(value, default=str))


class Column(NamedTuple):
    """``drop``: 0 is always shown; to fit a narrow terminal the highest numbers go
    first. ``wrap=False`` keeps a cell on one line (ids, statuses, steps). ``wide``:
    shown with ``-o wide`` only."""

    header: str
    drop: int = 0
    wrap: bool = True
    wide: bool = False


class Table:
    def __init__(self, columns: Sequence[Column], rows: list[list[Part]] | None = None) -> None:
        self.columns = columns
        self.rows: list[list[Part]] = [] if rows is None else rows

    def add_row(self, *cells: Part | None) -> None:
        self.rows.append([cell if cell is not None else "" for cell in cells])

    def render(self, width: int | None, *, wide: bool = False, colour: bool = False) -> list[str]:
        """The table's lines, fitted to ``width`` (``None``: natural widths); a last
        line names the columns left out to fit, if any."""
        shown = [i for i, c in enumerate(self.columns) if wide or not c.wide]
        texts = [[_text(row[i]) for i in range(len(self.columns))] for row in self.rows]
        natural = {
            i: max([len(self.columns[i].header), *(len(r[i]) for r in texts)]) for i in shown
        }
        hidden: list[int] = []
        widths = dict(natural)
        if width is not None and not wide:
            while _total(_floors(widths, self.columns)) > width:
                droppable = [i for i in widths if self.columns[i].drop > 0]
                if not droppable:
                    break
                gone = max(droppable, key=lambda i: (self.columns[i].drop, i))
                hidden.append(gone)
                del widths[gone]
            _shrink(widths, width, self.columns)
        order = [i for i in shown if i in widths]
        out = [
            _join(
                [(self.columns[i].header, "bold") for i in order], order, widths, colour, wrap=None
            )
        ]
        for row, text in zip(self.rows, texts, strict=True):
            styles = [None if isinstance(row[i], str) else row[i][1] for i in order]
            cells = [(text[i], style) for i, style in zip(order, styles, strict=True)]
            out.extend(_join(cells, order, widths, colour, wrap=self.columns).splitlines())
        if hidden:
            names = ", ".join(self.columns[i].header for i in sorted(hidden))
            out.append(f"({names} left out to fit {width} columns; -o wide shows them)")
        return out

    def print(self, fmt: Format = Format.TABLE, stream: TextIO | None = None) -> None:
        target = stream or sys.stdout
        width = None if fmt is Format.WIDE else terminal_width(target)
        # Cells are stripped of control characters already; the escapes left are ours.
        for text in self.render(width, wide=fmt is Format.WIDE, colour=colour_on(target)):
            target.write(text + "\n")
        target.flush()


def _text(cell: Part) -> str:
    text = cell if isinstance(cell, str) else cell[0]
    return strip_controls(text.replace("\n", " ").replace("\t", " "))


def _total(widths: dict[int, int]) -> int:
    return sum(widths.values()) + 2 * max(len(widths) - 1, 0)


# A wrapping column is narrowed to this before a lesser column is left out.
WRAP_FLOOR = 16


def _floors(widths: dict[int, int], columns: Sequence[Column]) -> dict[int, int]:
    return {
        i: min(w, max(len(columns[i].header), WRAP_FLOOR)) if columns[i].wrap else w
        for i, w in widths.items()
    }


def _shrink(widths: dict[int, int], width: int, columns: Sequence[Column]) -> None:
    """Narrow the wrapping columns, widest first, down to their floor."""
    floors = {i: w for i, w in _floors(widths, columns).items() if columns[i].wrap}
    while _total(widths) > width:
        candidates = [i for i in floors if widths[i] > floors[i]]
        if not candidates:
            return  # What cannot wrap stays whole; the terminal folds the line.
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1


# Where a long cell may break: after whitespace, or after a separator of names and paths.
_CHUNK = re.compile(r"\s+|[^\s/:@,=-]*[/:@,=-]|[^\s/:@,=-]+")


def wrap_text(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken at spaces or after ``/ : @ , = -``;
    a part longer than a whole line is split where it must."""
    lines: list[str] = []
    current = ""
    for chunk in _CHUNK.findall(text):
        if chunk.isspace():
            if current and len(current) < width:
                current += " "
            continue
        while len(chunk) > width:
            if current.strip():
                lines.append(current.rstrip())
                current = ""
            lines.append(chunk[:width])
            chunk = chunk[width:]
        if len(current) + len(chunk) > width:
            lines.append(current.rstrip())
            current = ""
        current += chunk
    if current.strip() or not lines:
        lines.append(current.rstrip())
    return lines


def _join(
    cells: list[tuple[str, str | None]],
    order: list[int],
    widths: dict[int, int],
    colour: bool,
    *,
    wrap: Sequence[Column] | None,
) -> str:
    """One row, as many lines as its tallest wrapped cell."""
    wrapped: list[list[str]] = []
    for (text, _), i in zip(cells, order, strict=True):
        if wrap is not None and wrap[i].wrap and len(text) > widths[i]:
            wrapped.append(wrap_text(text, widths[i]))
        else:
            wrapped.append([text])
    height = max(len(w) for w in wrapped)
    lines = []
    for n in range(height):
        parts = []
        for k, ((_, style), i) in enumerate(zip(cells, order, strict=True)):
            piece = wrapped[k][n] if n < len(wrapped[k]) else ""
            last = k == len(order) - 1
            pad = "" if last else " " * (widths[i] - len(piece) + 2)
            parts.append(paint(piece, style, colour) + pad)
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)
