"""``govern pin``: this client's pin of the vault (kept outside the database)."""

from pathlib import Path
from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_record, notice

app = typer.Typer(help="Show or deliberately reset this client's pin of the vault.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The vault fingerprint, genesis, highest head this client verified, and whether the log extends it.

    Exit 6 when the log no longer extends the pin (rolled back, cut or rewritten).
    """
    from govern.services.pinning import show as run

    view = run(context(ctx))
    emit_record(view, as_json=as_json)
    if str(view["status"]).startswith("refused"):
        from govern.errors import IntegrityFailure

        raise IntegrityFailure(f"this client's pin: {view['status']}")
    if not view["pinned"] and view["fingerprint"] is not None:
        notice(f"first use: vault fingerprint {view['fingerprint']} (confirm it with 'govern pin trust --fingerprint')")


@app.command("trust")
def trust(
    ctx: typer.Context,
    fingerprint: Annotated[
        str,
        typer.Option("--fingerprint", metavar="FP", help="The vault fingerprint you were given out of band."),
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint", metavar="FILE", help="Also refuse a log behind this checkpoint or diverging from it."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin and confirm this vault from a fingerprint given out of band; exit 6 if it differs."""
    from govern.services.pinning import trust as run

    result = run(context(ctx), fingerprint, checkpoint)
    notice(f"pinned and confirmed vault {result['vault_id']} ({result['fingerprint']}) at event {result['seq']}")
    emit_record(result, as_json=as_json)


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
