"""``govern audit``: read the tamper-evident event log."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_table, parse_time_option

app = typer.Typer(help="Read the tamper-evident audit log.", no_args_is_help=True)

LOG_COLUMNS = ["seq", "ts", "actor", "action", "account", "subject", "reason"]


@app.command("log")
def log(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option("--account", metavar="ACCOUNT")] = None,
    staff: Annotated[
        str | None, typer.Option("--staff", metavar="HANDLE", help="Events by or about this person.")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Events whose action starts with this, like access.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="ISO 8601; UTC unless an offset is given.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="TIME")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show audit events, oldest first."""
    from govern.services.auditlog import query_events

    events = query_events(
        context(ctx),
        account=account,
        staff=staff,
        action=action,
        since=parse_time_option(since),
        until=parse_time_option(until),
    )
    emit_table(events, LOG_COLUMNS, as_json=as_json)
