"""Running an offboarding case: start (or resume), close steps, report status."""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from audit.state import text_digest
from govern import validate
from govern.casework import case_view, close_case_if_done, latest_case, may_close
from govern.context import Context, Unlocked, acting, authenticate, reading, verified_reading
from govern.custody import drop_wraps
from govern.db import WriteTx
from govern.errors import Conflict, Denied, InvalidInput, NotFound
from govern.exposure import KINDS
from govern.faults import crashpoint
from govern.models import (
    AccessRequest,
    Account,
    Enrolment,
    Exposure,
    Grant,
    OffboardCase,
    OffboardStep,
    Person,
    PersonKey,
)
from govern.services.access import revoke_grants
from govern.services.common import get_person, require_role
from govern.timeutil import format_time
from govern.trust import verify_from_pin
from offboarding.plan import WAITS_FOR, build_plan

DEFAULT_DEADLINE = timedelta(hours=24)
Progress = Callable[[int, int, str], None]


def _no_progress(_done: int, _total: int, _what: str) -> None:
    return None


def _check_start(session: Session, ctx: Context, handle: str) -> tuple[Person, Person, OffboardCase | None]:
    actor = authenticate(session, ctx.actor)
    require_role(actor, ["admin"], "offboard staff")
    leaver = get_person(session, handle)
    if leaver.id == actor.id:
        raise Denied("nobody offboards themselves: another admin runs it")
    case = latest_case(session, leaver)
    if case is not None and case.status == "closed":
        raise Conflict(f"{handle} was already offboarded (case {case.id}, closed {format_time(case.closed_at)})")
    return actor, leaver, case


def start(
    ctx: Context,
    handle: str,
    *,
    reason: str,
    effective: datetime | None,
    deadline: timedelta | None,
    dry_run: bool,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Plan the case (or resume the open one), then carry out every automatic step."""
    handle = validate.handle(handle)
    reason = validate.reason(reason)
    window = deadline or DEFAULT_DEADLINE
    now = ctx.now()
    if effective is not None and effective > now + timedelta(minutes=5):
        raise InvalidInput("--effective is in the future: offboarding takes effect at once; run it on the day")
    with ctx.store.read() as session:
        actor, leaver, case = _check_start(session, ctx, handle)
        if dry_run:
            planned = build_plan(verify_from_pin(session, ctx.db_url, progress=ctx.progress), leaver, actor)
            return {
                "handle": handle,
                "dry_run": True,
                "resuming": case is not None,
                "steps": [step.view(i) for i, step in enumerate(planned, start=1)],
            }
    if case is None:
        case_id = _open_case(ctx, handle, reason=reason, effective=effective, window=window)
    else:
        assert case.id is not None
        case_id = case.id
        ctx.notice(f"resuming offboarding case {case_id} of {handle}")
    assert case_id is not None
    crashpoint("offboard-planned")
    with ctx.store.read() as session:
        pending = [
            s.number
            for s in session.exec(
                select(OffboardStep)
                .where(OffboardStep.case_id == case_id, OffboardStep.automatic == True, OffboardStep.status == "open")  # noqa: E712
                .order_by(col(OffboardStep.number))
            ).all()
        ]
    for done, number in enumerate(pending, start=1):
        title = _run_step(ctx, case_id, number)
        progress(done, len(pending), title)
        crashpoint(f"offboard-step-{number}")
    with acting(ctx) as (tx, _me):
        case_row = tx.session.get(OffboardCase, case_id)
        assert case_row is not None
        close_case_if_done(tx, case_row)
    with ctx.store.read() as session:
        case_row = session.get(OffboardCase, case_id)
        assert case_row is not None
        return case_view(session, case_row, ctx.now())


def _open_case(ctx: Context, handle: str, *, reason: str, effective: datetime | None, window: timedelta) -> int:
    with acting(ctx) as (tx, me):
        session = tx.session
        _actor, leaver, case = _check_start(session, ctx, handle)
        if case is not None:  # another admin opened it meanwhile
            assert case.id is not None
            return case.id
        planned = build_plan(tx.state, leaver, me.person)
        assert leaver.id is not None
        case = OffboardCase(
            person_id=leaver.id,
            status="open",
            reason=reason,
            started_by=me.handle,
            started_at=tx.now,
            effective_at=effective or tx.now,
            deadline=tx.now + window,
        )
        session.add(case)
        session.flush()
        assert case.id is not None
        accounts = {a.slug: a.id for a in session.exec(select(Account)).all()}
        for number, step in enumerate(planned, start=1):
            session.add(
                OffboardStep(
                    case_id=case.id,
                    number=number,
                    kind=step.kind,
                    account_id=None if step.account is None else accounts[step.account],
                    title=step.title,
                    automatic=step.automatic,
                    status="open",
                    deadline=None if step.automatic else case.deadline,
                    detail=json.dumps({"exposure": step.exposure_kind, **step.detail}),
                )
            )
        tx.audit.append(
            "offboard.started",
            subject=handle,
            reason=reason,
            data={
                "case": case.id,
                "effective_at": format_time(case.effective_at),
                "deadline": format_time(case.deadline),
                "steps": len(planned),
                "automatic": sum(1 for s in planned if s.automatic),
                "plan": [[number, step.kind, step.account] for number, step in enumerate(planned, start=1)],
                # The titles people read in 'offboard status', the inbox and notify: the rows must match.
                "titles": text_digest([step.title for step in planned]),
            },
        )
        return case.id


def _run_step(ctx: Context, case_id: int, number: int) -> str:
    """Carry out one automatic step in its own transaction, marking it done in the same one."""
    with acting(ctx) as (tx, me):
        session = tx.session
        case = session.get(OffboardCase, case_id)
        assert case is not None
        step = session.exec(
            select(OffboardStep).where(OffboardStep.case_id == case_id, OffboardStep.number == number)
        ).one()
        if step.status != "open":  # done by a concurrent run
            return step.title
        leaver = session.get(Person, case.person_id)
        assert leaver is not None
        account = session.get(Account, step.account_id) if step.account_id is not None else None
        detail: dict[str, Any] = json.loads(step.detail)
        if step.kind == "suspend":
            detail.update(_suspend(tx, leaver))
        elif step.kind == "cancel-requests":
            detail.update(_cancel_requests(tx, leaver))
        elif step.kind == "reassign-owner":
            assert account is not None
            detail.update(_reassign(tx, account, leaver, me.handle, case))
        elif step.kind == "remove-access":
            assert account is not None
            detail.update(_remove_access(tx, me, case, account, leaver))
        else:
            raise RuntimeError(f"step {number} ({step.kind}) is not automatic")
        step.status = "done"
        step.closed_by = me.handle
        step.closed_at = tx.now
        step.detail = json.dumps(detail)
        session.add(step)
        tx.audit.append(
            "offboard.step_done",
            account=None if account is None else account.slug,
            subject=leaver.handle,
            data={"case": case_id, "step": number, "kind": step.kind, **detail},
        )
        crashpoint(f"offboard-in-step-{number}")
        return step.title


def _suspend(tx: WriteTx, leaver: Person) -> dict[str, Any]:
    session = tx.session
    before = leaver.status
    leaver.status = "offboarded"
    session.add(leaver)
    closed = 0
    for enrolment in session.exec(
        select(Enrolment).where(Enrolment.person_id == leaver.id, col(Enrolment.used_at).is_(None))
    ).all():
        if enrolment.expires_at > tx.now:
            enrolment.expires_at = tx.now
            session.add(enrolment)
            closed += 1
    for key in session.exec(select(PersonKey).where(PersonKey.person_id == leaver.id)).all():
        key.active = False
        session.add(key)
    tx.audit.append("staff.offboarded", subject=leaver.handle, data={"from": before, "enrolment_codes_closed": closed})
    return {"status_before": before, "enrolment_codes_closed": closed}


def _cancel_requests(tx: WriteTx, leaver: Person) -> dict[str, Any]:
    session = tx.session
    cancelled = []
    for request in session.exec(
        select(AccessRequest).where(AccessRequest.person_id == leaver.id, AccessRequest.status == "pending")
    ).all():
        request.status = "cancelled"
        request.decided_by = tx.audit.actor
        request.decided_at = tx.now
        request.decision_reason = "requester offboarded"
        session.add(request)
        account = session.get(Account, request.account_id)
        assert account is not None
        tx.audit.append(
            "access.cancelled",
            account=account.slug,
            subject=leaver.handle,
            reason="requester offboarded",
            data={"request": request.id},
        )
        cancelled.append(request.id)
    return {"requests": cancelled}


def _reassign(tx: WriteTx, account: Account, leaver: Person, actor: str, case: OffboardCase) -> dict[str, Any]:
    session = tx.session
    if account.owner_id != leaver.id:
        return {"skipped": "no longer the owner"}
    new_owner = session.exec(select(Person).where(Person.handle == actor)).one()
    account.owner_id = new_owner.id
    session.add(account)
    tx.audit.append(
        "account.updated",
        account=account.slug,
        reason=f"owner offboarded (case {case.id})",
        data={"changes": {"owner": [leaver.handle, actor]}},
    )
    return {"owner": [leaver.handle, actor]}


def _remove_access(tx: WriteTx, me: Unlocked, case: OffboardCase, account: Account, leaver: Person) -> dict[str, Any]:
    session = tx.session
    reason = f"offboarded: {case.reason}"
    # Grants that already ended (expired) are not revoked again: their end stays an expiry.
    open_grants = [
        grant
        for grant in session.exec(
            select(Grant).where(
                Grant.account_id == account.id,
                Grant.person_id == leaver.id,
                col(Grant.revoked_at).is_(None),
                col(Grant.expired_at).is_(None),
            )
        ).all()
        if grant.ends_at is None or grant.ends_at > tx.now
    ]
    revoked = [g.id for g in open_grants]
    if open_grants:
        revoke_grants(tx, me, account, leaver, reason=reason, deadline=case.deadline)
    # Wraps without a grant (an admin's custodian wraps) go too, and exposure comes from the wrap
    # history even where no wrap is left (an account they left earlier): both need this call.
    drop_wraps(tx, leaver, account, reason, deadline=case.deadline)
    exposures = session.exec(
        select(Exposure).where(
            Exposure.account_id == account.id, Exposure.person_id == leaver.id, col(Exposure.cleared_at).is_(None)
        )
    ).all()
    by_kind = {e.kind: e for e in exposures}
    linked = []
    closed: list[int] = []
    for follow_up in session.exec(
        select(OffboardStep).where(
            OffboardStep.case_id == case.id,
            OffboardStep.account_id == account.id,
            OffboardStep.automatic == False,  # noqa: E712
            OffboardStep.status == "open",
        )
    ).all():
        # What the step waits for follows from its kind, which the signed plan fixes (the row's
        # free-form detail does not: rewritten, it would close a rotation step as done).
        kind = WAITS_FOR.get(follow_up.kind)
        if kind is None:
            continue
        waiting_for = by_kind.get(kind)
        if waiting_for is None:
            follow_up.status = "done"
            follow_up.closed_by = me.handle
            follow_up.closed_at = tx.now
            follow_up.note = "nothing left to rotate: the value already changed"
            closed.append(follow_up.number)
        else:
            follow_up.exposure_id = waiting_for.id
            linked.append(kind)
        session.add(follow_up)
    return {"grants_revoked": revoked, "exposed": sorted(by_kind), "linked": linked, "followups_closed": closed}


def close_step(
    ctx: Context, handle: str, numbers: list[int], *, note: str | None, waive_reason: str | None
) -> dict[str, Any]:
    """``offboard done``: close manual steps, or (``--waive``) waive open steps, in one transaction.

    Admins close any manual step and waive any open step. An account's owner closes the
    manual (platform) steps of the accounts they own; the rule of the log checks the same.
    All the steps close, or none does.
    """
    handle = validate.handle(handle)
    if not numbers or any(n < 1 for n in numbers):
        raise InvalidInput("steps are numbered from 1: see 'govern offboard status HANDLE'")
    if len(set(numbers)) != len(numbers):
        raise InvalidInput("a step is named twice")
    note = validate.text(note, "note", max_length=1000) if note else None
    waive = validate.reason(waive_reason) if waive_reason is not None else None
    with acting(ctx) as (tx, me):
        session = tx.session
        is_admin = me.person.role == "admin"
        if waive is not None and not is_admin:
            raise Denied(f"{me.handle} is {me.person.role}; only admin may waive offboarding steps")
        leaver = get_person(session, handle)
        case = latest_case(session, leaver)
        if case is None:
            raise NotFound(f"{handle} has no offboarding case")
        steps = []
        for number in numbers:
            step = session.exec(
                select(OffboardStep).where(OffboardStep.case_id == case.id, OffboardStep.number == number)
            ).first()
            if step is None:
                raise NotFound(f"case {case.id} has no step {number}")
            if step.status != "open":
                raise Conflict(f"step {number} is already {step.status} (by {step.closed_by})")
            if waive is None and (step.automatic or step.kind != "manual"):
                raise Denied(
                    f"step {number} ({step.kind}) closes itself when its work is done;"
                    " an admin may --waive it with a --reason"
                )
            if not is_admin and not may_close(session, me.person, step):
                raise Denied(
                    f"{me.handle} may not close step {number}: an admin, or the owner of the step's account, closes it"
                )
            steps.append(step)
        for step in steps:
            step.status = "waived" if waive is not None else "done"
            step.closed_by = me.handle
            step.closed_at = tx.now
            step.note = waive if waive is not None else note
            session.add(step)
            tx.audit.append(
                "offboard.step_waived" if waive is not None else "offboard.step_closed",
                subject=handle,
                reason=waive,
                data={"case": case.id, "step": step.number, "kind": step.kind, "note": note},
            )
        close_case_if_done(tx, case)
        view = case_view(session, case, tx.now)
        view["closed"] = [s.number for s in steps]
    return view


def status(ctx: Context, handle: str | None, *, verified: bool = False) -> list[dict[str, Any]]:
    """Cases (or one case's steps). ``verified`` (for ``--check``) checks the rows against the signed log."""
    with verified_reading(ctx) if verified else reading(ctx) as (session, *_rest):
        now = ctx.now()
        if handle is not None:
            person = get_person(session, validate.handle(handle))
            case = latest_case(session, person)
            if case is None:
                raise NotFound(f"{handle} has no offboarding case")
            return [case_view(session, case, now)]
        cases = session.exec(select(OffboardCase).order_by(col(OffboardCase.id))).all()
        return [case_view(session, case, now, with_steps=False) for case in cases]


def report(ctx: Context, handle: str) -> dict[str, Any]:
    """Evidence for an auditor: everything the case did and proved, with the chain head."""
    handle = validate.handle(handle)
    with reading(ctx) as (session, _me):
        now = ctx.now()
        person = get_person(session, handle)
        case = latest_case(session, person)
        if case is None:
            raise NotFound(f"{handle} has no offboarding case")
        view = case_view(session, case, now)
        revoked = []
        for grant, account in session.exec(
            select(Grant, Account)
            .where(Grant.person_id == person.id, Grant.account_id == Account.id, col(Grant.revoked_at).is_not(None))
            .order_by(col(Grant.id))
        ).all():
            if grant.revoked_at is not None and grant.revoked_at >= case.started_at:
                revoked.append(
                    {
                        "grant": grant.id,
                        "account": account.slug,
                        "reason": grant.reason,
                        "granted_by": grant.granted_by,
                        "from": format_time(grant.starts_at),
                        "revoked_at": format_time(grant.revoked_at),
                        "revoked_by": grant.revoked_by,
                    }
                )
        exposed = []
        for exposure, account in session.exec(
            select(Exposure, Account)
            .where(Exposure.person_id == person.id, Exposure.account_id == Account.id)
            .order_by(col(Account.slug), col(Exposure.kind))
        ).all():
            if exposure.cleared_at is not None and exposure.cleared_at < case.started_at:
                continue
            exposed.append(
                {
                    "account": account.slug,
                    "kind": exposure.kind,
                    "field": KINDS[exposure.kind],
                    "since": format_time(exposure.since),
                    "deadline": format_time(exposure.deadline),
                    "rotated_at": format_time(exposure.cleared_at),
                    "new_version": exposure.cleared_by_version,
                }
            )
        manual = [s for s in view["steps"] if s["kind"] == "manual"]
        completed = case.closed_at
        return {
            **{k: v for k, v in view.items() if k != "steps"},
            "grants_revoked": revoked,
            "exposed_credentials": exposed,
            "manual_steps": manual,
            "steps": view["steps"],
            "duration_s": None if completed is None else int((completed - case.started_at).total_seconds()),
            "generated_at": format_time(now),
        }
