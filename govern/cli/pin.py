"""``govern pin``: this client's pin of the vault (kept outside the database)."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_record, notice

app = typer.Typer(help="Show or deliberately reset this client's pin of the vault.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The vault id, genesis hash, recovery key fingerprint and highest head this client verified."""
    from govern.services.pinning import show as run

    emit_record(run(context(ctx)), as_json=as_json)


@app.command("reset")
def reset(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the log), e.g. the restore ticket.")],
    as_json: JsonOpt = False,
) -> None:
    """Re-pin after a legitimate restore: verify the whole log from its genesis; audited."""
    from govern.services.pinning import reset as run

    result = run(context(ctx), reason)
    notice(f"re-pinned vault {result['vault_id']} at event {result['seq']}")
    emit_record(result, as_json=as_json)
