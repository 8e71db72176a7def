"""Shared CLI plumbing: global options, the context, and output to stdout/stderr."""

import json
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
    """Rows as a JSON array, a rich table on a terminal, or tab-separated text in a pipe."""
    if as_json:
        sys.stdout.write("[")
        first = True
        for row in rows:
            sys.stdout.write(("\n  " if first else ",\n  ") + _json(row))
            first = False
        sys.stdout.write("\n]\n" if not first else "]\n")
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        # Only Text reaches rich: a cell is never markup, a link or a style.
        table = Table(
            title=None if title is None else Text(visible(title)), header_style="bold", box=None, pad_edge=False
        )
        for column in columns:
            table.add_column(Text(visible(column.replace("_", " "))))
        count = 0
        for row in rows:
            table.add_row(*(Text(_cell(row.get(c))) for c in columns))
            count += 1
        if count:
            Console(markup=False, emoji=False, highlight=False).print(table)
        else:
            notice("nothing to show")
        return
    sys.stdout.write("\t".join(visible(c) for c in columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")


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
