"""``govern account``: register corporate accounts and their settings."""

from typing import Annotated

import typer

from govern.cli.common import (
    JsonOpt,
    context,
    emit_json,
    emit_record,
    emit_table,
    notice,
    parse_duration_option,
)

app = typer.Typer(help="Register corporate social media accounts.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT", help="Short name of the account, like x-acme.")]
Platform = Annotated[
    str | None, typer.Option("--platform", help="x, instagram, facebook, linkedin, tiktok, youtube or other.")
]
Handle = Annotated[str | None, typer.Option("--handle", help="The account's handle on the platform, like @acme.")]
Team = Annotated[str | None, typer.Option("--team", help="Owning team.")]
Owner = Annotated[str | None, typer.Option("--owner", metavar="HANDLE", help="Person who owns the account.")]
RotateEvery = Annotated[
    str | None, typer.Option("--rotate-every", metavar="DURATION", help="Rotation period, like 90d.")
]
MaxHolders = Annotated[
    int | None, typer.Option("--max-holders", metavar="N", help="Most people who may hold it (default 3).")
]
ACCOUNT_COLUMNS = [
    "account",
    "platform",
    "handle",
    "team",
    "owner",
    "holders",
    "max_holders",
    "rotate_every",
    "current_version",
]


@app.command("add")
def add(
    ctx: typer.Context,
    slug: Slug,
    platform: Platform = None,
    handle: Handle = None,
    team: Team = None,
    owner: Owner = None,
    rotate_every: RotateEvery = None,
    max_holders: MaxHolders = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an account; its data key is wrapped to the admins and the recovery key."""
    from govern.errors import InvalidInput
    from govern.services.accounts import add_account

    if platform is None or handle is None:
        raise InvalidInput("account add needs --platform and --handle")
    result = add_account(
        context(ctx),
        slug,
        platform=platform,
        handle=handle,
        team=team,
        owner=owner,
        rotate_every=parse_duration_option(rotate_every),
        max_holders=max_holders,
    )
    if as_json:
        emit_json(result)
        return
    slug = result["account"]
    notice(f"registered {slug} ({result['platform']} {result['handle']}); set its secret: govern secret set {slug}")


@app.command("set")
def set_(
    ctx: typer.Context,
    slug: Slug,
    platform: Platform = None,
    handle: Handle = None,
    team: Team = None,
    owner: Owner = None,
    rotate_every: RotateEvery = None,
    max_holders: MaxHolders = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account's settings (admin only)."""
    from govern.services.accounts import update_account

    result = update_account(
        context(ctx),
        slug,
        platform=platform,
        handle=handle,
        team=team,
        owner=owner,
        rotate_every=parse_duration_option(rotate_every),
        max_holders=max_holders,
    )
    emit_record(result, as_json=as_json)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List accounts with their owners and holder counts."""
    from govern.services.accounts import list_accounts

    emit_table(list_accounts(context(ctx)), ACCOUNT_COLUMNS, as_json=as_json)


@app.command("show")
def show(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """Show an account, its settings and current holders."""
    from govern.services.accounts import show_account

    emit_record(show_account(context(ctx), slug), as_json=as_json)
