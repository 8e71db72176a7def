"""``govern import FILE --from FORMAT``: bring a password manager's export in (dry run by default)."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice, warn

MAX_EXPORT = 64 * 1024 * 1024  # a 1PUX may carry attachments; only export.data is read from it
COLUMNS = ["entry", "action", "account", "platform", "handle", "fields", "totp", "weak_password", "why"]
REMINDER = (
    "the export file holds every password in the clear: shred it now (shred -u FILE), and empty"
    " any trash or download folder that holds a copy"
)


class _Bar:
    """A progress bar on stderr, on a terminal only."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True
            )
            self._bar.start()
            self._task = self._bar.add_task("importing", total=total)
        self._bar.update(self._task, completed=done)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The export file (read once, never changed).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="FORMAT",
            help="bitwarden-json, bitwarden-csv, 1password-1pux, 1password-csv, keepassxc-csv, keepass-xml,"
            " lastpass-csv, chrome-csv or csv (see docs/import.md).",
        ),
    ],
    do_apply: Annotated[bool, typer.Option("--apply", help="Do it (the default is a dry run).")] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Add a new credential version to accounts that already exist.")
    ] = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Also import logins of other sites (platform 'other').")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import accounts and credentials from a password manager's export: a dry run unless --apply."""
    from govern.infile import read_bytes_file
    from govern.services.importing import apply, plan

    raw = read_bytes_file(file, "export file", limit=MAX_EXPORT)
    service_context = context(ctx)
    the_plan = plan(service_context, fmt, raw, include_all=include_all, update=update)
    rows = [item.row() for item in the_plan.items]
    if not do_apply:
        if as_json:
            emit_json({"applied": False, "format": the_plan.fmt, "sha256": the_plan.sha256, "items": rows})
        else:
            emit_table(rows, COLUMNS, as_json=False)
            weak = [r["account"] for r in rows if r["weak_password"] and r["action"] != "skip"]
            if weak:
                warn(f"{len(weak)} password(s) break their platform's rules (imported as they are; rotate them)")
            writes = len(the_plan.writes)
            notice(
                f"dry run: {writes} of {len(rows)} entr{'y' if len(rows) == 1 else 'ies'} would be written;"
                " nothing was written (add --apply)"
            )
        notice(REMINDER)
        return
    bar = _Bar()
    try:
        summary = apply(service_context, the_plan, progress=bar)
    finally:
        bar.close()
    if as_json:
        emit_json({"applied": True, **summary, "items": rows})
    else:
        notice(
            f"imported from {the_plan.fmt} (sha256 {the_plan.sha256[:16]}…): {summary['created']} created,"
            f" {summary['updated']} updated, {summary['unchanged'] + summary['already_there']} already there,"
            f" {summary['skipped']} skipped"
        )
    notice(REMINDER)
