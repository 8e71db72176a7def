"""``govern db``: schema migrations."""

import typer

from govern.cli.common import notice

app = typer.Typer(help="Manage the vault's database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply pending schema migrations (Alembic)."""
    from govern.cli.common import globals_of
    from govern.services.vaultinit import upgrade_schema
    from govern.settings import resolve_db_url

    before, after = upgrade_schema(resolve_db_url(globals_of(ctx).db))
    if before == after:
        notice(f"the schema is up to date ({after})")
    else:
        notice(f"upgraded the schema from {before} to {after}")
