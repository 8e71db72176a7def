"""This client's pin of a vault: show it, trust a vault from a fingerprint given out of band,
and re-pin deliberately after a legitimate restore."""

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from audit.checkpoint import read_checkpoint
from audit.errors import ChainError
from audit.fingerprint import normalise, same
from audit.state import LogState
from audit.stream import head
from govern import validate
from govern.context import Context, acting, authenticate, unlock
from govern.errors import GovernError, IntegrityFailure, InvalidInput, NotFound
from govern.infile import read_text_file
from govern.models import VaultMeta
from govern.trust import (
    check_checkpoint_extends,
    checkpoint_signer_refusal,
    confirm,
    fingerprint_of,
    load_pin,
    pin_path,
    read_pin,
    remember_database,
    rewind_pin,
    save_pin,
    verify_from_pin,
)


def _vault_id(ctx: Context) -> str:
    with ctx.store.read() as session:
        meta = session.exec(select(VaultMeta)).first()
        if meta is None:
            raise NotFound("this database holds no vault")
        return meta.id


def show(ctx: Context) -> dict[str, Any]:
    """The pin this client keeps for the vault in this database, and whether the log still extends it.

    The log is verified from the pin (nothing is saved): after a restore that rewrote or cut
    what this client pinned, the status says so and the command exits 6.
    """
    vault_id = _vault_id(ctx)
    pin = read_pin(vault_id)
    with ctx.store.read() as session:
        last = head(session)
        try:
            state: LogState | None = verify_from_pin(session, ctx.db_url, save=False)
            problem = None
        except GovernError as error:
            state, problem = None, str(error)
    view: dict[str, Any] = {"vault_id": vault_id, "pinned": pin is not None}
    if pin is None:
        view["fingerprint"] = None if state is None else fingerprint_of(state)
        view["confirmed"] = False
    else:
        view.update(
            {
                "fingerprint": pin.fingerprint,
                "org": None if pin.state is None else pin.state.org,
                "genesis": pin.anchor.genesis,
                "seq": pin.anchor.seq,
                "head": pin.anchor.head,
                "confirmed": bool(pin.confirmed_by),
                "confirmed_by": ", ".join(pin.confirmed_by) or None,
                "path": str(pin_path(vault_id)),
            }
        )
    view["log_seq"] = None if last is None else last.seq
    if problem is not None:
        view["status"] = f"refused: {problem}"
    elif pin is None:
        view["status"] = "first use: not pinned on this client"
    elif state is not None and pin.fingerprint is not None and not same(pin.fingerprint, fingerprint_of(state)):
        view["status"] = "refused: the log's fingerprint is not the pinned one"
    else:
        view["status"] = "ok" if view["confirmed"] else "ok, but the fingerprint was never confirmed on this client"
    return view


def _expected(typed: str) -> str:
    fingerprint = normalise(typed)
    if fingerprint is None:
        raise InvalidInput(
            "a vault fingerprint is 32 characters A-Z and 2-7 (dashes and spaces ignored), as 'govern init' printed it"
        )
    return fingerprint


def trust(ctx: Context, typed: str, checkpoint: Path | None = None) -> dict[str, Any]:
    """Pin the vault of this database from a fingerprint (and a checkpoint) given out of band.

    The whole log is verified from its genesis; its fingerprint must be ``typed`` (else exit 6,
    nothing pinned); with ``checkpoint`` (signed by an admin or auditor of the vault), the log
    must contain the checkpointed event (else exit 6). The acting person, if they are an
    enrolled person of the vault, unlocks so that their confirmation is authenticated.
    """
    expected = _expected(typed)
    text = None if checkpoint is None else read_text_file(checkpoint, "checkpoint", limit=64 * 1024)
    with ctx.store.read() as session:
        state = verify_from_pin(session, ctx.db_url, progress=ctx.progress, save=False, fresh=True)
        actual = fingerprint_of(state)
        if not same(actual, expected):
            raise IntegrityFailure(
                f"this vault's fingerprint is {actual}, not the {expected} you were given: refusing to pin it"
                " (a look-alike vault, or the wrong database)"
            )
        anchored = None if text is None else _check_checkpoint(session, text, state)
        person = state.people.get(ctx.actor)
        keys = None
        if person is not None and person.status == "active" and person.key is not None:
            keys = unlock(ctx, session, authenticate(session, ctx.actor, state), state).keys
    confirm(state, ctx.db_url, keys, "pin trust")
    return {
        "vault_id": state.vault_id,
        "org": state.org,
        "fingerprint": actual,
        "seq": state.seq,
        "head": state.head,
        "checkpoint": anchored,
        "confirmed_for": ctx.actor if keys is not None else None,
    }


def _check_checkpoint(session: Session, text: str, state: LogState) -> dict[str, Any]:
    keys = {fp: (key.owner, key.ed25519) for fp, key in state.keys.items()}
    try:
        body = read_checkpoint(text, keys)
    except ChainError as error:
        raise IntegrityFailure(f"the checkpoint is refused: {error}") from None
    if body["vault_id"] != state.vault_id:
        raise IntegrityFailure("the checkpoint belongs to another vault")
    refusal = checkpoint_signer_refusal(state, body)
    if refusal is not None:
        raise IntegrityFailure(refusal)
    check_checkpoint_extends(session, body, state)
    return {"seq": body["seq"], "head": body["head"], "signer": body["signer"]}


def reset(ctx: Context, reason: str) -> dict[str, Any]:
    """Forget this client's pin, verify the whole log from its genesis and pin what it proves.

    For a legitimate restore from backup only: the re-pin is itself recorded in the log
    (``client.repinned``, with the old and new heads and the reason), signed by the actor.
    """
    reason = validate.reason(reason)
    vault_id = _vault_id(ctx)
    previous = load_pin(vault_id)
    with ctx.store.read() as session:
        rewind_pin(session, vault_id)
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
