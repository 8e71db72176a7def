"""Expiry of time-boxed grants: the next write (or ``govern sweep``) processes them.

A grant past its end already gives no access (the tools refuse to unwrap); processing
deletes the wraps, records ``access.expired`` and marks what the person could read as
exposed, like any revocation.
"""

from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from govern.custody import drop_wraps
from govern.db import WriteTx
from govern.models import Account, Grant, Person
from govern.services.common import live_grant
from govern.timeutil import format_time

if TYPE_CHECKING:
    from govern.context import Context


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
        if person.role != "admin" and live_grant(session, account, person, tx.now) is None:
            exposed = drop_wraps(tx, person, account, f"grant {grant.id} expired")
        tx.audit.append(
            "access.expired",
            account=account.slug,
            subject=person.handle,
            data={"grant": grant.id, "ended_at": format_time(grant.ends_at), "exposed_versions": exposed},
        )
        done.append({"grant": grant.id, "account": account.slug, "handle": person.handle, "exposed_versions": exposed})
    return done


def sweep(ctx: "Context") -> list[dict[str, Any]]:
    """A write whose only work is the expiry processing every write does first."""
    from govern.context import acting

    with acting(ctx) as (tx, _me):
        done: list[dict[str, Any]] = tx.extras["expired"]
    return done
