"""How the CLI prints: tables that fit the terminal, colours on a terminal only, JSON for
scripts, times as an operator reads them, progress bars for long bulk operations."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import orjson

# Colours by job state, worker health, ...; click.echo drops them when stdout is not a TTY.
COLOURS = {
    "running": "cyan",
    "ready": "yellow",
    "held": "yellow",
    "waiting": "blue",
    "delayed": "blue",
    "dead": "red",
    "failed": "red",
    "cancelled": "magenta",
    "successful": "green",
}


def emit_json(data: Any) -> None:
    """Dataclasses and enums as orjson writes them; every time in one format, ISO 8601 in
    UTC ("2026-01-05T10:00:03.250000+00:00"), whatever its time zone (a periodic job's
    next fire time is in the zone of its schedule)."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    options |= orjson.OPT_PASSTHROUGH_DATETIME  # to _in_utc
    click.echo(orjson.dumps(data, default=_in_utc, option=options).decode())


def _in_utc(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def at(epoch_seconds: float | None) -> datetime | None:
    """A time kept as seconds since the epoch, for emit_json to write as the others."""
    return None if epoch_seconds is None else datetime.fromtimestamp(epoch_seconds, UTC)


def on_terminal() -> bool:
    return sys.stdout.isatty()


def can_ask() -> bool:
    """Whether a question can be answered: stdin is a terminal (piped input is not an
    answer: ``yes | jobs purge`` must not purge)."""
    return sys.stdin.isatty()


def confirm(question: str) -> None:
    """Ask ``question``: go on if answered yes, else abort (exit 1). With no terminal to
    answer on, a usage error (exit 2) asking for --yes."""
    if not can_ask():
        raise click.UsageError(
            "this command asks for confirmation and stdin is not a terminal: give --yes to "
            "run it without asking"
        )
    click.confirm(question, abort=True)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    paint: Callable[[str, str], str | None] | None = None,
) -> str:
    """Columns padded to their widest cell. On a terminal the widest columns are cut (with
    "…") until the table fits; piped output is never cut, for grep and friends.
    ``paint(header, cell)`` may name a colour for a cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    if on_terminal():
        room = shutil.get_terminal_size().columns - 2 * (len(widths) - 1)
        while sum(widths) > room and max(widths) > 8:
            widths[widths.index(max(widths))] -= 1
    lines = []
    for i, row in enumerate([headers, *rows]):
        cells = []
        for header, cell, width in zip(headers, row, widths, strict=True):
            text = _cut(str(cell), width)
            colour = paint(header, str(cell)) if paint and i else None
            # Padding outside the style, so that a cell's colour does not bleed into it.
            styled = click.style(text, fg=colour, bold=i == 0 or None)
            cells.append(styled + " " * (width - len(text)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def heading(text: str) -> str:
    return click.style(text, bold=True, underline=True)


def duration(seconds: float) -> str:
    """Like "45s", "3m 05s", "2h 10m", "4d 3h": two units at most."""
    s = int(max(seconds, 0))
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {s % size // small_size}{small}"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def moment(value: datetime | None) -> str:
    """Local time and how far from now: "2026-01-05 10:00:03 (12s ago)"."""
    if value is None:
        return "-"
    delta = value.timestamp() - time.time()
    relative = f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"
    return f"{value.astimezone():%Y-%m-%d %H:%M:%S} ({relative})"


def ago(value: datetime | None) -> str:
    return "-" if value is None else f"{duration(time.time() - value.timestamp())} ago"


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar's ``update`` on a terminal (stderr), None when not on one."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update
