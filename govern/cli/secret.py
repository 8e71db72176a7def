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


def _read_totp_uri(ctx: typer.Context, value: str, option: str = "--totp-uri", what: str = "TOTP URI") -> str:
    from govern.errors import InvalidInput

    if value == "-":
        return str(stdin_broker(ctx).take(what))
    if value.startswith("@"):
        from govern.infile import read_text_file

        return read_text_file(value[1:], f"{what} file", limit=64 * 1024).strip()
    raise InvalidInput(
        "a TOTP seed on the command line leaks into shell history and process lists:"
        f" pass {option} - and pipe it in, or {option} @FILE"
    )


def _totp_from_qr(image: Path, entry: int | None) -> str:
    """The otpauth URI in a QR screenshot; from a Google Authenticator export, the entry chosen."""
    from govern.errors import InvalidInput
    from govern.infile import read_bytes_file
    from govern.services.totpqr import MAX_IMAGE_BYTES, qr_texts, uri_from_qr_text

    uri, entries = uri_from_qr_text(qr_texts(read_bytes_file(image, "QR image", limit=MAX_IMAGE_BYTES)))
    if uri is not None:
        if entry is not None:
            raise InvalidInput("--totp-qr-entry applies to a Google Authenticator export QR; this one holds one seed")
        return uri
    storable = [e for e in entries if e.uri is not None]
    if entry is None and len(entries) == 1 and storable:
        return str(storable[0].uri)
    if entry is not None and 1 <= entry <= len(entries):
        chosen = entries[entry - 1]
        if chosen.uri is None:
            raise InvalidInput(f"entry {entry} of the export QR cannot be stored: {chosen.why_not}")
        return chosen.uri
    notice(f"the Google Authenticator export QR holds {len(entries)} account(s):")
    for item in entries:
        state = item.kind if item.uri is not None else f"{item.kind}: {item.why_not}"
        notice(f"  {item.number}  {item.issuer or '-'}  {item.name or '-'}  ({state})")
    if entry is not None:
        raise InvalidInput(f"--totp-qr-entry {entry} is not one of 1-{len(entries)}")
    raise InvalidInput("choose one with --totp-qr-entry N")


def _totp_from_options(
    ctx: typer.Context,
    slug: str,
    totp_uri: str | None,
    totp_key: str | None,
    totp_qr: Path | None = None,
    qr_entry: int | None = None,
) -> str | None:
    """The otpauth URI to store, from --totp-uri, a bare --totp-key or a --totp-qr image.

    Warns below RFC 4226's 128 bits.
    """
    from govern.errors import InvalidInput
    from govern.totp import RFC_SEED_BITS, seed_bits, uri_from_key, validate_uri

    if sum(option is not None for option in (totp_uri, totp_key, totp_qr)) > 1:
        raise InvalidInput("use one of --totp-uri, --totp-key and --totp-qr")
    if qr_entry is not None and totp_qr is None:
        raise InvalidInput("--totp-qr-entry goes with --totp-qr")
    if totp_uri is not None:
        uri = validate_uri(_read_totp_uri(ctx, totp_uri))
    elif totp_key is not None:
        uri = uri_from_key(_read_totp_uri(ctx, totp_key, "--totp-key", "2FA key"), slug)
    elif totp_qr is not None:
        uri = _totp_from_qr(totp_qr, qr_entry)
    else:
        return None
    bits = seed_bits(uri)
    if bits < RFC_SEED_BITS:
        warn(f"the 2FA seed holds {bits} bits, fewer than the {RFC_SEED_BITS} RFC 4226 asks for (stored anyway)")
    return uri


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
    totp_key: Annotated[
        str | None,
        typer.Option(
            "--totp-key",
            metavar="-|@FILE",
            help="The 2FA key as the platform shows it (base32, any case, spaces or dashes): stdin (-) or @FILE.",
        ),
    ] = None,
    totp_qr: Annotated[
        Path | None,
        typer.Option(
            "--totp-qr",
            metavar="IMAGE",
            help="A screenshot of the 2FA QR code, or of a Google Authenticator export QR (see --totp-qr-entry).",
        ),
    ] = None,
    totp_qr_entry: Annotated[
        int | None,
        typer.Option("--totp-qr-entry", metavar="N", help="Which account of a Google Authenticator export QR."),
    ] = None,
    recovery_codes_file: Annotated[
        Path | None,
        typer.Option("--recovery-codes-file", metavar="FILE", help="A file of recovery codes, one a line."),
    ] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate the password from the platform's rules.")
    ] = False,
    allow_weak: Annotated[
        str | None,
        typer.Option(
            "--allow-weak", metavar="REASON", help="Keep a password that breaks the platform's rules (audited)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Seal a new credential version. Fields you do not pass are kept from the current one."""
    from govern.errors import InvalidInput
    from govern.services.secrets import set_secret

    if password_stdin and password_prompt:
        raise InvalidInput("use either --password-stdin or --password-prompt")
    if generate and (password_stdin or password_prompt):
        raise InvalidInput("use either --generate or a password of your own")
    password: str | None = None
    if password_stdin:
        password = str(stdin_broker(ctx).take("password"))
    elif password_prompt or (
        username is None
        and totp_uri is None
        and totp_key is None
        and totp_qr is None
        and recovery_codes_file is None
        and not generate
        and sys.stdin.isatty()
    ):
        password = _prompt_password()
    uri = _totp_from_options(ctx, slug, totp_uri, totp_key, totp_qr, totp_qr_entry)
    codes = None if recovery_codes_file is None else _read_recovery_codes(recovery_codes_file)
    result = set_secret(
        context(ctx),
        slug,
        username=username,
        password=password,
        totp_uri=uri,
        recovery_codes=codes,
        generate=generate,
        allow_weak=allow_weak,
    )
    if as_json:
        emit_json(result)
        return
    notice(
        f"{result['account']} is now at version {result['version']}"
        f" ({', '.join(result['fields'])}; changed: {', '.join(result['changed'])})"
    )
    if result["generated"]:
        notice(f"a new password was generated: reveal it with 'govern secret show {result['account']}'")
    if result["weak"]:
        warn(f"{result['account']}'s password breaks its platform's rules (kept: --allow-weak, audited)")


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
