"""Access: grants wrap an account's data key to a person; revocations delete the wrap
and mark what the person could read as exposed (only a rotation clears that).
"""

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from audit.log import format_ts
from audit.state import LogState
from govern import validate
from govern.context import Context, Unlocked, acting, reading, vault_meta
from govern.custody import (
    Recipient,
    drop_wraps,
    ensure_custodians,
    live_data_keys,
    open_data_key,
    trusted_key,
    wrap_of,
    wrap_to_person,
)
from govern.db import WriteTx
from govern.errors import Conflict, Denied, InvalidInput, NotFound
from govern.exposure import clear_held_exposures
from govern.models import (
    AccessRequest,
    Account,
    Grant,
    KnowledgeRecord,
    Person,
    Policy,
    PolicyAck,
)
from govern.services.common import current_version, get_account, get_person, grant_status, live_grant, require_role
from govern.timeutil import format_time


def grant_view(grant: Grant, account: Account, person: Person, now: datetime) -> dict[str, Any]:
    return {
        "id": grant.id,
        "account": account.slug,
        "handle": person.handle,
        "reason": grant.reason,
        "granted_by": grant.granted_by,
        "from": format_time(grant.starts_at),
        "until": format_time(grant.ends_at),
        "status": grant_status(grant, now),
        "revoked_at": format_time(grant.revoked_at),
        "revoked_by": grant.revoked_by,
        "revoke_reason": grant.revoke_reason,
        "over_cap": grant.over_cap_reason is not None,
        "over_cap_reason": grant.over_cap_reason,
        "request": grant.request_id,
    }


def live_holders(session: Session, account: Account, now: datetime) -> list[Grant]:
    """Live grants of ``account``. Admins hold no grants (they are custodians), so none count."""
    grants = session.exec(select(Grant).where(Grant.account_id == account.id, col(Grant.revoked_at).is_(None))).all()
    return [g for g in grants if grant_status(g, now) == "live"]


def current_policy(session: Session) -> Policy | None:
    return session.exec(select(Policy).order_by(col(Policy.id).desc()).limit(1)).first()


def require_policy_ack(session: Session, person: Person) -> None:
    """Once a policy is published, only people who acknowledged its current version get access."""
    policy = current_policy(session)
    if policy is None:
        return
    ack = session.exec(
        select(PolicyAck).where(PolicyAck.policy_id == policy.id, PolicyAck.person_id == person.id)
    ).first()
    if ack is None:
        raise Denied(
            f"{person.handle} has not acknowledged the social media policy (version {policy.version}):"
            " they run 'govern policy ack'"
        )


def check_holdable(session: Session, account: Account, person: Person, now: datetime, state: LogState) -> Recipient:
    """Everything that must be true of a person before they may hold ``account``."""
    if person.role == "auditor":
        raise Denied(f"{person.handle} is an auditor; auditors can never be granted a credential")
    if person.role == "admin":
        raise Conflict(f"{person.handle} is an admin and already holds every account as a custodian")
    if person.status != "active":
        raise Denied(f"{person.handle} is {person.status}; only enrolled, active staff can hold access")
    key = trusted_key(state, person.handle)
    if live_grant(session, account, person, now) is not None:
        raise Conflict(f"{person.handle} already holds {account.slug}")
    require_policy_ack(session, person)
    return key


def issue_grant(
    tx: WriteTx,
    me: Unlocked,
    account: Account,
    person: Person,
    *,
    reason: str,
    duration: timedelta | None,
    over_cap: str | None,
    request: AccessRequest | None = None,
) -> Grant:
    """Record a grant and wrap the account's live data keys to the person.

    ``over_cap`` is the reason an admin gave for exceeding the holder cap, or None.
    """
    session = tx.session
    key = check_holdable(session, account, person, tx.now, tx.state)
    holders = live_holders(session, account, tx.now)
    if len(holders) >= account.max_holders:
        if over_cap is None:
            raise Denied(
                f"{account.slug} already has {len(holders)} holder(s), its cap is {account.max_holders}:"
                " revoke someone first, or an admin may pass --over-cap with a reason"
            )
        if me.person.role != "admin":
            raise Denied("only an admin may exceed an account's holder cap")
    else:
        over_cap = None
    ensure_custodians(tx, me)
    assert account.id is not None
    assert person.id is not None
    grant = Grant(
        account_id=account.id,
        person_id=person.id,
        reason=reason,
        granted_by=me.handle,
        starts_at=tx.now,
        ends_at=None if duration is None else tx.now + duration,
        request_id=None if request is None else request.id,
        over_cap_reason=over_cap,
    )
    session.add(grant)
    session.flush()
    meta = vault_meta(session)
    wrapped = []
    for data_key in live_data_keys(session, account):
        if wrap_of(session, data_key, key.fingerprint) is not None:
            continue
        secret = open_data_key(session, meta, account, data_key, me, tx.state)
        wrap_to_person(session, meta, account, data_key, secret, person, key, tx.now)
        wrapped.append(data_key.id)
    session.flush()
    cleared = clear_held_exposures(tx, account, person, key.fingerprint)
    data: dict[str, Any] = {
        "grant": grant.id,
        "until": None if grant.ends_at is None else format_ts(grant.ends_at),
        "data_keys": wrapped,
        "recipient": key.fingerprint,
        "request": None if request is None else request.id,
        "holders_after": len(holders) + 1,
        "max_holders": account.max_holders,
    }
    if cleared:
        data["exposures_cleared"] = cleared  # only when there are any: earlier events are unchanged
    tx.audit.append("access.granted", account=account.slug, subject=person.handle, reason=reason, data=data)
    if over_cap is not None:
        tx.audit.append(
            "access.over_cap",
            account=account.slug,
            subject=person.handle,
            reason=over_cap,
            data={"grant": grant.id, "holders_after": len(holders) + 1, "max_holders": account.max_holders},
        )
    return grant


def grant_access(
    ctx: Context,
    slug: str,
    handle: str,
    *,
    reason: str,
    duration: timedelta | None,
    over_cap: bool = False,
) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "grant access")
        account = get_account(tx.session, slug)
        person = get_person(tx.session, handle)
        grant = issue_grant(
            tx, me, account, person, reason=reason, duration=duration, over_cap=reason if over_cap else None
        )
        view = grant_view(grant, account, person, tx.now)
    return view


def extend_grant(
    ctx: Context, slug: str, handle: str, *, duration: timedelta | None, until: datetime | None
) -> dict[str, Any]:
    """Move a live time-boxed grant's end later without ending it (``access.extended``).

    An admin, or the account's owner while they hold it (the same people who can approve a
    request for it), never for their own grant. Caps do not change: no new holder.
    """
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    if (duration is None) == (until is None):
        raise InvalidInput("say how long: --for DURATION (from now) or --until TIME")
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        person = get_person(session, handle)
        if me.person.role != "admin":
            if account.owner_id != me.person.id:
                raise Denied(f"only an admin or the owner of {slug} may extend its grants")
            if me.person.id == person.id:
                raise Denied("nobody extends their own grant: ask an admin")
            if live_grant(session, account, me.person, tx.now) is None:
                raise Denied(f"{me.handle} owns {slug} but does not hold it: an admin must extend")
        grant = live_grant(session, account, person, tx.now)
        if grant is None:
            raise NotFound(f"{handle} holds no live grant of {slug}: grant or request access instead")
        if grant.ends_at is None:
            raise Conflict(f"grant {grant.id} of {handle} on {slug} has no end: there is nothing to extend")
        new_end = tx.now + duration if duration is not None else until
        assert new_end is not None
        if new_end <= grant.ends_at:
            raise InvalidInput(
                f"grant {grant.id} already ends at {format_time(grant.ends_at)}; an extension must end later"
                f" (to end it sooner, revoke it)"
            )
        require_policy_ack(session, person)
        previous = grant.ends_at
        grant.ends_at = new_end
        session.add(grant)
        tx.audit.append(
            "access.extended",
            account=slug,
            subject=handle,
            data={"grant": grant.id, "until": format_ts(new_end), "previous_until": format_ts(previous)},
        )
        view = grant_view(grant, account, person, tx.now)
        view["previous_until"] = format_time(previous)
    return view


def revoke_grants(
    tx: WriteTx, me: Unlocked, account: Account, person: Person, *, reason: str, deadline: datetime | None = None
) -> list[int]:
    """Revoke every open grant of ``person`` on ``account``; return the versions now exposed.

    ``deadline`` is when what they may know must be rotated by (offboarding sets one).
    """
    session = tx.session
    # Only grants that have not ended: an expired grant already has its ``access.expired``
    # (every write runs expiry first), and revoking it again would rewrite how it ended.
    grants = [
        grant
        for grant in session.exec(
            select(Grant).where(
                Grant.account_id == account.id,
                Grant.person_id == person.id,
                col(Grant.revoked_at).is_(None),
                col(Grant.expired_at).is_(None),
            )
        ).all()
        if grant.ends_at is None or grant.ends_at > tx.now
    ]
    if not grants:
        raise NotFound(f"{person.handle} holds no grant for {account.slug}")
    for grant in grants:
        grant.revoked_at = tx.now
        grant.revoked_by = me.handle
        grant.revoke_reason = reason
        session.add(grant)
    exposed: list[int] = []
    if person.role != "admin":
        exposed = drop_wraps(tx, person, account, f"access revoked: {reason}", deadline)
    tx.audit.append(
        "access.revoked",
        account=account.slug,
        subject=person.handle,
        reason=reason,
        data={"grants": [g.id for g in grants], "exposed_versions": exposed},
    )
    return exposed


def revoke_access(ctx: Context, slug: str, handle: str, *, reason: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "revoke access")
        account = get_account(tx.session, slug)
        person = get_person(tx.session, handle)
        exposed = revoke_grants(tx, me, account, person, reason=reason)
        last = tx.session.exec(
            select(Grant)
            .where(Grant.account_id == account.id, Grant.person_id == person.id)
            .order_by(col(Grant.id).desc())
        ).first()
        assert last is not None
        view = grant_view(last, account, person, tx.now)
        view["exposed_versions"] = exposed
    return view


def list_grants(ctx: Context, *, account: str | None, staff: str | None, include_ended: bool) -> list[dict[str, Any]]:
    with reading(ctx) as (session, _me):
        query = select(Grant, Account, Person).where(Grant.account_id == Account.id, Grant.person_id == Person.id)
        if account is not None:
            query = query.where(Account.id == get_account(session, validate.slug(account)).id)
        if staff is not None:
            query = query.where(Person.id == get_person(session, validate.handle(staff)).id)
        rows = session.exec(query.order_by(col(Account.slug), col(Person.handle), col(Grant.id))).all()
        now = ctx.now()
        views = [grant_view(g, a, p, now) for g, a, p in rows]
        return [v for v in views if include_ended or v["status"] == "live"]


def record_knowledge(ctx: Context, slug: str, handle: str, *, reason: str) -> dict[str, Any]:
    """Record that someone knows the account's password without govern (told, written down…)."""
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "record out-of-band knowledge")
        session = tx.session
        account = get_account(session, slug)
        person = get_person(session, handle)
        version = current_version(session, account)
        if version is None:
            raise NotFound(f"{slug} has no password stored yet: there is nothing to know")
        assert account.id is not None
        assert person.id is not None
        assert version.id is not None
        duplicate = session.exec(
            select(KnowledgeRecord).where(
                KnowledgeRecord.person_id == person.id, KnowledgeRecord.version_id == version.id
            )
        ).first()
        if duplicate is not None:
            raise Conflict(f"{handle} is already recorded as knowing version {version.number} of {slug}")
        record = KnowledgeRecord(
            account_id=account.id,
            person_id=person.id,
            version_id=version.id,
            reason=reason,
            recorded_by=me.handle,
            recorded_at=tx.now,
        )
        session.add(record)
        session.flush()
        tx.audit.append(
            "access.recorded",
            account=slug,
            subject=handle,
            reason=reason,
            data={"record": record.id, "version": version.number},
        )
    return {
        "id": record.id,
        "account": slug,
        "handle": handle,
        "version": version.number,
        "reason": reason,
        "recorded_by": me.handle,
        "recorded_at": format_time(tx.now),
    }
