"""Rotation: enforced schedules, two-phase rotations that never lock anyone out, retention.

``rotation start`` seals a generated password as a *pending* version under a new data
key (the current version stays current and readable); ``secret show --pending``
reveals it to set at the platform; ``rotation confirm`` makes it current and retires
the old key; ``rotation abort`` discards it. Each step commits on its own, so a crash
at any point leaves both the working password and the pending one intact.
"""

from typing import Any

from sqlmodel import col, select

from govern import validate
from govern.context import Context, Unlocked, acting, reading, verified_reading
from govern.custody import add_data_key, remove_wrap, retire_data_keys
from govern.db import WriteTx
from govern.errors import Conflict, NotFound
from govern.exposure import clear_exposures
from govern.housekeeping import discard_version
from govern.models import Account, CredentialVersion, DataKey, KeyWrap, Rotation
from govern.platforms import generate_password, rules_for
from govern.services.common import account_state, current_version, get_account, pending_rotation
from govern.services.secrets import content_commitment, may_decrypt, open_values, supersede, write_version
from govern.timeutil import format_time


def status(ctx: Context, *, verified: bool = False) -> list[dict[str, Any]]:
    """Every account's rotation state. ``verified`` (for ``--check``, which gates cron) first
    checks every governance row against the signed log: a deleted exposure refuses (exit 6)."""
    with verified_reading(ctx) if verified else reading(ctx) as (session, *_rest):
        now = ctx.now()
        accounts = session.exec(select(Account).order_by(col(Account.slug))).all()
        return [account_state(session, account, now) for account in accounts]


def overdue_followups(ctx: Context) -> int:
    """Open offboarding steps past their deadline (rows checked against the signed log)."""
    from govern.casework import overdue_steps

    with verified_reading(ctx) as (session, _me, _state):
        return len(overdue_steps(session, ctx.now()))


def needs_attention(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``rotation status --check`` fails on: anything overdue or exposed."""
    return [row for row in rows if row["overdue"] or row["exposed"]]


def start(ctx: Context, slug: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        may_decrypt(session, account, me, tx.now, "rotate credentials")
        existing = pending_rotation(session, account)
        if existing is not None:
            raise Conflict(f"a rotation of {slug} is already pending (started by {existing.started_by})")
        previous = current_version(session, account)
        if previous is None or "password" not in previous.fields.split(","):
            raise NotFound(f"{slug} has no password to rotate: set one with 'govern secret set {slug}'")
        values = open_values(tx, me, account, previous)
        values["password"] = generate_password(account.platform)
        data_key, key = add_data_key(tx, account)
        version = write_version(tx, me, account, values, ["password"], status="pending", data_key=data_key, key=key)
        assert account.id is not None
        assert version.id is not None
        assert previous.id is not None
        rotation = Rotation(
            account_id=account.id,
            status="pending",
            pending_version_id=version.id,
            previous_version_id=previous.id,
            started_by=me.handle,
            started_at=tx.now,
        )
        session.add(rotation)
        session.flush()
        rules = rules_for(account.platform)
        tx.audit.append(
            "rotation.started",
            account=slug,
            data={
                "rotation": rotation.id,
                "pending_version": version.number,
                "current_version": previous.number,
                "length": len(values["password"]),
                "platform_rules": rules.name,
                "fields": version.fields.split(","),
                "content": content_commitment(tx, version),
            },
        )
    return {
        "account": slug,
        "rotation": rotation.id,
        "pending_version": version.number,
        "current_version": previous.number,
        "started_by": me.handle,
        "started_at": format_time(tx.now),
    }


def _pending(tx: WriteTx, me: Unlocked, slug: str) -> tuple[Account, Rotation, CredentialVersion]:
    """The account, its pending rotation and pending version, for a holder or admin."""
    account = get_account(tx.session, slug)
    may_decrypt(tx.session, account, me, tx.now, "rotate credentials")
    rotation = pending_rotation(tx.session, account)
    if rotation is None:
        raise NotFound(f"no rotation of {slug} is pending: start one with 'govern rotation start {slug}'")
    pending = tx.session.get(CredentialVersion, rotation.pending_version_id)
    assert pending is not None
    return account, rotation, pending


def confirm(ctx: Context, slug: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    with acting(ctx) as (tx, me):
        session = tx.session
        account, rotation, pending = _pending(tx, me, slug)
        previous = current_version(session, account)
        if previous is not None:
            supersede(tx, previous)
        pending.status = "current"
        session.add(pending)
        data_key = session.get(DataKey, pending.data_key_id)
        assert data_key is not None
        retired = retire_data_keys(tx, account, keep=data_key)
        cleared = clear_exposures(tx, account, ["password"], pending)
        rotation.status = "confirmed"
        rotation.decided_by = me.handle
        rotation.decided_at = tx.now
        session.add(rotation)
        tx.audit.append(
            "rotation.confirmed",
            account=slug,
            data={
                "rotation": rotation.id,
                "version": pending.number,
                "previous_version": None if previous is None else previous.number,
                "retired_data_keys": retired,
                "exposures_cleared": cleared,
            },
        )
    return {"account": slug, "rotation": rotation.id, "version": pending.number, "exposures_cleared": cleared}


def abort(ctx: Context, slug: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    with acting(ctx) as (tx, me):
        session = tx.session
        _account, rotation, pending = _pending(tx, me, slug)
        discard_version(tx, pending, "aborted")
        data_key = session.get(DataKey, pending.data_key_id)
        assert data_key is not None
        data_key.retired_at = tx.now
        session.add(data_key)
        removed = []
        for wrap in session.exec(select(KeyWrap).where(KeyWrap.data_key_id == data_key.id)).all():
            removed.append([wrap.data_key_id, wrap.recipient_fingerprint])
            remove_wrap(session, wrap, tx.now)
        rotation.status = "aborted"
        rotation.decided_by = me.handle
        rotation.decided_at = tx.now
        session.add(rotation)
        tx.audit.append(
            "rotation.aborted",
            account=slug,
            data={"rotation": rotation.id, "version": pending.number, "data_key": data_key.id, "removed": removed},
        )
    return {"account": slug, "rotation": rotation.id, "discarded_version": pending.number}
