"""``govern policy``: the social media policy and who acknowledged it."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_record, emit_table, notice
from govern.cli.text import visible

app = typer.Typer(help="Publish the social media policy and track acknowledgements.", no_args_is_help=True)

Version = Annotated[str | None, typer.Option("--version", metavar="V", help="A policy version (default: current).")]


@app.command("publish")
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The policy text (UTF-8).")],
    version: Annotated[str, typer.Option("--version", metavar="V", help="Its version, like 2026-11.")],
    as_json: JsonOpt = False,
) -> None:
    """Publish a policy version (admin). From then on, access needs its acknowledgement."""
    from govern.infile import read_text_file
    from govern.services.policy import publish as run

    text = read_text_file(file, "policy file")
    result = run(context(ctx), text, version=version)
    if as_json:
        emit_json(result)
        return
    notice(f"published policy {result['version']} (sha256 {result['sha256'][:16]}…)")
    notice("from now on, access needs its acknowledgement: staff run 'govern policy ack'")


@app.command("ack")
def ack(ctx: typer.Context, version: Version = None, as_json: JsonOpt = False) -> None:
    """Acknowledge the policy (the acting person)."""
    from govern.services.policy import acknowledge

    result = acknowledge(context(ctx), version=version)
    if as_json:
        emit_json(result)
        return
    notice(f"{result['handle']} acknowledged policy {result['version']}")


@app.command("show")
def show(ctx: typer.Context, version: Version = None, as_json: JsonOpt = False) -> None:
    """Print the policy text (current version unless --version)."""
    from govern.services.policy import show as run

    meta, text = run(context(ctx), version=version)
    if as_json:
        emit_json({**meta, "text": text})
        return
    notice(f"policy {meta['version']}, published {meta['published_at']} by {meta['published_by']}")
    # Shown as text, lines kept: any other control character of the file is made visible.
    shown = visible(text, keep_newlines=True)
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Who has and has not acknowledged the current policy."""
    from govern.services.policy import status as run

    result = run(context(ctx))
    if as_json:
        emit_json(result)
        return
    if result["policy"] is None:
        notice("no policy has been published: access needs no acknowledgement")
        return
    emit_record(result["policy"], as_json=False)
    rows = [{**row, "acknowledged": row.get("acked_at") or "no"} for row in result["acknowledged"] + result["pending"]]
    emit_table(sorted(rows, key=lambda r: r["handle"]), ["handle", "role", "acknowledged"], as_json=False)
