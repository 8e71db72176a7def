"""``govern access``: who holds which account, and why."""

import sys
from typing import Annotated

import typer

from govern.cli.common import (
    JsonOpt,
    context,
    emit_json,
    emit_table,
    notice,
    parse_duration_option,
    parse_time_option,
    warn,
)

app = typer.Typer(help="Grant, revoke and list access to accounts.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT", help="Short name of the account, like x-acme.")]
Handle = Annotated[str, typer.Argument(metavar="HANDLE", help="The person's handle.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
For = Annotated[str | None, typer.Option("--for", metavar="DURATION", help="Time-box it, like 30d.")]
OverCap = Annotated[
    bool, typer.Option("--over-cap", help="Admins only: exceed the holder cap (the --reason is recorded).")
]
SHORT = 3600  # seconds: a grant shorter than an hour is granted with a warning


def warn_if_short(for_: str | None, ends: str | None, what: str) -> None:
    """``--for`` below an hour is allowed, but said out loud with when it ends."""
    duration = parse_duration_option(for_)
    if duration is not None and duration.total_seconds() < SHORT:
        when = f" at {ends}" if ends else " that long after approval"
        warn(f"{what} lasts only {for_.strip() if for_ else ''}: it ends{when}")


GRANT_COLUMNS = ["id", "account", "handle", "status", "reason", "granted_by", "from", "until", "over_cap", "revoked_at"]
REQUEST_COLUMNS = [
    "id",
    "account",
    "handle",
    "status",
    "reason",
    "for",
    "created_at",
    "deciders",
    "decided_by",
    "decision_reason",
]


@app.command("grant")
def grant(
    ctx: typer.Context,
    slug: Slug,
    handle: Handle,
    reason: Reason,
    for_: For = None,
    over_cap: OverCap = False,
    as_json: JsonOpt = False,
) -> None:
    """Give a person access: the account's data key is wrapped to their public key."""
    from govern.services.access import grant_access

    result = grant_access(
        context(ctx), slug, handle, reason=reason, duration=parse_duration_option(for_), over_cap=over_cap
    )
    warn_if_short(for_, result["until"], "this grant")
    if as_json:
        emit_json(result)
        return
    until = f" until {result['until']}" if result["until"] else ""
    notice(f"{result['handle']} now holds {result['account']}{until} (grant {result['id']})")


@app.command("extend")
def extend(
    ctx: typer.Context,
    slug: Slug,
    handle: Handle,
    for_: Annotated[
        str | None, typer.Option("--for", metavar="DURATION", help="New end: this long from now, like 30d.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="TIME", help="New end: an ISO 8601 time.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Renew a live time-boxed grant without ending it (an admin, or the owner who holds the account)."""
    from govern.services.access import extend_grant

    result = extend_grant(
        context(ctx), slug, handle, duration=parse_duration_option(for_), until=parse_time_option(until)
    )
    warn_if_short(for_, result["until"], "this extension")
    if as_json:
        emit_json(result)
        return
    notice(
        f"{result['handle']} holds {result['account']} until {result['until']}"
        f" (grant {result['id']}, was until {result['previous_until']})"
    )


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
    live: Annotated[bool, typer.Option("--live", help="Only grants that give access now.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List grants: holder, reason, who granted or approved, from, until, and live, expired or revoked."""
    from govern.services.access import list_grants

    emit_table(
        list_grants(context(ctx), account=account, staff=staff, include_ended=not live),
        GRANT_COLUMNS,
        as_json=as_json,
    )


@app.command("request")
def request(ctx: typer.Context, slug: Slug, reason: Reason, for_: For = None, as_json: JsonOpt = False) -> None:
    """Ask for access to an account; prints the request id."""
    from govern.services.requests import create_request

    result = create_request(context(ctx), slug, reason=reason, duration=parse_duration_option(for_))
    warn_if_short(for_, None, "the grant this request asks for")
    if as_json:
        emit_json(result)
        return
    sys.stdout.write(f"{result['id']}\n")
    notice(f"request {result['id']} for {result['account']} is pending: {result['who_decides']} decides it")


@app.command("requests")
def requests(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option("--pending", help="Only requests still waiting.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List access requests and their decisions."""
    from govern.services.requests import list_requests

    emit_table(list_requests(context(ctx), pending_only=pending), REQUEST_COLUMNS, as_json=as_json)


RequestId = Annotated[int, typer.Argument(metavar="REQUEST_ID", help="The number 'access request' printed.")]


@app.command("withdraw")
def withdraw(ctx: typer.Context, request_id: RequestId, as_json: JsonOpt = False) -> None:
    """Take back your own pending request (only the requester, only while it is pending)."""
    from govern.services.requests import withdraw as run

    result = run(context(ctx), request_id)
    if as_json:
        emit_json(result)
        return
    notice(f"withdrew request {result['id']} for {result['account']}")


@app.command("approve")
def approve(
    ctx: typer.Context,
    request_id: RequestId,
    over_cap: OverCap = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Required with --over-cap.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a request (an admin or the account's owner; never your own): performs the grant."""
    from govern.errors import InvalidInput
    from govern.services.requests import approve as run

    if over_cap and not reason:
        raise InvalidInput("--over-cap needs --reason: why may this account exceed its holder cap?")
    if reason and not over_cap:
        raise InvalidInput("--reason on approve is the over-cap justification; add --over-cap or drop it")
    result = run(context(ctx), request_id, over_cap_reason=reason if over_cap else None)
    if result["until"] is not None:
        lasts = parse_time_option(result["until"]) - parse_time_option(result["from"])  # type: ignore[operator]
        if lasts.total_seconds() < SHORT:
            warn(f"this grant lasts under an hour: it ends at {result['until']}")
    if as_json:
        emit_json(result)
        return
    until = f" until {result['until']}" if result["until"] else ""
    notice(f"approved: {result['handle']} now holds {result['account']}{until} (grant {result['id']})")


@app.command("deny")
def deny(ctx: typer.Context, request_id: RequestId, reason: Reason, as_json: JsonOpt = False) -> None:
    """Deny a request (an admin or the account's owner; never your own)."""
    from govern.services.requests import deny as run

    result = run(context(ctx), request_id, reason=reason)
    if as_json:
        emit_json(result)
        return
    notice(f"denied request {result['id']} of {result['handle']} for {result['account']}")


@app.command("record")
def record(ctx: typer.Context, slug: Slug, handle: Handle, reason: Reason, as_json: JsonOpt = False) -> None:
    """Record that someone knows the password out of band (admin): offboarding counts it."""
    from govern.services.access import record_knowledge

    result = record_knowledge(context(ctx), slug, handle, reason=reason)
    if as_json:
        emit_json(result)
        return
    notice(f"recorded {result['handle']} as knowing version {result['version']} of {result['account']}")
