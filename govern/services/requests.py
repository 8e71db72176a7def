"""Access requests and their decisions: dual control, owners approve, nobody approves themselves."""

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from govern import validate
from govern.context import Context, acting, reading
from govern.custody import live_data_keys, wrap_of
from govern.errors import Conflict, Denied, InvalidInput, NotFound
from govern.models import AccessRequest, Account, Person
from govern.services.access import check_holdable, grant_view, issue_grant
from govern.services.common import get_account, handles_by_id, live_grant
from govern.timeutil import format_duration, format_time


def deciders(session: Session, account: Account, now: datetime) -> list[str]:
    """Who can decide a request for ``account`` now: its owner if they hold it, else the admins.

    Approving wraps the account's data key to the requester, so the approver must be able to
    open it: an owner who holds no grant of the account cannot, and the admins decide.
    """
    if account.owner_id is not None:
        owner = session.get(Person, account.owner_id)
        if (
            owner is not None
            and owner.status == "active"
            and (owner.role == "admin" or live_grant(session, account, owner, now) is not None)
        ):
            return [owner.handle]
    admins = session.exec(
        select(Person).where(Person.role == "admin", Person.status == "active").order_by(col(Person.handle))
    ).all()
    return [p.handle for p in admins]


def who_decides(session: Session, account: Account, requester: str, now: datetime) -> str:
    """``deciders`` in words for a message: 'carol (the owner)' or 'an admin (alice, dave)'."""
    names = [h for h in deciders(session, account, now) if h != requester]
    owner = session.get(Person, account.owner_id) if account.owner_id is not None else None
    if owner is not None and names == [owner.handle] and owner.role != "admin":
        return f"{owner.handle} (the owner of {account.slug})"
    return f"an admin ({', '.join(names)})" if names else "an admin (there is none who could: enrol one)"


def request_view(request: AccessRequest, account: Account, handles: dict[int, str]) -> dict[str, Any]:
    return {
        "id": request.id,
        "account": account.slug,
        "handle": handles.get(request.person_id),
        "reason": request.reason,
        "for": None if request.duration_s is None else format_duration(timedelta(seconds=request.duration_s)),
        "status": request.status,
        "created_at": format_time(request.created_at),
        "decided_by": request.decided_by,
        "decided_at": format_time(request.decided_at),
        "decision_reason": request.decision_reason,
    }


def create_request(ctx: Context, slug: str, *, reason: str, duration: timedelta | None) -> dict[str, Any]:
    slug = validate.slug(slug)
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        check_holdable(session, account, me.person, tx.now, tx.state)  # includes the policy gate
        pending = session.exec(
            select(AccessRequest).where(
                AccessRequest.account_id == account.id,
                AccessRequest.person_id == me.person.id,
                AccessRequest.status == "pending",
            )
        ).first()
        if pending is not None:
            raise Conflict(f"{me.handle} already has request {pending.id} pending for {slug}")
        assert account.id is not None
        assert me.person.id is not None
        request = AccessRequest(
            account_id=account.id,
            person_id=me.person.id,
            reason=reason,
            duration_s=None if duration is None else int(duration.total_seconds()),
            status="pending",
            created_at=tx.now,
        )
        session.add(request)
        session.flush()
        tx.audit.append(
            "access.requested",
            account=slug,
            subject=me.handle,
            reason=reason,
            data={"request": request.id, "for": request_view(request, account, {})["for"]},
        )
        view = request_view(request, account, {me.person.id: me.handle})
        view["deciders"] = [h for h in deciders(session, account, tx.now) if h != me.handle]
        view["who_decides"] = who_decides(session, account, me.handle, tx.now)
    return view


def withdraw(ctx: Context, request_id: int) -> dict[str, Any]:
    """The requester takes back their own pending request (``access.withdrawn``)."""
    with acting(ctx) as (tx, me):
        session = tx.session
        request, account, person = _pending(session, request_id)
        if person.id != me.person.id:
            raise Denied(f"only {person.handle}, who made request {request_id}, may withdraw it")
        request.status = "withdrawn"
        request.decided_by = me.handle
        request.decided_at = tx.now
        session.add(request)
        tx.audit.append("access.withdrawn", account=account.slug, subject=me.handle, data={"request": request.id})
        assert person.id is not None
        view = request_view(request, account, {person.id: person.handle})
    return view


def _pending(session: Session, request_id: int) -> tuple[AccessRequest, Account, Person]:
    if request_id < 1:
        raise InvalidInput("request ids are positive numbers")
    request = session.get(AccessRequest, request_id)
    if request is None:
        raise NotFound(f"no request {request_id}: see 'govern access requests'")
    account = session.get(Account, request.account_id)
    person = session.get(Person, request.person_id)
    assert account is not None
    assert person is not None
    if request.status != "pending":
        raise Conflict(f"request {request_id} was already {request.status} by {request.decided_by}")
    return request, account, person


def _may_decide(session: Session, me: Person, account: Account, requester: Person, now: datetime) -> None:
    if me.id == requester.id:
        raise Denied("nobody decides their own request: ask an admin or the account's owner")
    if me.role != "admin" and account.owner_id != me.id:
        raise Denied(
            f"only an admin or the owner of {account.slug} may decide its requests;"
            f" this one waits for {who_decides(session, account, requester.handle, now)}"
        )


def approve(ctx: Context, request_id: int, *, over_cap_reason: str | None) -> dict[str, Any]:
    over_cap = validate.reason(over_cap_reason) if over_cap_reason is not None else None
    with acting(ctx) as (tx, me):
        session = tx.session
        request, account, person = _pending(session, request_id)
        _may_decide(session, me.person, account, person, tx.now)
        if me.person.role != "admin" and not any(
            wrap_of(session, key, me.key_fingerprint) for key in live_data_keys(session, account)
        ):
            raise Denied(
                f"{me.handle} owns {account.slug} but does not hold it, so cannot hand its key on:"
                f" an admin must decide request {request_id}"
            )
        duration = None if request.duration_s is None else timedelta(seconds=request.duration_s)
        request.status = "approved"
        request.decided_by = me.handle
        request.decided_at = tx.now
        request.decision_reason = over_cap
        session.add(request)
        tx.audit.append(
            "access.approved",
            account=account.slug,
            subject=person.handle,
            reason=over_cap,
            data={"request": request.id},
        )
        grant = issue_grant(
            tx, me, account, person, reason=request.reason, duration=duration, over_cap=over_cap, request=request
        )
        view = grant_view(grant, account, person, tx.now)
    return view


def deny(ctx: Context, request_id: int, *, reason: str) -> dict[str, Any]:
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        session = tx.session
        request, account, person = _pending(session, request_id)
        _may_decide(session, me.person, account, person, tx.now)
        request.status = "denied"
        request.decided_by = me.handle
        request.decided_at = tx.now
        request.decision_reason = reason
        session.add(request)
        tx.audit.append(
            "access.denied", account=account.slug, subject=person.handle, reason=reason, data={"request": request.id}
        )
        assert person.id is not None
        view = request_view(request, account, {person.id: person.handle})
    return view


def list_requests(ctx: Context, *, pending_only: bool) -> list[dict[str, Any]]:
    with reading(ctx) as (session, _me):
        query = select(AccessRequest, Account).where(AccessRequest.account_id == Account.id)
        if pending_only:
            query = query.where(AccessRequest.status == "pending")
        handles = handles_by_id(session)
        rows = session.exec(query.order_by(col(AccessRequest.id))).all()
        now = ctx.now()
        views = []
        for request, account in rows:
            view = request_view(request, account, handles)
            if request.status == "pending":
                asker = handles.get(request.person_id, "")
                view["deciders"] = [h for h in deciders(session, account, now) if h != asker]
            else:
                view["deciders"] = []
            views.append(view)
        return views
