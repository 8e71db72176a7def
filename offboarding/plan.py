"""What offboarding a person involves, computed by the verified log (rows only index it)."""

from dataclasses import dataclass, field
from typing import Any

from audit.state import FOLLOW_UP_STEPS, LogState
from govern.models import Person
from govern.platforms import rules_for

# Titles are short (the account is a column of its own): a step table fits 80 columns.
# The commands that do each follow-up are in docs/offboarding.md and ``offboard start``'s hints.
TITLE_MAX = 40
_TITLES = {
    "password": "rotate the password (govern rotation)",
    "totp": "re-enrol 2FA, store the new seed",
    "recovery-codes": "regenerate and store recovery codes",
}
# exposure kind -> (follow-up step kind, title); the step kinds are the log's (audit.state)
FOLLOW_UP = {kind: (FOLLOW_UP_STEPS[kind], title) for kind, title in _TITLES.items()}
# follow-up step kind -> the kind of exposure whose clearing it waits for
WAITS_FOR = {step_kind: exposure for exposure, step_kind in FOLLOW_UP_STEPS.items()}


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


def build_plan(state: LogState, leaver: Person, actor: Person) -> list[PlannedStep]:
    """The steps of offboarding ``leaver``, as the verified log decides them.

    Which accounts the leaver touched, which secrets they may know and which accounts they
    own come from ``state`` (:meth:`LogState.offboarding_plan`), never from the wrap history,
    grant or knowledge rows; the rules refuse an ``offboard.started`` whose plan differs. The
    platform's manual steps follow each touched account's follow-ups; the rows give only
    the pending requests' numbers (the step's detail) and the platform of each account.
    """
    handle = leaver.handle
    steps: list[PlannedStep] = []
    platforms = {slug: account.platform for slug, account in state.accounts.items()}
    follow_ups: dict[str, list[PlannedStep]] = {}
    for kind, account in state.offboarding_plan(handle):
        if kind == "suspend":
            steps.append(PlannedStep("suspend", f"suspend {handle}: no sign-in or enrolment", automatic=True))
        elif kind == "cancel-requests":
            pending = sorted(int(i) for i, r in state.requests.items() if r[1] == handle and r[2] == "pending")
            steps.append(
                PlannedStep(
                    "cancel-requests",
                    f"cancel {len(pending)} pending request(s)",
                    automatic=True,
                    detail={"requests": pending},
                )
            )
        elif kind == "reassign-owner":
            steps.append(
                PlannedStep("reassign-owner", f"make {actor.handle} its owner", account=account, automatic=True)
            )
        elif kind == "remove-access":
            steps.append(
                PlannedStep("remove-access", f"revoke {handle}'s grants and keys", account=account, automatic=True)
            )
            follow_ups[str(account)] = []
        else:
            exposure = WAITS_FOR[kind]
            follow_ups[str(account)].append(
                PlannedStep(kind, FOLLOW_UP[exposure][1], account=account, exposure_kind=exposure)
            )
    for slug, planned in follow_ups.items():
        steps += planned
        for task in rules_for(platforms[slug]).manual_steps:
            steps.append(PlannedStep("manual", task, account=slug))
    return steps
