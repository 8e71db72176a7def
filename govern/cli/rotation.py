"""``govern rotation``: enforced schedules and two-phase rotations."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice

app = typer.Typer(help="Rotation schedules and two-phase password rotations.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT")]
STATUS_COLUMNS = ["account", "platform", "state", "last_rotated", "due", "rotate_every", "exposed_to"]


@app.command("status")
def status(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 7 if anything is overdue or exposed (for cron/CI).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every account's rotation state: ok, due-soon, overdue, exposed, rotating, never-set."""
    from govern.services.rotation import needs_attention
    from govern.services.rotation import status as run

    rows = run(context(ctx), verified=check)
    shown = [{**row, "exposed_to": sorted({f"{e['handle']}({e['kind']})" for e in row["exposed_to"]})} for row in rows]
    emit_table(rows if as_json else shown, STATUS_COLUMNS, as_json=as_json)
    if check:
        from govern.errors import CheckFailed
        from govern.services.rotation import overdue_followups

        problems = needs_attention(rows)
        late = overdue_followups(context(ctx))
        found = []
        if problems:
            found.append(f"{len(problems)} account(s) overdue or exposed: {', '.join(r['account'] for r in problems)}")
        if late:
            found.append(f"{late} offboarding step(s) past their deadline (see 'govern offboard status')")
        if found:
            raise CheckFailed("; ".join(found))


@app.command("start")
def start(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """Generate a new password by the platform's rules and seal it as the pending version."""
    from govern.services.rotation import start as run

    result = run(context(ctx), slug)
    if as_json:
        emit_json(result)
        return
    notice(f"pending version {result['pending_version']} of {slug} is ready; the current password still works")
    notice(f"1. reveal it: govern secret show {slug} --pending")
    notice("2. set it at the platform")
    notice(f"3. govern rotation confirm {slug}   (or: govern rotation abort {slug})")


@app.command("confirm")
def confirm(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """Make the pending password current, under a new data key for the current holders only."""
    from govern.services.rotation import confirm as run

    result = run(context(ctx), slug)
    if as_json:
        emit_json(result)
        return
    notice(f"{slug} is now at version {result['version']}; {result['exposures_cleared']} exposure(s) cleared")


@app.command("abort")
def abort(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """Discard the pending password; the current one stays."""
    from govern.services.rotation import abort as run

    result = run(context(ctx), slug)
    if as_json:
        emit_json(result)
        return
    notice(f"discarded pending version {result['discarded_version']} of {slug}")
