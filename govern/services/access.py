"""Access: grants wrap an account's data key to a person; revocations delete the wrap
and mark what the person could read as exposed (only a rotation clears that).
"""

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from govern import validate
from govern.context import Context, acting, reading, vault_meta
from govern.custody import add_wrap, live_data_keys, open_data_key, person_key, wrap_of
from govern.errors import Conflict, Denied, NotFound
from govern.models import Account, Grant, Person
from govern.services.common import get_account, get_person, grant_status, live_grant, require_role
from govern.services.staff import drop_wraps, ensure_custodians
from govern.timeutil import format_time


def grant_view(grant: Grant, account: Account, person: Person, now: Any) -> dict[str, Any]:
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
    }


def grant_access(ctx: Context, slug: str, handle: str, *, reason: str, duration: timedelta | None) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "grant access")
        session = tx.session
        account = get_account(session, slug)
        person = get_person(session, handle)
        if person.role == "auditor":
            raise Denied(f"{handle} is an auditor; auditors can never be granted a credential")
        if person.role == "admin":
            raise Conflict(f"{handle} is an admin and already holds every account as a custodian")
        if person.status != "active":
            raise Denied(f"{handle} is {person.status}; only enrolled, active staff can hold access")
        key = person_key(session, person)
        if key is None:
            raise Denied(f"{handle} has no keys yet")
        if live_grant(session, account, person, tx.now) is not None:
            raise Conflict(f"{handle} already holds {slug}")
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
        )
        session.add(grant)
        session.flush()
        meta = vault_meta(session)
        wrapped = []
        for data_key in live_data_keys(session, account):
            if wrap_of(session, data_key, key.fingerprint) is not None:
                continue
            secret = open_data_key(session, meta, account, data_key, me)
            add_wrap(
                session,
                meta,
                account,
                data_key,
                secret,
                recipient_public=key.x25519_public,
                recipient_fingerprint=key.fingerprint,
                person=person,
                now=tx.now,
            )
            wrapped.append(data_key.id)
        tx.audit.append(
            "access.granted",
            account=slug,
            subject=handle,
            reason=reason,
            data={
                "grant": grant.id,
                "until": format_time(grant.ends_at),
                "data_keys": wrapped,
                "recipient": key.fingerprint,
            },
        )
        view = grant_view(grant, account, person, tx.now)
    return view


def revoke_access(ctx: Context, slug: str, handle: str, *, reason: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "revoke access")
        session = tx.session
        account = get_account(session, slug)
        person = get_person(session, handle)
        grants = session.exec(
            select(Grant).where(
                Grant.account_id == account.id, Grant.person_id == person.id, col(Grant.revoked_at).is_(None)
            )
        ).all()
        if not grants:
            raise NotFound(f"{handle} holds no grant for {slug}")
        for grant in grants:
            grant.revoked_at = tx.now
            grant.revoked_by = me.handle
            grant.revoke_reason = reason
            session.add(grant)
        exposed: list[int] = []
        if person.role != "admin":
            exposed = drop_wraps(tx, person, account, f"access revoked: {reason}")
        tx.audit.append(
            "access.revoked",
            account=slug,
            subject=handle,
            reason=reason,
            data={"grants": [g.id for g in grants], "exposed_versions": exposed},
        )
        view = grant_view(grants[-1], account, person, tx.now)
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
