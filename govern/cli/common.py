"""Shared CLI plumbing: global options, the context, and output to stdout/stderr."""

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from govern.cli.text import json_safe, scalar, visible

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from govern.context import Context

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


@dataclass
class Globals:
    db: str | None = None
    actor: str | None = None
    passphrase_stdin: bool = False
    debug: bool = False


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


def context(ctx: typer.Context, *, actor: str | None = None) -> "Context":
    """Build the service context from the global options and the environment."""
    from govern.context import Context
    from govern.settings import resolve_actor, resolve_db_url
    from govern.unlock import PassphraseSource

    options = globals_of(ctx)
    service_context = Context(
        db_url=resolve_db_url(options.db),
        actor=actor or resolve_actor(options.actor),
        passphrase=PassphraseSource(
            # A prompt reads the terminal (/dev/tty) even when stdin is a pipe, as ssh and sudo do.
            stdin_broker(ctx),
            from_stdin=options.passphrase_stdin,
            interactive=True,
        ),
        notice=notice,
        progress=VerifyProgress(),
    )
    _OPEN_CONTEXTS.append(service_context)
    return service_context


class VerifyProgress:
    """Shown while a client catches up with a long log (a first use of a vault on this machine).

    Silent for the few events a routine command verifies; past ``threshold`` events, one
    line says why it waits, and on a terminal a progress bar follows (on stderr).
    """

    threshold = 20000

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._announced = False

    def __call__(self, done: int, total: int) -> None:
        if total < self.threshold:
            return
        if not self._announced:
            self._announced = True
            notice(f"verifying {total} new event(s) of the audit log before acting (only new events, once)")
            if sys.stderr.isatty():
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

                self._bar = Progress(
                    BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True
                )
                self._bar.start()
                self._task = self._bar.add_task("verifying", total=total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            if done >= total:
                self._bar.stop()
                self._bar = None


_OPEN_CONTEXTS: list["Context"] = []


def close_contexts() -> None:
    """Release every service context this run opened (called by ``main.run``)."""
    while _OPEN_CONTEXTS:
        _OPEN_CONTEXTS.pop().close()


def stdin_broker(ctx: typer.Context) -> Any:
    from govern.unlock import StdinBroker

    root = ctx.find_root()
    broker = root.meta.get("govern.stdin")
    if broker is None:
        broker = StdinBroker()
        root.meta["govern.stdin"] = broker
    return broker


# Everything below prints for people through ``visible`` (govern.cli.text): what a person
# typed or a file supplied is shown as text, never interpreted by the terminal or by rich.


def notice(message: str) -> None:
    """A message for the person at the terminal (stderr), one line, controls made visible."""
    print(f"govern: {visible(message)}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"govern: warning: {visible(message)}", file=sys.stderr)


def _json(value: Any, **options: Any) -> str:
    """Exact data as JSON; nothing a terminal acts on is left raw (``json_safe``)."""
    return json_safe(json.dumps(value, ensure_ascii=False, default=str, **options))


def emit_json(value: Any) -> None:
    sys.stdout.write(_json(value, indent=2) + "\n")


def emit_record(value: dict[str, Any], *, as_json: bool) -> None:
    """One object: JSON, or ``key: value`` lines."""
    if as_json:
        emit_json(value)
        return
    width = max((len(k) for k in value), default=0)
    for key, item in value.items():
        if isinstance(item, list):
            text = ", ".join(_compact(v) if isinstance(v, dict) else scalar(v) for v in item) or "-"
        elif isinstance(item, dict):
            text = _compact(item)
        else:
            text = scalar(item)
        sys.stdout.write(visible(f"{key.replace('_', ' '):<{width}}  {text}") + "\n")


def _compact(value: dict[str, Any]) -> str:
    return " ".join(f"{k}={scalar(v)}" for k, v in value.items() if v is not None)


def _cell(value: Any) -> str:
    """A table cell as one line of visible text."""
    if isinstance(value, list):
        text = ",".join(scalar(v) for v in value) or "-"
    elif isinstance(value, dict):
        text = _compact(value)
    else:
        text = scalar(value)
    return visible(text)


def emit_table(
    rows: Iterable[dict[str, Any]], columns: Sequence[str], *, as_json: bool, title: str | None = None
) -> None:
    """Rows as a JSON array, a rich table on a terminal, or tab-separated text in a pipe.

    The rows are all read before anything is printed: an error half-way shows no half table.
    """
    rows = list(rows)
    if as_json:
        body = ",\n  ".join(_json(row) for row in rows)
        sys.stdout.write(f"[\n  {body}\n]\n" if rows else "[]\n")
        return
    if sys.stdout.isatty():
        if rows:
            _rich_table(rows, columns, title)
        else:
            notice("nothing to show")
        return
    lines = ["\t".join(visible(c) for c in columns)]
    lines += ["\t".join(_cell(row.get(c)) for c in columns) for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")


_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})")


def _short_time(text: str, form: int) -> str:
    """A timestamp cell in ``form`` 0 (as is), 1 (to the minute) or 2 (the day); other text as is."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None or form == 0:
        return text
    return f"{match[1]}T{match[2]}{match[3]}" if form == 1 else match[1]


def _column_widths(columns: Sequence[str], cells: list[list[str]], width: int) -> tuple[int, int, list[int] | None]:
    """The timestamp form, the space between columns and the column widths that show every
    value without cutting it.

    Each column gets at least its longest word (so a word, a date above all, is never
    broken) and the room left goes to the columns with longer text; columns move closer
    (one space) and timestamps are shortened (form 1: to the minute, form 2: the day) only
    when that is what it takes. ``None`` widths: the table fits as it is. When even the days
    do not fit, dates keep their width and the other columns share what is left (their long
    words fold onto the next line).
    """
    headers = [visible(column.replace("_", " ")) for column in columns]

    def longest_word(text: str) -> int:
        return max((len(word) for word in text.split()), default=0)

    lows: list[int] = []
    for form in (0, 1, 2):
        shown = [[_short_time(cell, form) for cell in line] for line in cells]
        lows = [max([longest_word(h)] + [longest_word(line[i]) for line in shown]) for i, h in enumerate(headers)]
        highs = [max([len(h)] + [len(line[i]) for line in shown]) for i, h in enumerate(headers)]
        for gap in (2, 1):
            gaps = gap * (len(columns) - 1)
            if sum(highs) + gaps <= width:
                return form, gap, None
            room = width - gaps - sum(lows)
            if room >= 0:
                spread = sum(high - low for high, low in zip(highs, lows, strict=True)) or 1
                return form, gap, [low + (high - low) * room // spread for high, low in zip(highs, lows, strict=True)]
    dates = [any(_TIMESTAMP.fullmatch(line[i]) for line in cells) for i in range(len(columns))]
    fixed = sum(low for low, date in zip(lows, dates, strict=True) if date)
    others = sum(low for low, date in zip(lows, dates, strict=True) if not date) or 1
    room = max(width - (len(columns) - 1) - fixed, 1)
    return 2, 1, [low if date else max(1, low * room // others) for low, date in zip(lows, dates, strict=True)]


def _colour_options() -> dict[str, Any]:
    import os

    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


def _rich_table(rows: list[dict[str, Any]], columns: Sequence[str], title: str | None) -> None:
    """A rich table that fits the terminal without cutting a value: long values wrap (fold),
    and timestamps are shortened (to the minute, then the day) rather than cut with "…".
    ``NO_COLOR`` leaves no escape at all (no bold either)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # NO_COLOR: no escape at all, bold included (rich alone keeps bold and italic).
    console = Console(markup=False, emoji=False, highlight=False, **_colour_options())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    form, gap, widths = _column_widths(columns, cells, console.width)
    # Only Text reaches rich: a cell is never markup, a link or a style.
    table = Table(
        title=None if title is None else Text(visible(title)),
        header_style="bold",
        box=None,
        pad_edge=False,
        collapse_padding=gap == 1,
    )
    for i, column in enumerate(columns):
        width = None if widths is None else widths[i]
        table.add_column(Text(visible(column.replace("_", " "))), overflow="fold", width=width)
    for line in cells:
        table.add_row(*(Text(_short_time(cell, form)) for cell in line))
    console.print(table)


def parse_duration_option(value: str | None) -> "timedelta | None":
    if value is None:
        return None
    from govern.timeutil import parse_duration

    return parse_duration(value)


def parse_time_option(value: str | None) -> "datetime | None":
    if value is None:
        return None
    from govern.timeutil import parse_time

    return parse_time(value)
