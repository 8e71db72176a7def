"""``govern passwd`` and ``govern lock``: a person's own passphrase and cached unlock."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, notice


def passwd(
    ctx: typer.Context,
    new_passphrase_stdin: Annotated[
        bool,
        typer.Option("--new-passphrase-stdin", help="Read the new passphrase from the first line of stdin."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change your passphrase: re-seal your private keys (Argon2id raised to the defaults)."""
    from govern.services.passphrase import change_passphrase

    result = change_passphrase(context(ctx), new_from_stdin=new_passphrase_stdin)
    if as_json:
        emit_json(result)
        return
    notice(f"passphrase of {result['handle']} changed; keys re-sealed with Argon2id {result['kdf']}")
    notice("the cached unlock was dropped: the next command asks for the new passphrase")


def lock(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Forget this vault's cached unlock on this machine (no passphrase needed)."""
    from govern.services.passphrase import lock as run

    result = run(context(ctx))
    if as_json:
        emit_json(result)
        return
    if result["forgotten"]:
        notice("locked: the cached unlock is forgotten; the next command asks for the passphrase")
    else:
        notice("locked: nothing was cached for this vault")
