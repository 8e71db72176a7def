"""``govern inbox``: everything waiting for one person, and the vault-wide digest for admins.

Read-only, on the verified reading path (every governance row checked against the signed
log first), so it needs no passphrase and a table edited behind govern's back refuses
(exit 6) instead of hiding or inventing work.

Each item has a ``key`` that stays the same while the item is the same (the notifier
remembers keys, so nobody is told the same thing twice a day) and a ``severity``:
``overdue`` (``--check`` exits 7: an overdue or exposed credential, an offboarding step past
its deadline), ``due`` (act soon), ``waiting`` (someone waits for your decision) or ``info``.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from audit.state import LogState
from govern.casework import steps_for
from govern.context import Context, verified_reading
from govern.models import AccessRequest, Account, Grant, Person, Policy, PolicyAck
from govern.services.common import account_state, handles_by_id, live_grant
from govern.services.requests import deciders, who_decides
from govern.timeutil import format_duration, format_time

ENDING_WINDOW = timedelta(days=7)
SEVERITIES = ("overdue", "due", "waiting", "info")


def _item(kind: str, severity: str, key: str, what: str, *, account: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"severity": severity, "kind": kind, "account": account, "what": what, "key": key, **extra}


def _requests(session: Session, me: Person | None, now: datetime) -> list[dict[str, Any]]:
    handles = handles_by_id(session)
    items = []
    rows = session.exec(
        select(AccessRequest, Account)
        .where(AccessRequest.account_id == Account.id, AccessRequest.status == "pending")
        .order_by(col(AccessRequest.id))
    ).all()
    for request, account in rows:
        asker = handles.get(request.person_id, "?")
        span = "" if request.duration_s is None else f" for {format_duration(timedelta(seconds=request.duration_s))}"
        if me is not None and request.person_id == me.id:
            items.append(
                _item(
                    "my-request",
                    "info",
                    f"my-request:{request.id}",
                    f"your request {request.id} waits for {who_decides(session, account, asker, now)}",
                    account=account.slug,
                    id=request.id,
                    since=format_time(request.created_at),
                )
            )
            continue
        if me is not None and me.handle not in deciders(session, account, now):
            continue
        items.append(
            _item(
                "decide-request",
                "waiting",
                f"decide-request:{request.id}",
                f"request {request.id}: {asker} asks for {account.slug}{span}: {request.reason}",
                account=account.slug,
                id=request.id,
                handle=asker,
                since=format_time(request.created_at),
            )
        )
    return items


def _may_extend(session: Session, me: Person, account: Account, now: datetime) -> bool:
    if me.role == "admin":
        return True
    return account.owner_id == me.id and live_grant(session, account, me, now) is not None


def _ending(session: Session, me: Person | None, now: datetime) -> list[dict[str, Any]]:
    handles = handles_by_id(session)
    items = []
    rows = session.exec(
        select(Grant, Account)
        .where(
            Grant.account_id == Account.id,
            col(Grant.revoked_at).is_(None),
            col(Grant.ends_at).is_not(None),
        )
        .order_by(col(Grant.ends_at), col(Grant.id))
    ).all()
    for grant, account in rows:
        if grant.ends_at is None or not grant.is_live(now) or grant.ends_at > now + ENDING_WINDOW:
            continue
        holder = handles.get(grant.person_id, "?")
        ends = format_time(grant.ends_at)
        if me is not None and grant.person_id == me.id:
            what = f"your grant of {account.slug} ends at {ends}: ask for an extension if you still need it"
        elif me is None or _may_extend(session, me, account, now):
            what = f"{holder}'s grant of {account.slug} ends at {ends} (govern access extend {account.slug} {holder})"
        else:
            continue
        items.append(
            _item(
                "grant-ending",
                "due",
                f"grant-ending:{grant.id}:{ends}",
                what,
                account=account.slug,
                id=grant.id,
                handle=holder,
                due=ends,
            )
        )
    return items


def _rotations(session: Session, accounts: list[Account], now: datetime) -> list[dict[str, Any]]:
    items = []
    for account in accounts:
        state = account_state(session, account, now)
        if state["exposed"]:
            who = ", ".join(sorted({f"{e['handle']} ({e['kind']})" for e in state["exposed_to"]}))
            items.append(
                _item(
                    "exposed",
                    "overdue",
                    f"exposed:{account.slug}:{who}",
                    f"{account.slug} is exposed to {who}: rotate it (govern rotation start {account.slug})",
                    account=account.slug,
                )
            )
        if state["overdue"]:
            items.append(
                _item(
                    "rotation-overdue",
                    "overdue",
                    f"rotation-overdue:{account.slug}:{state['due']}",
                    f"{account.slug} was due for rotation at {state['due']}",
                    account=account.slug,
                    due=state["due"],
                )
            )
        elif state["state"] == "due-soon":
            items.append(
                _item(
                    "rotation-due",
                    "due",
                    f"rotation-due:{account.slug}:{state['due']}",
                    f"{account.slug} is due for rotation at {state['due']}",
                    account=account.slug,
                    due=state["due"],
                )
            )
        if state["rotating_since"] is not None:
            items.append(
                _item(
                    "rotating",
                    "info",
                    f"rotating:{account.slug}:{state['rotating_since']}",
                    f"a rotation of {account.slug} by {state['rotating_by']} waits to be confirmed"
                    f" (govern rotation confirm {account.slug})",
                    account=account.slug,
                    since=state["rotating_since"],
                )
            )
    return items


def _steps(session: Session, me: Person | None, now: datetime, held: set[int]) -> list[dict[str, Any]]:
    items = []
    for step in steps_for(session, me, now, held):
        verb = "close" if step["action"] == "close" else "do"
        items.append(
            _item(
                "offboard-step",
                "overdue" if step["overdue"] else "due",
                f"offboard-step:{step['case']}:{step['step']}:{'overdue' if step['overdue'] else 'open'}",
                f"offboarding of {step['handle']}, step {step['step']}: {step['title']}"
                f" ({verb} it by {step['deadline']})",
                account=step["account"],
                id=step["step"],
                case=step["case"],
                handle=step["handle"],
                due=step["deadline"],
            )
        )
    return items


def _policy(session: Session, me: Person) -> list[dict[str, Any]]:
    policy = session.exec(select(Policy).order_by(col(Policy.id).desc()).limit(1)).first()
    if policy is None:
        return []
    acked = session.exec(
        select(PolicyAck).where(PolicyAck.policy_id == policy.id, PolicyAck.person_id == me.id)
    ).first()
    if acked is not None:
        return []
    return [
        _item(
            "policy-ack",
            "due",
            f"policy-ack:{policy.version}",
            f"acknowledge the social media policy, version {policy.version} (govern policy ack)",
        )
    ]


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: (SEVERITIES.index(i["severity"]), i["kind"], i.get("account") or "", i["key"]))


def _violations(state: LogState | None) -> list[dict[str, Any]]:
    """Contained transactions (issue 19): news for admins until one records a decision."""
    if state is None:
        return []
    return [
        _item(
            "contained-violation",
            "overdue",
            f"violation:{v['transaction']}",
            f"transaction {v['transaction']} signed by {v['signer']} breaks a rule of the log and was skipped"
            f" (event {v['seq']}): decide, then 'govern audit acknowledge {v['transaction']} --reason …'",
        )
        for v in state.unacknowledged_violations()
    ]


def items_for(session: Session, me: Person, now: datetime, state: LogState | None = None) -> list[dict[str, Any]]:
    """What waits for ``me`` (rows already checked against the verified log)."""
    accounts = list(session.exec(select(Account).order_by(col(Account.slug))).all())
    if me.role == "admin":
        held = {a.id for a in accounts if a.id is not None}  # a custodian of every account
    else:
        held = {a.id for a in accounts if a.id is not None and live_grant(session, a, me, now) is not None}
    # Rotation news about the accounts they own or hold; rotation steps only where they can rotate.
    mine = [a for a in accounts if a.id in held or (a.owner_id is not None and a.owner_id == me.id)]
    items = _requests(session, me, now) + _ending(session, me, now)
    items += _rotations(session, mine, now) + _steps(session, me, now, held)
    if me.role != "auditor":
        items += _policy(session, me)
    if me.role == "admin":
        items += _violations(state)
    return _sorted(items)


def vault_items(session: Session, now: datetime, state: LogState | None = None) -> list[dict[str, Any]]:
    """The vault-wide digest (for admins): every pending request, ending grant, rotation
    problem and open offboarding step, whoever it waits for."""
    accounts = list(session.exec(select(Account).order_by(col(Account.slug))).all())
    items = _requests(session, None, now) + _ending(session, None, now) + _rotations(session, accounts, now)
    items += _steps(session, None, now, {a.id for a in accounts if a.id is not None})
    items += _violations(state)
    return _sorted(items)


def summary(items: list[dict[str, Any]]) -> dict[str, int]:
    return {severity: sum(1 for i in items if i["severity"] == severity) for severity in SEVERITIES}


def inbox(ctx: Context) -> dict[str, Any]:
    """``govern inbox`` for the acting person (verified read; no passphrase)."""
    with verified_reading(ctx) as (session, me, state):
        now = ctx.now()
        items = items_for(session, me, now, state)
        return {"handle": me.handle, "at": format_time(now), "counts": summary(items), "items": items}
