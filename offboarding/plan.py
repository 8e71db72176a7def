"""What offboarding a person involves, computed from the tables and the history of wraps."""

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from govern.exposure import known_secrets
from govern.models import AccessRequest, Account, DataKey, Grant, KeyWrap, KnowledgeRecord, Person, WrapHistory
from govern.platforms import rules_for

FOLLOW_UP = {
    "password": ("rotate-password", "rotate the password of {slug} (govern rotation start {slug})"),
    "totp": ("reenrol-totp", "re-enrol 2FA on {slug} and store the new seed (govern secret set {slug} --totp-uri -)"),
    "recovery-codes": (
        "regenerate-recovery-codes",
        "regenerate the recovery codes of {slug} (govern secret set {slug} --recovery-codes-file F)",
    ),
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
    steps = [PlannedStep("suspend", f"suspend {leaver.handle}: no more sign-in, enrolment closed", automatic=True)]
    pending = session.exec(
        select(AccessRequest).where(AccessRequest.person_id == leaver.id, AccessRequest.status == "pending")
    ).all()
    if pending:
        steps.append(
            PlannedStep(
                "cancel-requests",
                f"cancel {len(pending)} pending access request(s)",
                automatic=True,
                detail={"requests": [r.id for r in pending]},
            )
        )
    for account in session.exec(select(Account).where(Account.owner_id == leaver.id).order_by(col(Account.slug))).all():
        steps.append(
            PlannedStep(
                "reassign-owner",
                f"make {actor.handle} the owner of {account.slug}",
                account=account.slug,
                automatic=True,
            )
        )
    accounts = touched_accounts(session, leaver)
    for account in accounts:
        steps.append(
            PlannedStep(
                "remove-access",
                f"revoke every grant and key wrap of {leaver.handle} on {account.slug}; mark what they knew exposed",
                account=account.slug,
                automatic=True,
            )
        )
    for account in accounts:
        kinds = sorted({kind for kind, _version in known_secrets(session, account, leaver)})
        for kind in kinds:
            step_kind, title = FOLLOW_UP[kind]
            steps.append(
                PlannedStep(step_kind, title.format(slug=account.slug), account=account.slug, exposure_kind=kind)
            )
        for task in rules_for(account.platform).manual_steps:
            steps.append(PlannedStep("manual", f"{account.slug}: {task}", account=account.slug))
    return steps
