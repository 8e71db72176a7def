"""The root command: global options, top-level commands and the command groups."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from govern.cli import (
    access,
    account,
    audit,
    db,
    importer,
    keys,
    offboard,
    pin,
    policy,
    review,
    rotation,
    secret,
    staff,
)
from govern.cli import clip as clipping
from govern.cli import completion as completing
from govern.cli.clip import ClipOpt
from govern.cli.common import Globals, JsonOpt, context, emit_json, emit_record, globals_of, notice, warn

app = typer.Typer(
    name="govern",
    help="Govern access to your organisation's corporate social media accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(staff.app, name="staff")
app.add_typer(account.app, name="account")
app.add_typer(secret.app, name="secret")
app.add_typer(access.app, name="access")
app.add_typer(rotation.app, name="rotation")
app.add_typer(policy.app, name="policy")
app.add_typer(review.app, name="review")
app.add_typer(offboard.app, name="offboard")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(pin.app, name="pin")
app.command("import")(importer.import_)


def _show_version(value: bool) -> None:
    if value:
        from govern import __version__

        sys.stdout.write(f"govern {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Database URL or SQLite file (default: GOVERN_DB_URL, else vault.db in GOVERN_HOME or the data dir).",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--as", metavar="HANDLE", help="The acting person (default: GOVERN_USER, else your login name)."),
    ] = None,
    passphrase_stdin: Annotated[
        bool,
        typer.Option("--passphrase-stdin", help="Read the passphrase from the first line of standard input."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Show the version of govern and exit."),
    ] = False,
) -> None:
    """Govern access to your organisation's corporate social media accounts."""
    ctx.obj = Globals(db=db_url, actor=actor, passphrase_stdin=passphrase_stdin, debug=debug)


@app.command()
def init(
    ctx: typer.Context,
    org: Annotated[str, typer.Option("--org", help="Organisation name.")],
    admin: Annotated[str, typer.Option("--admin", metavar="HANDLE", help="Handle of the first administrator.")],
    name: Annotated[str, typer.Option("--name", help="Full name of the first administrator.")],
    email: Annotated[str | None, typer.Option("--email", help="Their email address.")] = None,
    recovery_file: Annotated[
        Path | None,
        typer.Option(
            "--recovery-file",
            metavar="PATH",
            help="Write the recovery key here (0600) instead of showing it.",
        ),
    ] = None,
    parents: Annotated[
        bool,
        typer.Option("--parents", help="Create the folders of --db that do not exist (0700)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a vault, its first admin, and the organisation recovery key."""
    import os

    from govern.services.vaultinit import init_vault

    # The default place (GOVERN_HOME or the platform data folder) is govern's own: made when missing.
    default_place = globals_of(ctx).db is None and not os.environ.get("GOVERN_DB_URL")
    result = init_vault(
        context(ctx, actor=admin),
        org=org,
        admin=admin,
        name=name,
        email=email,
        recovery_file=recovery_file,
        parents=parents or default_place,
    )
    if as_json:
        emit_json(result.__dict__)
        return
    notice(f"created the vault of {result.org} at {result.db}")
    notice(f"{result.admin} is admin; key fingerprint {result.key_fingerprint}")
    notice(
        f"vault fingerprint {result.fingerprint}: give it to every person out of band (they confirm it with"
        " 'govern pin trust --fingerprint …' on a new client)"
    )
    if result.recovery_file:
        notice(f"recovery key written to {result.recovery_file} (mode 0600): store it offline, then delete the file")
    else:
        warn("the recovery key below is shown once: store it offline (a safe, a password manager of the board)")
        sys.stdout.write(f"{result.recovery_key}\n")


@app.command()
def whoami(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the acting person and the vault."""
    from govern.services.vaultinit import whoami as run

    emit_record(run(context(ctx)), as_json=as_json)


@app.command()
def doctor(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Check the installation and vault: backend, schema, KDF, keyring, file modes. Exit 7 on problems."""
    from govern.services.vaultinit import doctor as run

    report = run(context(ctx))
    emit_record(report, as_json=as_json)
    if report["problems"]:
        from govern.errors import CheckFailed

        raise CheckFailed(f"{len(report['problems'])} problem(s) found: {report['problems'][0]}")


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Show the version of govern."""
    from govern import __version__

    if as_json:
        emit_json({"version": __version__})
    else:
        sys.stdout.write(f"govern {__version__}\n")


@app.command()
def totp(
    ctx: typer.Context,
    account_slug: Annotated[str, typer.Argument(metavar="ACCOUNT")],
    as_json: JsonOpt = False,
    clip: ClipOpt = False,
) -> None:
    """Show the current TOTP code of an account (seconds left on stderr)."""
    from govern.services.secrets import totp as run

    if clip and as_json:
        from govern.errors import InvalidInput

        raise InvalidInput("use either --clip or --json")
    clipboard = clipping.prepare() if clip else None
    code, reveal = run(context(ctx), account_slug)
    for line in reveal.warnings:
        warn(line)
    if clipboard is not None:
        clipping.to_clipboard(clipboard, code.code, f"the TOTP code of {reveal.account}")
        notice(f"valid for {code.seconds_left} more second(s)")
        return
    if as_json:
        emit_json(
            {
                "account": reveal.account,
                "version": reveal.version,
                "code": code.code,
                "seconds_left": code.seconds_left,
            }
        )
        return
    sys.stdout.write(f"{code.code}\n")
    notice(f"valid for {code.seconds_left} more second(s)")


@app.command()
def sweep(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Process expired grants now: delete their wraps, log the expiry, mark exposure (for cron)."""
    from govern.services.expiry import sweep as run

    done = run(context(ctx))
    if as_json:
        emit_json(done)
        return
    notice(f"processed {len(done)} expired grant(s)")
    for item in done:
        notice(f"  {item['handle']} on {item['account']} (grant {item['grant']})")


@app.command()
def recover(
    ctx: typer.Context,
    recovery_file: Annotated[
        Path, typer.Option("--recovery-file", metavar="PATH", help="The recovery key kept offline (- for stdin).")
    ],
    admin: Annotated[str, typer.Option("--admin", metavar="HANDLE", help="Handle of the new, recovering admin.")],
    name: Annotated[str, typer.Option("--name", help="Their full name.")],
    email: Annotated[str | None, typer.Option("--email")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Enrol a new admin with the organisation recovery key when no admin can unlock any more."""
    from govern.cli.common import stdin_broker
    from govern.services.recovery import recover as run

    if str(recovery_file) == "-":
        text = str(stdin_broker(ctx).take("recovery key"))
    else:
        from govern.infile import read_text_file

        text = read_text_file(recovery_file, "recovery key file")
    result = run(context(ctx, actor=admin), text, admin=admin, name=name, email=email)
    if as_json:
        emit_json(result)
        return
    notice(
        f"{result['admin']} is admin again, holding {result['data_keys']} data key(s); key {result['key_fingerprint']}"
    )
    notice("keep the recovery key offline again; consider rotating every credential if the old admins are gone")


# Issue 11 (daily team use): the inbox and notifications, in a module of their own.
from govern.cli import daily  # noqa: E402

app.command("inbox")(daily.inbox)
app.command("notify")(daily.notify)

# Your own passphrase and cached unlock, and shell completion (listed after the commands above).
app.command("passwd")(keys.passwd)
app.command("lock")(keys.lock)
app.command("completion")(completing.completion)
