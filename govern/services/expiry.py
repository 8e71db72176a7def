"""``govern sweep``: a write whose only work is the housekeeping every write does first
(expiry of time-boxed grants, retention of versions: :mod:`govern.housekeeping`)."""

from typing import Any

from govern.context import Context, acting


def sweep(ctx: Context) -> list[dict[str, Any]]:
    """A write whose only work is the expiry processing every write does first."""
    with acting(ctx) as (tx, _me):
        done: list[dict[str, Any]] = tx.extras["expired"]
    return done
