"""This client's pin of a vault: show it, and re-pin deliberately after a legitimate restore."""

from typing import Any

from sqlmodel import select

from audit.stream import head
from govern import validate
from govern.context import Context, acting
from govern.errors import NotFound
from govern.models import VaultMeta
from govern.trust import forget_pin, load_pin, pin_view, remember_database, save_pin


def _vault_id(ctx: Context) -> str:
    with ctx.store.read() as session:
        meta = session.exec(select(VaultMeta)).first()
        if meta is None:
            raise NotFound("this database holds no vault")
        return meta.id


def show(ctx: Context) -> dict[str, Any]:
    """The pin this client keeps for the vault in this database, and where the log stands."""
    vault_id = _vault_id(ctx)
    pinned = load_pin(vault_id)
    with ctx.store.read() as session:
        last = head(session)
    if pinned is None:
        return {"vault_id": vault_id, "pinned": False, "log_seq": None if last is None else last.seq}
    view = pin_view(pinned)
    view["pinned"] = True
    view["log_seq"] = None if last is None else last.seq
    behind = last is None or last.seq < pinned.seq
    view["status"] = "the log is shorter than what this client verified: rolled back or truncated" if behind else "ok"
    return view


def reset(ctx: Context, reason: str) -> dict[str, Any]:
    """Forget this client's pin, verify the whole log from its genesis and pin what it proves.

    For a legitimate restore from backup only: the re-pin is itself recorded in the log
    (``client.repinned``, with the old and new heads and the reason), signed by the actor.
    """
    reason = validate.reason(reason)
    vault_id = _vault_id(ctx)
    previous = load_pin(vault_id)
    forget_pin(vault_id)
    remember_database(ctx.db_url, vault_id)
    try:
        with acting(ctx) as (tx, _me):
            before = None if previous is None else {"seq": previous.seq, "head": previous.head}
            tx.audit.append("client.repinned", reason=reason, data={"previous": before, "verified": tx.state.seq})
    except BaseException:
        if previous is not None and load_pin(vault_id) is None:
            save_pin(previous, ctx.db_url)
        raise
    return show(ctx)
