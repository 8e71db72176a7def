"""``govern audit``: read, verify, checkpoint, question and export the tamper-evident log."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_record, emit_table, notice, parse_time_option

app = typer.Typer(help="Read, verify, question and export the tamper-evident audit log.", no_args_is_help=True)

LOG_COLUMNS = ["seq", "ts", "actor", "action", "account", "subject", "reason"]
Slug = Annotated[str, typer.Argument(metavar="ACCOUNT")]
AccountOpt = Annotated[str | None, typer.Option("--account", metavar="ACCOUNT")]
StaffOpt = Annotated[str | None, typer.Option("--staff", metavar="HANDLE", help="Events by or about this person.")]
ActionOpt = Annotated[str | None, typer.Option("--action", help="Events whose action starts with this, like access.")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", metavar="TIME", help="ISO 8601; UTC unless an offset is given.")
]
UntilOpt = Annotated[str | None, typer.Option("--until", metavar="TIME")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace an existing --out file (never a symbolic link), atomically.")
]

if TYPE_CHECKING:
    from govern.outfile import TextSink


def _filters(
    account: str | None, staff: str | None, action: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    return {
        "account": account,
        "staff": staff,
        "action": action,
        "since": parse_time_option(since),
        "until": parse_time_option(until),
    }


@app.command("log")
def log(
    ctx: typer.Context,
    account: AccountOpt = None,
    staff: StaffOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show audit events, oldest first (members see only events about themselves and what they hold)."""
    from govern.services.auditing import query_events

    events = query_events(context(ctx), **_filters(account, staff, action, since, until))
    emit_table(events, LOG_COLUMNS, as_json=as_json, title="audit log")


@app.command("verify")
def verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", metavar="FILE", help="Also prove the tail was not cut or rewritten.")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", metavar="FILE", help="Verify a JSONL export offline (no database).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify hash links, signatures and the tables against the log; exit 6 naming the first bad event."""
    from govern.services.auditing import verify as run
    from govern.services.auditing import verify_export_file

    result = (
        verify_export_file(export, checkpoint=checkpoint)
        if export is not None
        else run(context(ctx), checkpoint=checkpoint)
    )
    if as_json:
        emit_json(result)
    else:
        emit_record({k: v for k, v in result.items() if k != "findings"}, as_json=False)
    for finding in result["findings"]:
        notice(f"not explained by the log: {finding}")
    if result["findings"]:
        from govern.errors import IntegrityFailure

        raise IntegrityFailure(f"{len(result['findings'])} row(s) of the tables are not explained by the log")
    notice(f"verified {result['events']} events in {result['transactions']} signed transactions")


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write it here (0600) instead of stdout.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign the current head (admin or auditor) for safekeeping outside the vault.

    The checkpoint is JSON on stdout; with ``--out`` and ``--json``, a JSON record of what was written.
    """
    import json

    from govern.services.auditing import checkpoint as run

    body = run(context(ctx))
    text = json.dumps(body, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    from govern.outfile import write_output

    write_output(out, text, hint="a checkpoint is never overwritten: choose a new file name")
    if as_json:
        emit_json({"seq": body["seq"], "head": body["head"], "signer": body["signer"], "out": str(out)})
        return
    notice(f"checkpoint of event {body['seq']} written to {out}: keep it outside the vault")


@app.command("who-had")
def who_had(
    ctx: typer.Context,
    slug: Slug,
    at: Annotated[str, typer.Option("--at", metavar="TIME", help="ISO 8601; UTC unless an offset is given.")],
    as_json: JsonOpt = False,
) -> None:
    """Who could decrypt an account at an instant, and the grant or role that gave it (from the log)."""
    from govern.services.auditing import who_had as run

    moment = parse_time_option(at)
    assert moment is not None
    result = run(context(ctx), slug, moment)
    if as_json:
        emit_json(result)
        return
    if not result["existed"]:
        notice(f"{slug} did not exist yet at {result['at']}")
    emit_table(result["people"], ["handle", "via", "grant", "reason", "granted_by", "from", "until"], as_json=False)


@app.command("history")
def history(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """Intervals of access per person, and the versions and rotations, over time."""
    from govern.services.auditing import history as run

    result = run(context(ctx), slug)
    if as_json:
        emit_json(result)
        return
    notice(f"access to {slug}")
    emit_table(result["access"], ["handle", "via", "from", "to", "ended_by", "reason"], as_json=False)
    notice(f"credential versions of {slug}")
    emit_table(result["versions"], ["version", "at", "by", "how", "changed"], as_json=False)


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (canonical, verifiable), csv or ocsf.")],
    out: Annotated[
        Path | None, typer.Option("--out", metavar="F", help="Write here (a new file, 0600) instead of stdout.")
    ] = None,
    force: ForceOpt = False,
    account: AccountOpt = None,
    staff: StaffOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Export the log as JSONL, CSV or OCSF 1.8.0, streamed with constant memory."""
    from govern.errors import InvalidInput
    from govern.services.auditing import count_events, export_lines

    if fmt not in ("jsonl", "csv", "ocsf"):
        raise InvalidInput("--format is jsonl, csv or ocsf")
    service_context = context(ctx)
    filters = _filters(account, staff, action, since, until)
    total = count_events(service_context, **filters)
    if out is None:
        _write(export_lines(service_context, fmt, **filters), sys.stdout, total)
        return
    from govern.outfile import output_file

    # Nothing reaches ``out`` unless the whole export streamed: a failure (exit 6 on a
    # tampered log, Ctrl-C) leaves no partial file and any earlier file untouched.
    with output_file(out, force=force) as target:
        _write(export_lines(service_context, fmt, **filters), target, total)
    notice(f"exported {total} event(s) as {fmt} to {out}")


def _write(lines: Iterator[str], target: "TextSink", total: int) -> None:
    if total < 20000 or not sys.stderr.isatty():
        for line in lines:
            target.write(line + "\n")
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("exporting", total=total)
        for index, line in enumerate(lines):
            target.write(line + "\n")
            if index % 1000 == 0:
                progress.update(task, completed=index)


@app.command("report")
def report(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE.html", help="Where to write the page (a new file, 0600).")
    ],
    force: ForceOpt = False,
) -> None:
    """A self-contained access-review page for auditors (admins and auditors)."""
    from govern.outfile import output_file
    from govern.services.auditreport import build, render

    with output_file(out, force=force) as target:
        target.write(render(build(context(ctx))))
    notice(f"wrote the access-review report to {out}")
