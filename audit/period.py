"""Who held and used each account over a period, from the verified log (no database).

A :class:`Timeline` is fed every event of a log *as it is verified* (see
``govern.services.period``: the same stream goes through :func:`audit.chain.verify_chain`,
and the timeline is used only if the whole log verified). It keeps what the rules of the log
do not need but an auditor does: how each holding started (a grant, the approval of request
N, a record of out-of-band knowledge) and ended (revoked by whom, expired, offboarded, an
access review, a rotation), and when each person revealed what.

Times are event times (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), which sort as text. A holding is the
half-open interval ``[start, end)``; ``end`` is ``None`` while it lasts.
"""

import json
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from audit.chain import EventRecord
from audit.state import LogState, iso_to_ts

# What an offboarding or an access review writes in the transaction of its revocations.
_OFFBOARDING = frozenset({"offboard.started", "offboard.step_done", "staff.offboarded"})


@dataclass
class Holding:
    """One interval during which ``handle`` could use ``account`` (or knew its password)."""

    account: str
    handle: str
    via: str  # grant | out of band | admin role
    start: str
    end: str | None = None
    planned_end: str | None = None  # a time-boxed grant's end, if it has not come yet
    grant: int | None = None
    record: int | None = None
    started_how: str = "grant"  # grant | approval of request N | recorded out of band | admin role
    started_by: str | None = None
    reason: str | None = None
    request: int | None = None
    approvers: list[str] = field(default_factory=list)
    ended_how: str | None = None  # revoked | expired | offboarded | access review | rotated | role ended
    ended_by: str | None = None
    end_reason: str | None = None

    def overlaps(self, start: str, end: str) -> bool:
        return self.start < end and (self.end is None or self.end > start)


@dataclass
class Exposure:
    """A value someone who no longer holds the account may know, until it changes."""

    account: str
    version: int
    handle: str
    kind: str
    opened: str
    closed: str | None = None


@dataclass
class Case:
    id: int
    handle: str
    started: str
    deadline: str
    revoked: str | None = None  # the last revocation of the leaver's access by the case
    closed: str | None = None


@dataclass
class Review:
    id: int
    name: str
    started: str
    started_by: str
    closed: str | None = None
    decisions: dict[str, int] = field(default_factory=dict)  # certified | revoked -> count


_KINDS = {"password": "password", "totp-uri": "totp", "recovery-codes": "recovery-codes"}


@dataclass
class Timeline:
    """Everything about holdings and use that a period report needs, in event order."""

    holdings: list[Holding] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)  # slug -> when it was added
    # (account, handle) -> sorted times; kind is "reveal", "totp" or "denied"
    uses: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # action -> count (the whole log)
    offboarded_at: dict[str, str] = field(default_factory=dict)  # handle -> when
    rotate_every: dict[str, str | None] = field(default_factory=dict)  # slug -> its latest setting
    password_changes: dict[str, list[str]] = field(default_factory=dict)  # slug -> times
    exposures: list[Exposure] = field(default_factory=list)
    cases: dict[int, Case] = field(default_factory=dict)
    reviews: dict[int, Review] = field(default_factory=dict)
    policies: list[tuple[str, str]] = field(default_factory=list)  # (published at, version)
    acks: dict[tuple[str, str], str] = field(default_factory=dict)  # (version, handle) -> when
    people: dict[str, list[str | None]] = field(default_factory=dict)  # handle -> [active from, until]
    _grants: dict[int, Holding] = field(default_factory=dict, repr=False)
    _records: list[Holding] = field(default_factory=list, repr=False)
    _requests: dict[int, list[str]] = field(default_factory=dict, repr=False)  # id -> approvers
    _tx: str = field(default="", repr=False)
    _tx_actions: set[str] = field(default_factory=set, repr=False)
    _tx_ended: list[Holding] = field(default_factory=list, repr=False)

    # -- feeding --------------------------------------------------------------------------

    def add(self, event: EventRecord) -> None:
        """Take the next event of the log (in sequence order)."""
        if event.tx != self._tx:
            self._close_tx()
            self._tx = event.tx
        action = event.action
        self._tx_actions.add(action)
        self.events[action] = self.events.get(action, 0) + 1
        handler = _FEED.get(action)
        if handler is not None:
            handler(self, event, json.loads(event.data))

    def finish(self, state: LogState) -> None:
        """The log ended: classify the last transaction's ends, add admin periods from ``state``."""
        self._close_tx()
        for handle, person in state.people.items():
            for start, end in person.admin_periods:
                if start is None:
                    continue
                for slug, added in self.accounts.items():
                    begin = max(start, added)
                    if end is not None and end <= begin:
                        continue
                    ended_how = None
                    if end is not None:
                        ended_how = "offboarded" if self.offboarded_at.get(handle) == end else "role ended"
                    self.holdings.append(
                        Holding(
                            account=slug,
                            handle=handle,
                            via="admin role",
                            start=begin,
                            end=end,
                            started_how="admin role",
                            ended_how=ended_how,
                        )
                    )
        self.holdings.sort(key=lambda h: (h.account, h.start, h.handle, h.grant or 0))

    def _close_tx(self) -> None:
        if self._tx_ended:
            if self._tx_actions & _OFFBOARDING:
                how = "offboarded"
                for case in self.cases.values():
                    ends = [h.end for h in self._tx_ended if h.handle == case.handle and h.end is not None]
                    if case.closed is None and ends:
                        case.revoked = max(ends)
            elif "review.revoked" in self._tx_actions:
                how = "access review"
            else:
                how = "revoked"
            for holding in self._tx_ended:
                holding.ended_how = how
        self._tx_ended = []
        self._tx_actions = set()

    def _on_account_added(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.accounts[str(event.account)] = event.ts
        self.rotate_every[str(event.account)] = data.get("rotate_every")

    def _on_account_updated(self, event: EventRecord, data: dict[str, Any]) -> None:
        change = data.get("changes", {}).get("rotate_every")
        if change is not None:
            self.rotate_every[str(event.account)] = change[1]

    def _on_staff_enrolled(self, event: EventRecord, _data: dict[str, Any]) -> None:
        self.people[str(event.subject)] = [event.ts, None]

    def _on_key_unwrapped(self, event: EventRecord, data: dict[str, Any]) -> None:
        open_now = {(e.account, e.version, e.handle, e.kind) for e in self.exposures if e.closed is None}
        for mark in data.get("exposed", []):
            key = (str(event.account), int(mark["version"]), str(event.subject), str(mark["kind"]))
            if key not in open_now:
                open_now.add(key)
                self.exposures.append(Exposure(*key, opened=event.ts))

    def _changed(self, event: EventRecord, kinds: set[str], version: int) -> None:
        """A new value of ``kinds`` (version ``version``) clears the exposures of older ones."""
        for exposure in self.exposures:
            if (
                exposure.closed is None
                and exposure.account == event.account
                and exposure.kind in kinds
                and exposure.version < version
            ):
                exposure.closed = event.ts
        if "password" in kinds:
            self.password_changes.setdefault(str(event.account), []).append(event.ts)
            self._password_changed(event)

    def _on_offboard_started(self, event: EventRecord, data: dict[str, Any]) -> None:
        case = int(data["case"])
        deadline = iso_to_ts(data["deadline"]) or event.ts
        self.cases[case] = Case(id=case, handle=str(event.subject), started=event.ts, deadline=deadline)

    def _on_offboard_completed(self, event: EventRecord, data: dict[str, Any]) -> None:
        case = self.cases.get(int(data["case"]))
        if case is not None:
            case.closed = event.ts

    def _on_policy_published(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.policies.append((event.ts, str(data["version"])))

    def _on_policy_acknowledged(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.acks.setdefault((str(data["version"]), event.actor), event.ts)

    def _on_review_started(self, event: EventRecord, data: dict[str, Any]) -> None:
        review = int(data["review"])
        self.reviews[review] = Review(review, str(data.get("name") or ""), event.ts, event.actor)

    def _decision(self, data: dict[str, Any], how: str) -> None:
        review = self.reviews.get(int(data["review"]))
        if review is not None:
            review.decisions[how] = review.decisions.get(how, 0) + 1

    def _on_review_certified(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._decision(data, "certified")

    def _on_review_revoked(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._decision(data, "revoked")

    def _on_review_closed(self, event: EventRecord, data: dict[str, Any]) -> None:
        review = self.reviews.get(int(data["review"]))
        if review is not None:
            review.closed = event.ts

    def _on_access_approved(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._requests.setdefault(int(data["request"]), []).append(event.actor)

    def _on_access_granted(self, event: EventRecord, data: dict[str, Any]) -> None:
        request = data.get("request")
        holding = Holding(
            account=str(event.account),
            handle=str(event.subject),
            via="grant",
            start=event.ts,
            planned_end=iso_to_ts(data.get("until")),
            grant=int(data["grant"]),
            started_how="grant" if request is None else f"approval of request {int(request)}",
            started_by=event.actor,
            reason=event.reason,
            request=None if request is None else int(request),
            approvers=[] if request is None else list(self._requests.get(int(request), [])),
        )
        self._grants[holding.grant or 0] = holding
        self.holdings.append(holding)

    def _ends(self, holding: Holding, at: str) -> bool:
        """Whether ``holding`` was still on at ``at`` (a planned end that passed ended it)."""
        if holding.end is not None:
            return False
        if holding.planned_end is not None and holding.planned_end <= at:
            holding.end, holding.ended_how = holding.planned_end, "expired"
            return False
        return True

    def _on_access_revoked(self, event: EventRecord, data: dict[str, Any]) -> None:
        for grant_id in data["grants"]:
            holding = self._grants.get(int(grant_id))
            if holding is not None and self._ends(holding, event.ts):
                holding.end, holding.ended_by, holding.end_reason = event.ts, event.actor, event.reason
                self._tx_ended.append(holding)

    def _on_access_expired(self, event: EventRecord, data: dict[str, Any]) -> None:
        holding = self._grants.get(int(data["grant"]))
        if holding is not None and self._ends(holding, event.ts):
            # The grant stopped giving access at its planned end; the event only processes it.
            holding.end, holding.ended_how = holding.planned_end or event.ts, "expired"

    def _on_access_recorded(self, event: EventRecord, data: dict[str, Any]) -> None:
        holding = Holding(
            account=str(event.account),
            handle=str(event.subject),
            via="out of band",
            start=event.ts,
            record=int(data["record"]),
            started_how="recorded out of band",
            started_by=event.actor,
            reason=event.reason,
        )
        self._records.append(holding)
        self.holdings.append(holding)

    def _password_changed(self, event: EventRecord) -> None:
        for holding in self._records:
            if holding.account == event.account and holding.end is None:
                holding.end, holding.ended_how, holding.ended_by = event.ts, "rotated", event.actor
        self._records = [h for h in self._records if h.end is None]

    def _on_secret_set(self, event: EventRecord, data: dict[str, Any]) -> None:
        kinds = {_KINDS[f] for f in data.get("fields_changed", []) if f in _KINDS}
        self._changed(event, kinds, int(data["version"]))

    def _on_rotation_confirmed(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._changed(event, {"password"}, int(data["version"]))

    def _on_secret_revealed(self, event: EventRecord, data: dict[str, Any]) -> None:
        kind = "totp" if data.get("field") == "totp-code" else "reveal"
        self.uses.setdefault((str(event.account), event.actor, kind), []).append(event.ts)

    def _on_secret_denied(self, event: EventRecord, _data: dict[str, Any]) -> None:
        self.uses.setdefault((str(event.account), event.actor, "denied"), []).append(event.ts)

    def _on_staff_offboarded(self, event: EventRecord, _data: dict[str, Any]) -> None:
        self.offboarded_at[str(event.subject)] = event.ts
        if str(event.subject) in self.people:
            self.people[str(event.subject)][1] = event.ts

    # -- questions ------------------------------------------------------------------------

    def count(self, account: str, handle: str, kind: str, start: str, end: str) -> int:
        """How many ``kind`` uses of ``account`` by ``handle`` in ``[start, end)``."""
        times = self.uses.get((account, handle, kind), [])
        return bisect_left(times, end) - bisect_left(times, start)

    def denials(self, account: str, start: str, end: str) -> dict[str, int]:
        """Refused reveals of ``account`` in ``[start, end)``, per person."""
        out = {}
        for (slug, handle, kind), _times in sorted(self.uses.items()):
            if slug == account and kind == "denied":
                number = self.count(account, handle, "denied", start, end)
                if number:
                    out[handle] = number
        return out

    def during(self, account: str, start: str, end: str, now: str) -> list[dict[str, Any]]:
        """Every holding of ``account`` overlapping ``[start, end)``, as plain data.

        ``now`` is when the question is asked: a planned end still ahead is not an end.
        """
        out = []
        for holding in self.holdings:
            if holding.account != account:
                continue
            actual_end = holding.end
            if actual_end is None and holding.planned_end is not None and holding.planned_end <= now:
                actual_end = holding.planned_end  # lapsed; no write has processed it yet
            ended_how = holding.ended_how if holding.end is not None else ("expired" if actual_end else None)
            if not (holding.start < end and (actual_end is None or actual_end > start)):
                continue
            lo, hi = max(start, holding.start), min(end, actual_end) if actual_end is not None else end
            out.append(
                {
                    "handle": holding.handle,
                    "via": holding.via,
                    "grant": holding.grant,
                    "record": holding.record,
                    "from": holding.start,
                    "until": actual_end,
                    "still_holds": actual_end is None,
                    "planned_end": holding.planned_end if actual_end is None else None,
                    "started": holding.started_how,
                    "started_by": holding.started_by,
                    "reason": holding.reason,
                    "request": holding.request,
                    "approvers": holding.approvers,
                    "ended": ended_how,
                    "ended_by": holding.ended_by,
                    "end_reason": holding.end_reason,
                    "reveals": self.count(account, holding.handle, "reveal", lo, hi),
                    "totp_codes": self.count(account, holding.handle, "totp", lo, hi),
                }
            )
        return out


_FEED = {
    name[len("_on_") :].replace("_", ".", 1): function
    for name, function in vars(Timeline).items()
    if name.startswith("_on_") and callable(function)
}
