"""``govern staff``: enrol people and manage their roles."""

import sys
from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_record, emit_table, notice

app = typer.Typer(help="Enrol staff and manage their roles.", no_args_is_help=True)

Handle = Annotated[str, typer.Argument(metavar="HANDLE", help="The person's handle, like j.doe.")]
STAFF_COLUMNS = ["handle", "name", "team", "role", "status", "email", "key_fingerprint"]


@app.command("add")
def add(
    ctx: typer.Context,
    handle: Handle,
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    team: Annotated[str | None, typer.Option("--team")] = None,
    role: Annotated[str, typer.Option("--role", help="member, manager, admin or auditor.")] = "member",
    as_json: JsonOpt = False,
) -> None:
    """Add a person and print their one-time enrolment code (valid 72 hours)."""
    from govern.services.staff import add_person

    result = add_person(context(ctx), handle, name=name, email=email, team=team, role=role)
    if as_json:
        emit_json(result)
        return
    expires = result["code_expires_at"]
    notice(f"added {result['handle']} as {result['role']}; give them this code (expires {expires}):")
    sys.stdout.write(f"{result['enrolment_code']}\n")
    notice(f"they run: govern staff enroll {result['handle']} --code CODE")


@app.command("invite")
def invite(ctx: typer.Context, handle: Handle, as_json: JsonOpt = False) -> None:
    """Issue a new enrolment code for someone who has not enrolled (the old one stops working)."""
    from govern.services.staff import reissue_code

    result = reissue_code(context(ctx), handle)
    if as_json:
        emit_json(result)
        return
    sys.stdout.write(f"{result['enrolment_code']}\n")
    notice(f"expires {result['code_expires_at']}")


@app.command("enroll")
def enroll(
    ctx: typer.Context,
    handle: Handle,
    code: Annotated[str, typer.Option("--code", help="The one-time code an admin gave you.")],
    as_json: JsonOpt = False,
) -> None:
    """Enrol yourself: choose your passphrase; your keys are made and sealed under it."""
    from govern.services.staff import enroll as run

    result = run(context(ctx, actor=handle), handle, code)
    if as_json:
        emit_json(result)
        return
    notice(f"{result['handle']} is enrolled; key fingerprint {result['key_fingerprint']}")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List staff with role and status."""
    from govern.services.staff import list_people

    emit_table(list_people(context(ctx)), STAFF_COLUMNS, as_json=as_json)


@app.command("show")
def show(ctx: typer.Context, handle: Handle, as_json: JsonOpt = False) -> None:
    """Show a person and the accounts they hold."""
    from govern.services.staff import show_person

    emit_record(show_person(context(ctx), handle), as_json=as_json)


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    handle: Handle,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="member, manager, admin or auditor.")],
    as_json: JsonOpt = False,
) -> None:
    """Change a person's role (admin only)."""
    from govern.services.staff import set_role as run

    result = run(context(ctx), handle, role)
    if as_json:
        emit_json(result)
        return
    notice(f"{result['handle']} is now {result['role']}")
