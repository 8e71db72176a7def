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
