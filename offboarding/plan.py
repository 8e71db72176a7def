"""What offboarding a person involves, computed from the tables and the history of wraps."""

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from govern.exposure import known_secrets
from govern.models import AccessRequest, Account, DataKey, Grant, KeyWrap, KnowledgeRecord, Person, WrapHistory
from govern.platforms import rules_for

# Titles are short (the account is a column of its own): a step table fits 80 columns.
# The commands that do each follow-up are in docs/offboarding.md and ``offboard start``'s hints.
TITLE_MAX = 40
FOLLOW_UP = {
    "password": ("rotate-password", "rotate the password (govern rotation)"),
    "totp": ("reenrol-totp", "re-enrol 2FA, store the new seed"),
    "recovery-codes": ("regenerate-recovery-codes", "regenerate and store recovery codes"),
}


@dataclass
class PlannedStep:
    kind: str
    title: str
    account: str | None = None
    automatic: bool = False
    exposure_kind: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def view(self, number: int) -> dict[str, Any]:
        return {
            "step": number,
            "kind": self.kind,
            "account": self.account,
            "automatic": self.automatic,
            "title": self.title,
            **({"exposure": self.exposure_kind} if self.exposure_kind else {}),
        }


def touched_accounts(session: Session, person: Person) -> list[Account]:
    """Every account the person holds, held, could decrypt or is recorded as knowing."""
    ids: set[int] = set()
    ids.update(g.account_id for g in session.exec(select(Grant).where(Grant.person_id == person.id)).all())
    key_ids = {w.data_key_id for w in session.exec(select(KeyWrap).where(KeyWrap.person_id == person.id)).all()}
    key_ids |= {
        h.data_key_id for h in session.exec(select(WrapHistory).where(WrapHistory.person_id == person.id)).all()
    }
    if key_ids:
        ids.update(k.account_id for k in session.exec(select(DataKey).where(col(DataKey.id).in_(key_ids))).all())
    ids.update(
        r.account_id for r in session.exec(select(KnowledgeRecord).where(KnowledgeRecord.person_id == person.id)).all()
    )
    if not ids:
        return []
    return list(session.exec(select(Account).where(col(Account.id).in_(ids)).order_by(col(Account.slug))).all())


def build_plan(session: Session, leaver: Person, actor: Person) -> list[PlannedStep]:
    steps = [PlannedStep("suspend", f"suspend {leaver.handle}: no sign-in or enrolment", automatic=True)]
    pending = session.exec(
        select(AccessRequest).where(AccessRequest.person_id == leaver.id, AccessRequest.status == "pending")
    ).all()
    if pending:
        steps.append(
            PlannedStep(
                "cancel-requests",
                f"cancel {len(pending)} pending request(s)",
                automatic=True,
                detail={"requests": [r.id for r in pending]},
            )
        )
    for account in session.exec(select(Account).where(Account.owner_id == leaver.id).order_by(col(Account.slug))).all():
        steps.append(
            PlannedStep(
                "reassign-owner",
                f"make {actor.handle} its owner",
                account=account.slug,
                automatic=True,
            )
        )
    accounts = touched_accounts(session, leaver)
    for account in accounts:
        steps.append(
            PlannedStep(
                "remove-access",
                f"revoke {leaver.handle}'s grants and keys",
                account=account.slug,
                automatic=True,
            )
        )
    for account in accounts:
        kinds = sorted({kind for kind, _version in known_secrets(session, account, leaver)})
        for kind in kinds:
            step_kind, title = FOLLOW_UP[kind]
            steps.append(PlannedStep(step_kind, title, account=account.slug, exposure_kind=kind))
        for task in rules_for(account.platform).manual_steps:
            steps.append(PlannedStep("manual", task, account=account.slug))
    return steps
