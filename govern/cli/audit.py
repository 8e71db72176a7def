"""``govern audit``: read, verify, checkpoint, question and export the tamper-evident log."""

import sys
from collections.abc import Iterator
from datetime import datetime
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
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence", metavar="FILE.zip", help="Verify an evidence pack offline: bytes, manifest, export."
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect", metavar="FP", help="The vault fingerprint you were given out of band; exit 6 if it differs."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify hash links, signatures and the tables against the log; exit 6 naming the first bad event.

    Prints the vault fingerprint: compare it with the one you were given (or pass --expect).
    """
    from govern.errors import InvalidInput
    from govern.services.auditing import verify as run
    from govern.services.auditing import verify_export_file

    if evidence is not None:
        if export is not None or checkpoint is not None:
            raise InvalidInput("--evidence carries its own export and checkpoint: give it alone")
        from govern.services.evidence import verify_evidence

        result = verify_evidence(evidence, expect)
    elif export is not None:
        result = verify_export_file(export, checkpoint=checkpoint, expect=expect)
    else:
        result = run(context(ctx), checkpoint=checkpoint, expect=expect)
    if as_json:
        emit_json(result)
    else:
        emit_record({k: v for k, v in result.items() if k not in ("findings", "violations")}, as_json=False)
    for finding in result["findings"]:
        notice(f"not explained by the log: {finding}")
    open_violations = [v for v in result.get("violations", []) if v.get("acknowledged_by") is None]
    for v in open_violations:
        notice(
            f"contained: transaction {v['transaction']} signed by {v['signer']} breaks a rule at event {v['seq']}:"
            f" {v['rule']} (skipped; an admin records a decision with 'govern audit acknowledge {v['transaction']}')"
        )
    if result["findings"]:
        from govern.errors import IntegrityFailure

        raise IntegrityFailure(f"{len(result['findings'])} row(s) of the tables are not explained by the log")
    notice(
        f"verified {result['events']} events in {result['transactions']} signed transactions"
        f" of the vault with fingerprint {result['fingerprint']}"
        + ("" if expect is not None else ": compare it with the one you were given (or pass --expect)")
    )
    if open_violations:
        from govern.errors import IntegrityFailure

        raise IntegrityFailure(
            f"{len(open_violations)} signed transaction(s) break a rule of the log (contained, not acknowledged)"
        )


@app.command("acknowledge")
def acknowledge(
    ctx: typer.Context,
    transaction: Annotated[int, typer.Argument(help="The contained transaction (its first event) to acknowledge.")],
    reason: Annotated[str, typer.Option("--reason", help="The decision taken about it (required).")],
    as_json: JsonOpt = False,
) -> None:
    """Admins: record a signed decision about a contained transaction (audit verify stops naming it)."""
    from govern.services.auditing import acknowledge_violation

    emit_record(acknowledge_violation(context(ctx), transaction, reason=reason), as_json=as_json)


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


FromOpt = Annotated[
    str | None, typer.Option("--from", metavar="TIME", help="Start of the period (inclusive); ISO 8601, UTC default.")
]
ToOpt = Annotated[str | None, typer.Option("--to", metavar="TIME", help="End of the period (exclusive), or now.")]


def _moment(service_context: Any, value: str) -> "datetime":
    """An ISO 8601 time, or ``now`` (the command's clock)."""
    if value.strip().lower() == "now":
        moment: datetime = service_context.now()
        return moment
    parsed = parse_time_option(value)
    assert parsed is not None
    return parsed


def _period(service_context: Any, start: str | None, end: str | None) -> tuple["datetime", "datetime"]:
    from govern.errors import InvalidInput

    if start is None or end is None:
        raise InvalidInput("give the period as --from TIME --to TIME")
    return _moment(service_context, start), _moment(service_context, end)


PERIOD_COLUMNS = [
    "handle", "via", "from", "until", "started", "approvers", "ended", "ended_by", "reason", "reveals", "totp_codes",
]  # fmt: skip


@app.command("who-had")
def who_had(
    ctx: typer.Context,
    slug: Slug,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIME", help="An instant: ISO 8601 (UTC unless an offset is given), or now."),
    ] = None,
    start: FromOpt = None,
    end: ToOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who could decrypt an account at an instant (--at), or over a period (--from --to), from the log."""
    from govern.errors import InvalidInput

    service_context = context(ctx)
    if (at is None) == (start is None and end is None):
        raise InvalidInput("give either --at TIME or --from TIME --to TIME")
    if at is None:
        from govern.services.period import who_had_during

        period = who_had_during(service_context, slug, *_period(service_context, start, end))
        if as_json:
            emit_json(period)
            return
        if not period["existed"]:
            notice(f"{slug} did not exist yet before {period['to']}")
        rows = [
            {
                **row,
                "until": row["until"] or "still holds",
                "started": row["started"] + (f" by {row['started_by']}" if row["started_by"] else ""),
                "approvers": ", ".join(row["approvers"]),
            }
            for row in period["people"]
        ]
        emit_table(rows, PERIOD_COLUMNS, as_json=False, title=f"{slug} from {period['from']} to {period['to']}")
        for handle, number in period["denied"].items():
            notice(f"{handle} was refused {number} time(s) in the period")
        return
    from govern.services.auditing import who_had as run

    result = run(service_context, slug, _moment(service_context, at))
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
    excel: Annotated[
        bool, typer.Option("--excel", help="CSV only: start with a UTF-8 byte order mark, for Excel on Windows.")
    ] = False,
) -> None:
    """Export the log as JSONL, CSV (RFC 4180) or OCSF 1.8.0, streamed with constant memory."""
    from govern.errors import InvalidInput
    from govern.services.auditing import count_events, export_lines

    if fmt not in ("jsonl", "csv", "ocsf"):
        raise InvalidInput("--format is jsonl, csv or ocsf")
    if excel and fmt != "csv":
        raise InvalidInput("--excel applies to --format csv only")
    service_context = context(ctx)
    filters = _filters(account, staff, action, since, until)
    total = count_events(service_context, **filters)
    end = "\r\n" if fmt == "csv" else "\n"  # RFC 4180 records end with CRLF
    if out is None:
        _write(export_lines(service_context, fmt, excel=excel, **filters), sys.stdout, total, end)
        return
    from govern.outfile import output_file

    # Nothing reaches ``out`` unless the whole export streamed: a failure (exit 6 on a
    # tampered log, Ctrl-C) leaves no partial file and any earlier file untouched.
    with output_file(out, force=force) as target:
        _write(export_lines(service_context, fmt, excel=excel, **filters), target, total, end)
    notice(f"exported {total} event(s) as {fmt} to {out}")


def _write(lines: Iterator[str], target: "TextSink", total: int, end: str = "\n") -> None:
    if total < 20000 or not sys.stderr.isatty():
        for line in lines:
            target.write(line + end)
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("exporting", total=total)
        for index, line in enumerate(lines):
            target.write(line + end)
            if index % 1000 == 0:
                progress.update(task, completed=index)


@app.command("report")
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write it (a new file, 0600).")],
    force: ForceOpt = False,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="html, or (with --from/--to) json or csv of the same figures.")
    ] = "html",
) -> None:
    """An access-review page of now, or (--from --to) evidence for a period (admins and auditors)."""
    from govern.errors import InvalidInput
    from govern.outfile import output_file

    if fmt not in ("html", "json", "csv"):
        raise InvalidInput("--format is html, json or csv")
    service_context = context(ctx)
    if start is None and end is None:
        if fmt != "html":
            raise InvalidInput("--format json|csv needs a period: --from TIME --to TIME")
        from govern.services.auditreport import build, render

        with output_file(out, force=force) as target:
            target.write(render(build(service_context)))
        notice(f"wrote the access-review report to {out}")
        return
    from govern.services.periodreport import build as build_period
    from govern.services.periodreport import render as render_period

    data = build_period(service_context, *_period(service_context, start, end))
    text = render_period(data, fmt)
    with output_file(out, force=force) as target:
        target.write(text)
    notice(f"wrote the {fmt} report for {data['from']} to {data['to']} to {out}")


@app.command("evidence")
def evidence(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE.zip", help="Where to write the pack (a new file, 0600).")
    ] = None,
    force: ForceOpt = False,
) -> None:
    """One zip for a period: report, signed export, checkpoint, verification transcript, manifest (admins, auditors)."""
    from govern.errors import InvalidInput
    from govern.outfile import write_binary_output
    from govern.services.evidence import build

    if out is None:
        raise InvalidInput("give the pack's file name with --out FILE.zip")
    service_context = context(ctx)
    pack, manifest = build(service_context, *_period(service_context, start, end))
    write_binary_output(out, pack, force=force)
    notice(
        f"wrote the evidence pack for {manifest['from']} to {manifest['to']} to {out}"
        f" ({manifest['period']['events']} events in the period; {len(pack)} bytes):"
        f" check it anywhere with 'govern audit verify --evidence {out.name}'"
    )
