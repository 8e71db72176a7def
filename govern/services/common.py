"""Lookups and permission checks shared by the services."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from govern.errors import Denied, NotFound
from govern.exposure import open_exposures
from govern.models import Account, CredentialVersion, Grant, Person, Rotation
from govern.platforms import DUE_SOON_WINDOW, rules_for
from govern.timeutil import format_duration, format_time


def get_person(session: Session, handle: str) -> Person:
    person = session.exec(select(Person).where(Person.handle == handle)).first()
    if person is None:
        raise NotFound(f"no person {handle!r}: see 'govern staff list'")
    return person


def get_account(session: Session, slug: str) -> Account:
    account = session.exec(select(Account).where(Account.slug == slug)).first()
    if account is None:
        raise NotFound(f"no account {slug!r}: see 'govern account list'")
    return account


def current_version(session: Session, account: Account) -> CredentialVersion | None:
    return session.exec(
        select(CredentialVersion).where(
            CredentialVersion.account_id == account.id, CredentialVersion.status == "current"
        )
    ).first()


def require_role(person: Person, roles: Sequence[str], doing: str) -> None:
    if person.role not in roles:
        allowed = " or ".join(roles)
        raise Denied(f"{person.handle} is {person.role}; only {allowed} may {doing}")


def live_grant(session: Session, account: Account, person: Person, now: datetime) -> Grant | None:
    """The grant that currently gives ``person`` access to ``account``, if any."""
    grants = session.exec(
        select(Grant).where(
            Grant.account_id == account.id,
            Grant.person_id == person.id,
            col(Grant.revoked_at).is_(None),
        )
    ).all()
    return next((grant for grant in grants if grant.is_live(now)), None)


def grant_status(grant: Grant, now: datetime) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    return "live" if grant.is_live(now) else "expired"


def handles_by_id(session: Session) -> dict[int, str]:
    return {p.id: p.handle for p in session.exec(select(Person)).all() if p.id is not None}


def pending_rotation(session: Session, account: Account) -> Rotation | None:
    return session.exec(select(Rotation).where(Rotation.account_id == account.id, Rotation.status == "pending")).first()


def rotation_period(account: Account) -> timedelta:
    if account.rotate_every_s is not None:
        return timedelta(seconds=account.rotate_every_s)
    return rules_for(account.platform).rotate_every


def last_password_change(session: Session, account: Account) -> CredentialVersion | None:
    """The version that set the current password (a rotation, or a password set by hand)."""
    versions = session.exec(
        select(CredentialVersion)
        .where(
            CredentialVersion.account_id == account.id,
            col(CredentialVersion.status).in_(["current", "superseded", "destroyed"]),
        )
        .order_by(col(CredentialVersion.number).desc())
    ).all()
    for version in versions:
        if "password" in version.changed.split(","):
            return version
    return None


def account_state(session: Session, account: Account, now: datetime) -> dict[str, Any]:
    """Everything ``rotation status`` says of one account; ``state`` is the headline."""
    current = current_version(session, account)
    changed = last_password_change(session, account)
    period = rotation_period(account)
    due = None if changed is None else changed.created_at + period
    handles = handles_by_id(session)
    exposures = open_exposures(session, account)
    exposed_to = [
        {
            "handle": handles.get(e.person_id),
            "kind": e.kind,
            "since": format_time(e.since),
            "deadline": format_time(e.deadline),
            "reason": e.reason,
        }
        for e in exposures
    ]
    pending = pending_rotation(session, account)
    overdue = due is not None and now >= due
    due_soon = due is not None and not overdue and now >= due - DUE_SOON_WINDOW
    if current is None or "password" not in current.fields.split(","):
        state = "never-set"
    elif pending is not None:
        state = "rotating"
    elif exposures:
        state = "exposed"
    elif overdue:
        state = "overdue"
    elif due_soon:
        state = "due-soon"
    else:
        state = "ok"
    return {
        "account": account.slug,
        "platform": account.platform,
        "state": state,
        "rotate_every": format_duration(period),
        "last_rotated": None if changed is None else format_time(changed.created_at),
        "due": format_time(due),
        "overdue": overdue,
        "exposed": bool(exposures),
        "exposed_to": exposed_to,
        "rotating_since": None if pending is None else format_time(pending.started_at),
        "rotating_by": None if pending is None else pending.started_by,
    }
