"""``govern review``: periodic access reviews."""

from typing import Annotated

import typer

from govern.cli.common import JsonOpt, context, emit_json, emit_table, notice

app = typer.Typer(help="Run periodic access reviews: certify or revoke every grant.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(metavar="ACCOUNT")]
Handle = Annotated[str, typer.Argument(metavar="HANDLE")]
ITEM_COLUMNS = ["account", "handle", "grant", "decision", "decided_by", "decided_at", "reason"]


def _summary(result: dict[str, object]) -> str:
    counts = result["counts"]
    assert isinstance(counts, dict)
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no items"
    return f"review {result['id']} ({result['name']}) is {result['status']}: {parts}"


@app.command("start")
def start(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="A label, like 'Q4 2026'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a review: every live grant becomes an item to certify or revoke (admin)."""
    from govern.services.review import start as run

    result = run(context(ctx), name=name)
    if as_json:
        emit_json(result)
        return
    notice(_summary(result))


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show every review and its items (the evidence an auditor asks for)."""
    from govern.services.review import list_reviews

    reviews = list_reviews(context(ctx))
    if as_json:
        emit_json(reviews)
        return
    if not reviews:
        notice("no access review yet: start one with 'govern review start'")
    for review in reviews:
        notice(_summary(review))
        items = review["items"]
        assert isinstance(items, list)
        emit_table(items, ITEM_COLUMNS, as_json=False)


@app.command("certify")
def certify(ctx: typer.Context, slug: Slug, handle: Handle, as_json: JsonOpt = False) -> None:
    """Certify that a person should keep an account (an admin or the account's owner)."""
    from govern.services.review import certify as run

    result = run(context(ctx), slug, handle)
    if as_json:
        emit_json(result)
        return
    notice(f"certified {handle} on {slug}; {_summary(result)}")


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    slug: Slug,
    handle: Handle,
    reason: Annotated[str, typer.Option("--reason")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a person's access at once, as a review decision (admin)."""
    from govern.services.review import revoke as run

    result = run(context(ctx), slug, handle, reason=reason)
    if as_json:
        emit_json(result)
        return
    notice(f"revoked {handle} from {slug}; rotate its password: what they saw is exposed")


@app.command("close")
def close(
    ctx: typer.Context,
    revoke_undecided: Annotated[
        bool, typer.Option("--revoke-undecided", help="Revoke every item nobody certified.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Close the open review; refused while items are undecided (unless --revoke-undecided)."""
    from govern.services.review import close as run

    result = run(context(ctx), revoke_undecided=revoke_undecided)
    if as_json:
        emit_json(result)
        return
    notice(_summary(result))
