"""Lookups and permission checks shared by the services."""

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from govern.errors import Denied, NotFound
from govern.models import Account, CredentialVersion, Grant, Person


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
