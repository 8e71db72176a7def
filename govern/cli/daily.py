"""``govern inbox`` and ``govern notify``: what waits for whom, and telling them."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice

INBOX_COLUMNS = ["severity", "kind", "account", "what"]


def inbox(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 7 if anything is overdue (or exposed, or late).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Everything waiting for you: decisions, ending grants, rotations, offboarding steps, policy."""
    from govern.services.inbox import inbox as run

    result = run(context(ctx))
    items = result["items"]
    if as_json:
        emit_json(result)
    elif items:
        emit_table(items, INBOX_COLUMNS, as_json=False)
    else:
        notice(f"nothing waits for {result['handle']}")
    overdue = result["counts"]["overdue"]
    if check and overdue:
        from govern.errors import CheckFailed

        raise CheckFailed(f"{overdue} overdue item(s) in the inbox of {result['handle']}")


def notify(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send and record nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send each person their inbox digest, and admins the vault-wide one (for cron)."""
    from govern.errors import Unavailable
    from govern.services.notify import load_config
    from govern.services.notify import notify as run

    config = load_config()
    result = run(context(ctx), config, dry_run=dry_run)
    if as_json:
        emit_json(result)
    else:
        for message in result["messages"]:
            where = message["address"] or message["channel"]
            if message.get("skipped"):
                notice(f"skipped {message['to']}: {message['skipped']}")
                continue
            verb = "would send" if dry_run else ("sent" if message["sent"] else "could not send")
            notice(f"{verb} {len(message['lines'])} line(s) to {message['to']} ({where})")
            if dry_run:
                for line in message["lines"]:
                    notice(f"  {line}")
        if not result["messages"]:
            notice("nothing new or due: nothing sent")
    if result["failures"]:
        raise Unavailable(f"notify could not deliver everything: {result['error']} (it retries on the next run)")
