"""Periodic access reviews (SOC 2 CC6.2/6.3, ISO 27001 A.5.18).

``review start`` snapshots every live grant as an item; each item is certified or
revoked; ``review close`` is refused while items are undecided unless
``--revoke-undecided``. Items whose grant ended during the review close as ``ended``.
"""

from typing import Any

from sqlmodel import Session, col, select

from audit.log import format_ts
from govern import validate
from govern.context import Context, Unlocked, acting, reading
from govern.db import WriteTx
from govern.errors import Conflict, Denied, NotFound
from govern.models import Account, Grant, Person, Review, ReviewItem
from govern.services.access import revoke_grants
from govern.services.common import get_account, get_person, grant_status, handles_by_id, require_role
from govern.timeutil import format_time


def _open_review(session: Session) -> Review:
    review = session.exec(select(Review).where(Review.status == "open")).first()
    if review is None:
        raise NotFound("no access review is open: start one with 'govern review start'")
    return review


def review_view(session: Session, review: Review) -> dict[str, Any]:
    handles = handles_by_id(session)
    accounts = {a.id: a.slug for a in session.exec(select(Account)).all()}
    items = session.exec(select(ReviewItem).where(ReviewItem.review_id == review.id).order_by(col(ReviewItem.id))).all()
    counts: dict[str, int] = {}
    for item in items:
        counts[item.decision] = counts.get(item.decision, 0) + 1
    return {
        "id": review.id,
        "name": review.name,
        "status": review.status,
        "started_by": review.started_by,
        "started_at": format_time(review.started_at),
        "closed_by": review.closed_by,
        "closed_at": format_time(review.closed_at),
        "counts": counts,
        "items": [
            {
                "account": accounts.get(item.account_id),
                "handle": handles.get(item.person_id),
                "grant": item.grant_id,
                "decision": item.decision,
                "decided_by": item.decided_by,
                "decided_at": format_time(item.decided_at),
                "reason": item.reason,
            }
            for item in items
        ],
    }


def start(ctx: Context, *, name: str | None) -> dict[str, Any]:
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "start access reviews")
        session = tx.session
        existing = session.exec(select(Review).where(Review.status == "open")).first()
        if existing is not None:
            raise Conflict(f"review {existing.id} ({existing.name}) is still open: close it first")
        label = validate.text(name, "review name") if name else f"Access review {tx.now.date().isoformat()}"
        review = Review(name=label, status="open", started_by=me.handle, started_at=tx.now)
        session.add(review)
        session.flush()
        assert review.id is not None
        # The items are the grants the verified log says are live now (the rule of review.started
        # checks the same); the rows only index them.
        live = tx.state.review_grants(format_ts(tx.now))
        for grant_id in live:
            session.add(_item_row(tx, review.id, grant_id))
        session.flush()
        tx.audit.append("review.started", data={"review": review.id, "name": label, "items": len(live)})
        view = review_view(session, review)
    return view


def _item_row(tx: WriteTx, review_id: int, grant_id: int) -> ReviewItem:
    """A pending item row for the grant the log names (ids of account and person from the rows)."""
    grant = tx.state.grants[grant_id]
    account = get_account(tx.session, grant.account)
    person = get_person(tx.session, grant.handle)
    assert account.id is not None
    assert person.id is not None
    return ReviewItem(
        review_id=review_id, grant_id=grant_id, account_id=account.id, person_id=person.id, decision="pending"
    )


def _item(session: Session, review: Review, account: Account, person: Person) -> ReviewItem:
    item = session.exec(
        select(ReviewItem).where(
            ReviewItem.review_id == review.id,
            ReviewItem.account_id == account.id,
            ReviewItem.person_id == person.id,
        )
    ).first()
    if item is None:
        raise NotFound(f"review {review.id} has no item for {person.handle} on {account.slug}")
    if item.decision != "pending":
        raise Conflict(f"{person.handle} on {account.slug} was already {item.decision} by {item.decided_by}")
    return item


def _decide(tx: WriteTx, me: Unlocked, item: ReviewItem, decision: str, reason: str | None) -> None:
    item.decision = decision
    item.decided_by = me.handle
    item.decided_at = tx.now
    item.reason = reason
    tx.session.add(item)


def certify(ctx: Context, slug: str, handle: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    with acting(ctx) as (tx, me):
        session = tx.session
        review = _open_review(session)
        account = get_account(session, slug)
        person = get_person(session, handle)
        if me.person.role != "admin" and account.owner_id != me.person.id:
            raise Denied(f"only an admin or the owner of {slug} may certify its access")
        if person.id == me.person.id:
            raise Denied("nobody certifies their own access")
        item = _item(session, review, account, person)
        grant = session.get(Grant, item.grant_id)
        if grant is None or grant_status(grant, tx.now) != "live":
            raise Conflict(f"the grant of {handle} on {slug} has already ended")
        _decide(tx, me, item, "certified", None)
        tx.audit.append(
            "review.certified", account=slug, subject=handle, data={"review": review.id, "grant": item.grant_id}
        )
        view = review_view(session, review)
    return view


def revoke(ctx: Context, slug: str, handle: str, *, reason: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "revoke access")
        session = tx.session
        review = _open_review(session)
        account = get_account(session, slug)
        person = get_person(session, handle)
        item = _item(session, review, account, person)
        _decide(tx, me, item, "revoked", reason)
        tx.audit.append(
            "review.revoked",
            account=slug,
            subject=handle,
            reason=reason,
            data={"review": review.id, "grant": item.grant_id},
        )
        revoke_grants(tx, me, account, person, reason=f"access review {review.id}: {reason}")
        view = review_view(session, review)
    return view


def close(ctx: Context, *, revoke_undecided: bool) -> dict[str, Any]:
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "close access reviews")
        session = tx.session
        review = _open_review(session)
        assert review.id is not None
        # Which items are undecided comes from the verified log (the grants live at the review's
        # start, less those certified or revoked): a deleted item row does not keep its grant.
        still_live = set(tx.state.undecided_items(review.id, format_ts(tx.now)))
        undecided = []
        for grant_id in tx.state.review_items.get(review.id, []):
            if f"{review.id}:{grant_id}" in tx.state.review_decisions:
                continue
            item = session.exec(
                select(ReviewItem).where(ReviewItem.review_id == review.id, ReviewItem.grant_id == grant_id)
            ).first()
            if item is None:  # deleted behind govern's back: the log still names it
                item = _item_row(tx, review.id, grant_id)
            if grant_id not in still_live:
                if item.decision == "pending":
                    _decide(tx, me, item, "ended", "the grant ended during the review")
            else:
                undecided.append(item)
        if undecided and not revoke_undecided:
            raise Conflict(
                f"review {review.id} has {len(undecided)} undecided item(s): certify or revoke them,"
                " or close with --revoke-undecided"
            )
        for item in undecided:
            account = session.get(Account, item.account_id)
            person = session.get(Person, item.person_id)
            assert account is not None
            assert person is not None
            reason = f"not certified in access review {review.id}"
            _decide(tx, me, item, "revoked", reason)
            tx.audit.append(
                "review.revoked",
                account=account.slug,
                subject=person.handle,
                reason=reason,
                data={"review": review.id, "grant": item.grant_id},
            )
            revoke_grants(tx, me, account, person, reason=reason)
        review.status = "closed"
        review.closed_by = me.handle
        review.closed_at = tx.now
        session.add(review)
        session.flush()
        view = review_view(session, review)
        tx.audit.append("review.closed", data={"review": review.id, "counts": view["counts"]})
    return view


def list_reviews(ctx: Context) -> list[dict[str, Any]]:
    with reading(ctx) as (session, _me):
        return [review_view(session, r) for r in session.exec(select(Review).order_by(col(Review.id))).all()]
