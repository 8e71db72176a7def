"""Offboarding cases as the domain sees them: follow-up steps close themselves.

The offboarding workflow (the ``offboarding`` package) opens cases; this module is
what the rest of the domain needs of them: when a rotation or re-enrolment clears
an exposure, the step waiting for it closes in the same transaction, and a case
whose last step closes records the audit chain head at completion.
"""

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from govern.db import WriteTx
from govern.models import Account, OffboardCase, OffboardStep, Person
from govern.timeutil import format_time


def close_case_if_done(tx: WriteTx, case: OffboardCase) -> bool:
    """Close ``case`` when none of its steps is open; record the chain head. True if closed."""
    session = tx.session
    if case.status != "open":
        return False
    session.flush()
    still_open = session.exec(
        select(OffboardStep).where(OffboardStep.case_id == case.id, OffboardStep.status == "open")
    ).first()
    if still_open is not None:
        return False
    person = session.get(Person, case.person_id)
    assert person is not None
    case.status = "closed"
    case.closed_at = tx.now
    event = tx.audit.append(
        "offboard.completed",
        subject=person.handle,
        data={
            "case": case.id,
            "started_at": case.started_at.isoformat(),
            "duration_s": int((tx.now - case.started_at).total_seconds()),
        },
    )
    case.head_seq, case.head_hash = event.seq, event.hash
    session.add(case)
    return True


def close_followups(tx: WriteTx, exposure_ids: list[int]) -> list[OffboardStep]:
    """Close the open steps waiting for these exposures to clear (a rotation happened)."""
    session = tx.session
    if not exposure_ids:
        return []
    steps = session.exec(
        select(OffboardStep).where(col(OffboardStep.exposure_id).in_(exposure_ids), OffboardStep.status == "open")
    ).all()
    cases: dict[int, OffboardCase] = {}
    for step in steps:
        step.status = "done"
        step.closed_by = tx.audit.actor
        step.closed_at = tx.now
        step.note = "closed by the rotation that cleared the exposure"
        session.add(step)
        case = session.get(OffboardCase, step.case_id)
        assert case is not None
        assert case.id is not None
        cases[case.id] = case
        tx.audit.append(
            "offboard.step_closed",
            data={"case": case.id, "step": step.number, "kind": step.kind, "automatic": True},
        )
    for case in cases.values():
        close_case_if_done(tx, case)
    return list(steps)


def overdue_steps(session: Session, now: datetime) -> list[OffboardStep]:
    """Open steps of open cases past their deadline (``--check`` fails on these)."""
    return list(
        session.exec(
            select(OffboardStep).where(
                OffboardStep.status == "open",
                col(OffboardStep.deadline).is_not(None),
                col(OffboardStep.deadline) <= now,
            )
        ).all()
    )


def latest_case(session: Session, person: Person) -> OffboardCase | None:
    return session.exec(
        select(OffboardCase).where(OffboardCase.person_id == person.id).order_by(col(OffboardCase.id).desc())
    ).first()


def _steps(session: Session, case: OffboardCase) -> list[OffboardStep]:
    return list(
        session.exec(
            select(OffboardStep).where(OffboardStep.case_id == case.id).order_by(col(OffboardStep.number))
        ).all()
    )


def step_view(session: Session, step: OffboardStep, now: datetime) -> dict[str, Any]:
    account = session.get(Account, step.account_id) if step.account_id is not None else None
    return {
        "step": step.number,
        "kind": step.kind,
        "account": None if account is None else account.slug,
        "automatic": step.automatic,
        "title": step.title,
        "status": step.status,
        "deadline": format_time(step.deadline),
        "overdue": step.status == "open" and step.deadline is not None and step.deadline <= now,
        "closed_by": step.closed_by,
        "closed_at": format_time(step.closed_at),
        "note": step.note,
        "detail": json.loads(step.detail),
    }


def case_view(session: Session, case: OffboardCase, now: datetime, *, with_steps: bool = True) -> dict[str, Any]:
    person = session.get(Person, case.person_id)
    assert person is not None
    steps = [step_view(session, s, now) for s in _steps(session, case)]
    view: dict[str, Any] = {
        "case": case.id,
        "handle": person.handle,
        "status": case.status,
        "reason": case.reason,
        "started_by": case.started_by,
        "started_at": format_time(case.started_at),
        "effective_at": format_time(case.effective_at),
        "deadline": format_time(case.deadline),
        "closed_at": format_time(case.closed_at),
        "open_steps": sum(1 for s in steps if s["status"] == "open"),
        "overdue_steps": sum(1 for s in steps if s["overdue"]),
        "head_seq": case.head_seq,
        "head_hash": case.head_hash,
    }
    if with_steps:
        view["steps"] = steps
    return view


def may_close(session: Session, person: Person, step: OffboardStep) -> bool:
    """Whether ``person`` may close ``step`` by hand (``offboard done``), waivers aside.

    Admins close any manual step; an account's owner closes the manual (platform) steps of
    the accounts they own. Other steps close themselves when their rotation happens.
    """
    if step.automatic or step.kind != "manual" or step.status != "open":
        return False
    if person.role == "admin":
        return True
    account = session.get(Account, step.account_id) if step.account_id is not None else None
    return account is not None and account.owner_id is not None and account.owner_id == person.id


def steps_for(session: Session, person: Person | None, now: datetime, held: set[int]) -> list[dict[str, Any]]:
    """Open steps of open cases that wait for ``person`` (None: every open step): to close by
    hand, or to rotate.

    ``held`` are the ids of the accounts ``person`` holds (or, for an admin, every account):
    a follow-up rotation step of such an account is theirs to do.
    """
    out = []
    rows = session.exec(
        select(OffboardStep, OffboardCase)
        .where(
            OffboardStep.case_id == OffboardCase.id,
            OffboardCase.status == "open",
            OffboardStep.status == "open",
            OffboardStep.automatic == False,  # noqa: E712
        )
        .order_by(col(OffboardCase.id), col(OffboardStep.number))
    ).all()
    for step, case in rows:
        if (step.kind == "manual") if person is None else may_close(session, person, step):
            action = "close"
        elif step.kind != "manual" and step.account_id is not None and step.account_id in held:
            action = "rotate"
        else:
            continue
        leaver = session.get(Person, case.person_id)
        view = step_view(session, step, now)
        view["case"] = case.id
        view["handle"] = None if leaver is None else leaver.handle
        view["action"] = action
        out.append(view)
    return out
