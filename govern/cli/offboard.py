"""``govern offboard``: take every access away from a leaver and force every password they knew to change."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_record, emit_table, notice, parse_time_option

app = typer.Typer(help="Offboard leavers: revoke everything, force rotations, keep the evidence.", no_args_is_help=True)

Handle = Annotated[str, typer.Argument(metavar="HANDLE", help="The person who leaves.")]
Check = Annotated[bool, typer.Option("--check", help="Exit 7 if any open step is past its deadline.")]
STEP_COLUMNS = ["step", "kind", "account", "status", "deadline", "closed_by", "title"]
# On a screen: the case's deadline is shown once above, the title says the kind; fits 80 columns.
SHORT_STEP_COLUMNS = ["step", "account", "status", "closed_by", "title"]
OPEN_STEP_COLUMNS = ["step", "account", "status", "title"]
OpenOnly = Annotated[bool, typer.Option("--open", help="Only open cases, or only a case's open steps.")]


def _shown(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**s, "status": "overdue" if s["overdue"] else s["status"]} for s in steps]


CASE_COLUMNS = ["case", "handle", "status", "started_by", "started_at", "open_steps", "overdue_steps", "closed_at"]


def _progress_bar() -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("offboarding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("", total=None)

    def advance(done: int, total: int, what: str) -> None:
        progress.update(task, completed=done, total=total, description=what[:60])

    return progress, advance


@app.command("start")
def start(
    ctx: typer.Context,
    handle: Handle,
    reason: Annotated[str, typer.Option("--reason", help="Why they leave (recorded).")],
    effective: Annotated[
        str | None, typer.Option("--effective", metavar="TIME", help="When their access ended (default: now).")
    ] = None,
    deadline: Annotated[
        str | None, typer.Option("--deadline", metavar="DURATION", help="Time to finish follow-up steps (default 24h).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the whole plan and change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Offboard a person in one command (admin); run it again to resume an interrupted case."""
    from govern.cli.common import parse_duration_option
    from offboarding.workflow import start as run

    progress, advance = _progress_bar()
    with progress:
        result = run(
            context(ctx),
            handle,
            reason=reason,
            effective=parse_time_option(effective),
            deadline=parse_duration_option(deadline),
            dry_run=dry_run,
            progress=advance,
        )
    if as_json:
        emit_json(result)
        return
    if result.get("dry_run"):
        notice(f"dry run: offboarding {handle} would take these steps (nothing was changed)")
        emit_table(result["steps"], ["step", "kind", "account", "automatic", "title"], as_json=False)
        return
    notice(f"case {result['case']}: {handle} is offboarded; {result['open_steps']} follow-up step(s) open")
    emit_table(_shown([s for s in result["steps"] if s["status"] == "open"]), OPEN_STEP_COLUMNS, as_json=False)
    if result["open_steps"]:
        notice(f"rotate what they knew by {result['deadline']}")
        notice("rotate with 'govern rotation start ACCOUNT' (each rotation closes its step)")
        notice(f"close manual steps with 'govern offboard done {handle} STEP [STEP…] --note …'")


@app.command("status")
def status(
    ctx: typer.Context,
    handle: Annotated[str | None, typer.Argument(metavar="[HANDLE]", help="One person's case and its steps.")] = None,
    check: Check = False,
    open_only: OpenOnly = False,
    as_json: JsonOpt = False,
) -> None:
    """List offboarding cases, or one case's steps with status, deadline and who closed each."""
    from offboarding.workflow import status as run

    cases = run(context(ctx), handle, verified=check)
    if open_only:
        if handle:
            cases = [{**c, "steps": [s for s in c["steps"] if s["status"] == "open"]} for c in cases]
        else:
            cases = [c for c in cases if c["status"] == "open"]
    if as_json:
        emit_json(cases[0] if handle else cases)
    elif handle:
        case = cases[0]
        emit_record({k: v for k, v in case.items() if k != "steps"}, as_json=False)
        columns = OPEN_STEP_COLUMNS if open_only else SHORT_STEP_COLUMNS
        emit_table(_shown(case["steps"]), columns, as_json=False)
    else:
        emit_table(cases, CASE_COLUMNS, as_json=False)
    overdue = sum(c["overdue_steps"] for c in cases)
    if check and overdue:
        from govern.errors import CheckFailed

        raise CheckFailed(f"{overdue} offboarding step(s) past their deadline")


@app.command("done")
def done(
    ctx: typer.Context,
    handle: Handle,
    steps: Annotated[
        list[int], typer.Argument(metavar="STEP...", help="One or more step numbers (see offboard status).")
    ],
    note: Annotated[str | None, typer.Option("--note", help="What was done, for the report.")] = None,
    waive: Annotated[bool, typer.Option("--waive", help="Admins: waive the step instead (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the step is waived.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close manual steps, all in one go (or, admins, waive open steps with --waive --reason)."""
    from govern.errors import InvalidInput
    from offboarding.workflow import close_step

    if waive and not reason:
        raise InvalidInput("--waive needs --reason")
    if reason and not waive:
        raise InvalidInput("--reason goes with --waive; use --note to describe what was done")
    result = close_step(context(ctx), handle, steps, note=note, waive_reason=reason if waive else None)
    if as_json:
        emit_json(result)
        return
    named = ", ".join(str(n) for n in result["closed"])
    notice(f"step(s) {named} closed; case {result['case']} has {result['open_steps']} open step(s)")
    if result["status"] == "closed":
        notice(f"case {result['case']} is complete (audit chain head: event {result['head_seq']})")


@app.command("report")
def report(
    ctx: typer.Context,
    handle: Handle,
    fmt: Annotated[str | None, typer.Option("--format", help="md (the default) or json.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="F", help="Write to this file (a new one, 0600) instead of stdout.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out file (never a symbolic link), atomically.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evidence for an auditor: revocations, exposed credentials and when each was rotated, manual steps."""
    from govern.errors import InvalidInput
    from offboarding.workflow import report as run

    if as_json and fmt not in (None, "json"):
        raise InvalidInput("use either --json or --format md")
    fmt = "json" if as_json else fmt or "md"
    if fmt not in ("md", "json"):
        raise InvalidInput("--format is md or json")
    if out is None:
        sys.stdout.write(_render(run(context(ctx), handle), fmt))
        return
    from govern.outfile import output_file

    with output_file(out, force=force) as target:  # refused before any work if it exists
        target.write(_render(run(context(ctx), handle), fmt))
    notice(f"wrote the offboarding report of {handle} to {out}")


def _render(data: dict[str, Any], fmt: str) -> str:
    import json

    from govern.cli.text import json_safe
    from offboarding.report import render_markdown

    return render_markdown(data) if fmt == "md" else json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
