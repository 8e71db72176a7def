"""Housekeeping every write does first: expiry of time-boxed grants, retention of versions.

A grant past its end already gives no access (the tools refuse to unwrap); processing
deletes the wraps, records ``access.expired`` and marks what the person could read as
exposed, like any revocation. Superseded versions past their retention are destroyed.
"""

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.log import format_ts
from audit.state import retention_end
from govern.custody import drop_wraps
from govern.db import WriteTx
from govern.models import Account, CredentialVersion, Grant, Person, SealedField
from govern.timeutil import format_time


def _still_held(session: Session, account: Account, person: Person, now: datetime) -> bool:
    grants = session.exec(
        select(Grant).where(
            Grant.account_id == account.id, Grant.person_id == person.id, col(Grant.revoked_at).is_(None)
        )
    ).all()
    return any(grant.is_live(now) for grant in grants)


def expire_due(tx: WriteTx) -> list[dict[str, Any]]:
    """Process every grant whose end has passed; return what was expired."""
    session = tx.session
    due = session.exec(
        select(Grant)
        .where(
            col(Grant.revoked_at).is_(None),
            col(Grant.expired_at).is_(None),
            col(Grant.ends_at).is_not(None),
            col(Grant.ends_at) <= tx.now,
        )
        .order_by(col(Grant.ends_at), col(Grant.id))
    ).all()
    done = []
    for grant in due:
        account = session.get(Account, grant.account_id)
        person = session.get(Person, grant.person_id)
        assert account is not None
        assert person is not None
        grant.expired_at = tx.now
        session.add(grant)
        exposed: list[int] = []
        # Another live grant (a renewal) keeps the wraps; so does being an admin.
        if person.role != "admin" and not _still_held(session, account, person, tx.now):
            exposed = drop_wraps(tx, person, account, f"grant {grant.id} expired")
        tx.audit.append(
            "access.expired",
            account=account.slug,
            subject=person.handle,
            data={"grant": grant.id, "ended_at": format_time(grant.ends_at), "exposed_versions": exposed},
        )
        done.append({"grant": grant.id, "account": account.slug, "handle": person.handle, "exposed_versions": exposed})
    return done


def discard_version(tx: WriteTx, version: CredentialVersion, status: str) -> None:
    """Delete a version's sealed fields (the metadata stays for history)."""
    for row in tx.session.exec(select(SealedField).where(SealedField.version_id == version.id)).all():
        tx.session.delete(row)
    version.status = status
    version.destroyed_at = tx.now
    tx.session.add(version)


def destroy_expired_versions(tx: WriteTx) -> list[dict[str, Any]]:
    """Superseded versions past their retention are destroyed (run by every write but an auditor's).

    Which versions are due comes from the verified log (when each was superseded, and the
    retention), never from ``retain_until``, which a database writer could move into the past;
    the rule of ``secret.destroyed`` refuses an early destruction all the same.
    """
    state = tx.state
    actor = state.people.get(tx.audit.actor)
    if actor is None or actor.role == "auditor":
        return []
    now = format_ts(tx.now)
    due = sorted(
        (slug, number)
        for slug, versions in state.versions.items()
        for number, version in versions.items()
        if version.status == "superseded" and version.superseded and retention_end(version.superseded) <= now
    )
    done = []
    for slug, number in due:
        row = tx.session.exec(
            select(CredentialVersion).where(
                CredentialVersion.account_id == Account.id, Account.slug == slug, CredentialVersion.number == number
            )
        ).first()
        if row is None or row.status != "superseded":
            continue  # the rows are compared with the log before any write: another writer got there first
        discard_version(tx, row, "destroyed")
        tx.audit.append("secret.destroyed", account=slug, data={"version": number})
        done.append({"account": slug, "version": number})
    return done
