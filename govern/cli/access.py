"""``govern access``: who holds which account, and why."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice, parse_duration_option

app = typer.Typer(help="Grant, revoke and list access to accounts.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT", help="Short name of the account, like x-acme.")]
Handle = Annotated[str, typer.Argument(metavar="HANDLE", help="The person's handle.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
GRANT_COLUMNS = ["id", "account", "handle", "status", "reason", "granted_by", "from", "until", "revoked_at"]


@app.command("grant")
def grant(
    ctx: typer.Context,
    slug: Slug,
    handle: Handle,
    reason: Reason,
    for_: Annotated[str | None, typer.Option("--for", metavar="DURATION", help="Time-box the grant, like 30d.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a person access: the account's data key is wrapped to their public key."""
    from govern.services.access import grant_access

    result = grant_access(context(ctx), slug, handle, reason=reason, duration=parse_duration_option(for_))
    if as_json:
        emit_json(result)
        return
    until = f" until {result['until']}" if result["until"] else ""
    notice(f"{result['handle']} now holds {result['account']}{until} (grant {result['id']})")


@app.command("revoke")
def revoke(ctx: typer.Context, slug: Slug, handle: Handle, reason: Reason, as_json: JsonOpt = False) -> None:
    """Take access away. What they could read is marked exposed until the account is rotated."""
    from govern.services.access import revoke_access

    result = revoke_access(context(ctx), slug, handle, reason=reason)
    if as_json:
        emit_json(result)
        return
    notice(f"revoked {result['handle']} from {result['account']}")
    if result["exposed_versions"]:
        notice(
            f"{result['handle']} could read version(s) {', '.join(map(str, result['exposed_versions']))}:"
            f" revocation alone does not secure {result['account']}; rotate its password"
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option("--account", metavar="ACCOUNT")] = None,
    staff: Annotated[str | None, typer.Option("--staff", metavar="HANDLE")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired grants.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List grants: holder, reason, who granted, from, until, and status."""
    from govern.services.access import list_grants

    emit_table(
        list_grants(context(ctx), account=account, staff=staff, include_ended=all_),
        GRANT_COLUMNS,
        as_json=as_json,
    )
