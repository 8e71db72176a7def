"""``govern secret``: set and reveal an account's credentials."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from govern.cli import clip as clipping
from govern.cli.clip import ClipOpt
from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice, stdin_broker, warn

app = typer.Typer(help="Set, reveal and list an account's credentials.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT", help="Short name of the account, like x-acme.")]
_MAX_RECOVERY_FILE = 64 * 1024


def _read_totp_uri(ctx: typer.Context, value: str) -> str:
    from govern.errors import InvalidInput

    if value == "-":
        return str(stdin_broker(ctx).take("TOTP URI"))
    if value.startswith("@"):
        from govern.infile import read_text_file

        return read_text_file(value[1:], "TOTP URI file", limit=64 * 1024).strip()
    raise InvalidInput(
        "a TOTP seed on the command line leaks into shell history and process lists:"
        " pass --totp-uri - and pipe it in, or --totp-uri @FILE"
    )


def _read_recovery_codes(path: Path) -> list[str]:

    from govern.infile import read_text_file

    return read_text_file(path, "recovery codes file", limit=_MAX_RECOVERY_FILE).splitlines()


def _prompt_password() -> str:
    from govern.errors import InvalidInput
    from govern.unlock import read_hidden

    first = read_hidden("New password: ")
    if read_hidden("Repeat it: ") != first:
        raise InvalidInput("the two passwords differ")
    return first


@app.command("set")
def set_(
    ctx: typer.Context,
    slug: Slug,
    username: Annotated[str | None, typer.Option("--username", help="The login name (stored sealed).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for the password at a hidden prompt.")
    ] = False,
    totp_uri: Annotated[
        str | None,
        typer.Option(
            "--totp-uri",
            metavar="-|@FILE",
            help="The otpauth:// URI of the 2FA seed: from stdin (-) or a file (@FILE), never the command line.",
        ),
    ] = None,
    recovery_codes_file: Annotated[
        Path | None,
        typer.Option("--recovery-codes-file", metavar="FILE", help="A file of recovery codes, one a line."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Seal a new credential version. Fields you do not pass are kept from the current one."""
    from govern.errors import InvalidInput
    from govern.services.secrets import set_secret

    if password_stdin and password_prompt:
        raise InvalidInput("use either --password-stdin or --password-prompt")
    password: str | None = None
    if password_stdin:
        password = str(stdin_broker(ctx).take("password"))
    elif password_prompt or (
        username is None and totp_uri is None and recovery_codes_file is None and sys.stdin.isatty()
    ):
        password = _prompt_password()
    uri = None if totp_uri is None else _read_totp_uri(ctx, totp_uri)
    codes = None if recovery_codes_file is None else _read_recovery_codes(recovery_codes_file)
    result = set_secret(context(ctx), slug, username=username, password=password, totp_uri=uri, recovery_codes=codes)
    if as_json:
        emit_json(result)
        return
    notice(
        f"{result['account']} is now at version {result['version']}"
        f" ({', '.join(result['fields'])}; changed: {', '.join(result['changed'])})"
    )


@app.command("show")
def show(
    ctx: typer.Context,
    slug: Slug,
    field: Annotated[str, typer.Option("--field", help="password, username, totp-uri or recovery-codes.")] = "password",
    pending: Annotated[bool, typer.Option("--pending", help="The pending version of a rotation in progress.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", metavar="N", help="Admins: an earlier version still retained.")
    ] = None,
    as_json: JsonOpt = False,
    clip: ClipOpt = False,
) -> None:
    """Reveal one field of the current credential (audited)."""
    from govern.errors import InvalidInput
    from govern.services.secrets import reveal

    if pending and version is not None:
        raise InvalidInput("use either --pending or --version")
    if clip and as_json:
        raise InvalidInput("use either --clip or --json")
    clipboard = clipping.prepare() if clip else None
    result = reveal(context(ctx), slug, field, pending=pending, version_number=version)
    for line in result.warnings:
        warn(line)
    if clipboard is not None:
        clipping.to_clipboard(clipboard, result.value, f"the {result.field} of {result.account}")
        return
    if as_json:
        emit_json(
            {
                "account": result.account,
                "version": result.version,
                "field": result.field,
                "value": result.value,
            }
        )
        return
    sys.stdout.write(f"{result.value}\n")


@app.command("history")
def history(ctx: typer.Context, slug: Slug, as_json: JsonOpt = False) -> None:
    """List credential versions: who set each and when. Never a value."""
    from govern.services.secrets import history as run

    emit_table(
        run(context(ctx), slug),
        ["version", "status", "fields", "changed", "set_by", "set_at", "retain_until", "exposed_to"],
        as_json=as_json,
    )
