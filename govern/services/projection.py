"""Replaying the audit log: the state it explains, and who could decrypt what, when.

The tables (people, roles, statuses, grants, ownership, key wraps) must be a
projection of the log. ``Projection`` rebuilds them from events alone, also
checking that each event's actor had the right to do it at that moment, so a
row written with raw SQL — or a well-signed event by someone without the right —
shows up as a finding.
"""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from audit.chain import EventRecord

ADMIN_ACTIONS = {
    "staff.added",
    "staff.invited",
    "staff.role_changed",
    "account.added",
    "access.revoked",
    "access.over_cap",
    "access.recorded",
    "policy.published",
    "review.started",
    "review.revoked",
    "review.closed",
    "offboard.started",
    "offboard.step_done",
    "offboard.step_waived",
    "staff.offboarded",
}

OWNER_ACTIONS = {"access.approved", "access.denied", "review.certified"}


@dataclass
class PersonState:
    handle: str
    role: str
    status: str
    key: str | None = None
    admin_since: str | None = None  # while an active admin


@dataclass
class GrantState:
    id: int
    account: str
    handle: str
    start: str
    until: str | None
    reason: str | None
    by: str
    revoked: str | None = None
    expired: str | None = None

    def live_at(self, ts: str) -> bool:
        ended = [t for t in (self.revoked, self.until) if t is not None]
        return self.start <= ts and all(ts < t for t in ended)

    def end(self) -> str | None:
        ends = [t for t in (self.revoked, self.expired, self.until) if t is not None]
        return min(ends) if ends else None


@dataclass
class Projection:
    people: dict[str, PersonState] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    grants: dict[int, GrantState] = field(default_factory=dict)
    wraps: set[tuple[int, str]] = field(default_factory=set)
    key_account: dict[int, str] = field(default_factory=dict)
    admin_periods: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    init_tx: str | None = None
    recovery_tx: str | None = None
    recovery_ed25519: bytes | None = None
    recovery_admin_key: str | None = None
    vault_id: str | None = None

    # -- replay ---------------------------------------------------------------------------

    def apply(self, event: EventRecord) -> None:
        handler = getattr(self, "_on_" + event.action.replace(".", "_"), None)
        if handler is None and event.action != "access.granted":
            # Most events (reveals above all) change nothing the tables hold: only the
            # actor's right to act is checked, without parsing the data (the chain covers it).
            self._authorised(event, {})
            return
        try:
            data = json.loads(event.data)
        except ValueError:
            self.findings.append(f"event {event.seq}: data is not JSON")
            return
        self._authorised(event, data)
        if handler is not None:
            try:
                handler(event, data)
            except (KeyError, TypeError, ValueError):
                self.findings.append(f"event {event.seq}: {event.action} carries malformed data")

    def _authorised(self, event: EventRecord, data: dict[str, Any]) -> None:
        actor = self.people.get(event.actor)
        if event.action == "vault.initialised" and event.seq == 1:
            self.init_tx = event.tx
        if event.tx == self.init_tx:
            return  # the init transaction creates its own first admin
        if event.action == "vault.recovered":
            self._check_recovery(event, data)
            return
        if event.tx == self.recovery_tx:
            return  # a recovery proven by the recovery key's signature creates its admin
        if event.action == "vault.initialised":
            self.findings.append(f"event {event.seq}: a second vault.initialised")
            return
        if event.action == "staff.enrolled":
            target = self.people.get(event.subject or "")
            if event.actor != event.subject or target is None or target.status != "invited":
                self.findings.append(f"event {event.seq}: enrolment of {event.subject} that was not waiting for one")
            return
        if actor is None or actor.status != "active":
            self.findings.append(f"event {event.seq}: {event.actor} acted without being an active person")
            return
        if event.action in ADMIN_ACTIONS and actor.role != "admin":
            self.findings.append(f"event {event.seq}: {event.action} by {event.actor}, who was not an admin")
        decided_by_owner = self.owners.get(event.account or "") == event.actor
        if event.action in OWNER_ACTIONS and actor.role != "admin" and not decided_by_owner:
            self.findings.append(f"event {event.seq}: {event.action} by {event.actor}, not an admin or the owner")
        if event.action == "access.granted" and actor.role != "admin":
            owner = self.owners.get(event.account or "")
            if data.get("request") is None or owner != event.actor:
                self.findings.append(f"event {event.seq}: access granted by {event.actor}, not an admin or the owner")

    def _check_recovery(self, event: EventRecord, data: dict[str, Any]) -> None:
        from govern.services.recovery import recovery_message
        from vault import IntegrityError, verify_signature

        try:
            if self.recovery_ed25519 is None or self.vault_id is None:
                raise ValueError("the log records no recovery signing key")
            message = recovery_message(self.vault_id, event.tx, str(event.subject), str(data["admin_key"]))
            verify_signature(self.recovery_ed25519, message, base64.b64decode(data["signature"], validate=True))
        except (KeyError, ValueError, IntegrityError):
            self.findings.append(f"event {event.seq}: a recovery not signed by this vault's recovery key")
            return
        self.recovery_tx = event.tx
        self.recovery_admin_key = str(data["admin_key"])

    def _on_vault_recovered(self, _event: EventRecord, _data: dict[str, Any]) -> None:
        return None  # checked in _authorised, which needs the parsed data

    def _on_vault_initialised(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.vault_id = str(data["vault_id"])
        signing = data.get("recovery_key", {}).get("ed25519")
        self.recovery_ed25519 = None if signing is None else base64.b64decode(signing, validate=True)

    def _set_role(self, person: PersonState, role: str, ts: str) -> None:
        was_admin = person.role == "admin" and person.status == "active"
        person.role = role
        self._admin_edge(person, was_admin, ts)

    def _admin_edge(self, person: PersonState, was_admin: bool, ts: str) -> None:
        is_admin = person.role == "admin" and person.status == "active"
        periods = self.admin_periods.setdefault(person.handle, [])
        if is_admin and not was_admin:
            periods.append((ts, None))
        elif was_admin and not is_admin and periods:
            periods[-1] = (periods[-1][0], ts)

    def _on_staff_added(self, event: EventRecord, data: dict[str, Any]) -> None:
        handle = str(event.subject)
        self.people[handle] = PersonState(handle=handle, role=str(data["role"]), status="invited")

    def _on_staff_enrolled(self, event: EventRecord, data: dict[str, Any]) -> None:
        if event.tx == self.recovery_tx and data["public_keys"]["fingerprint"] != self.recovery_admin_key:
            self.findings.append(f"event {event.seq}: the recovered admin's key is not the one the recovery signed")
        person = self.people[str(event.subject)]
        was_admin = person.role == "admin" and person.status == "active"
        person.status = "active"
        person.key = str(data["public_keys"]["fingerprint"])
        self._admin_edge(person, was_admin, event.ts)

    def _on_staff_role_changed(self, event: EventRecord, data: dict[str, Any]) -> None:
        self._set_role(self.people[str(event.subject)], str(data["to"]), event.ts)

    def _on_staff_offboarded(self, event: EventRecord, data: dict[str, Any]) -> None:
        person = self.people[str(event.subject)]
        was_admin = person.role == "admin" and person.status == "active"
        person.status = "offboarded"
        self._admin_edge(person, was_admin, event.ts)

    def _on_account_added(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.owners[str(event.account)] = data.get("owner")
        self.versions.setdefault(str(event.account), [])

    def _on_account_updated(self, event: EventRecord, data: dict[str, Any]) -> None:
        owner = data.get("changes", {}).get("owner")
        if owner is not None:
            self.owners[str(event.account)] = owner[1]

    def _on_access_granted(self, event: EventRecord, data: dict[str, Any]) -> None:
        grant_id = int(data["grant"])
        self.grants[grant_id] = GrantState(
            id=grant_id,
            account=str(event.account),
            handle=str(event.subject),
            start=event.ts,
            until=_iso_to_ts(data.get("until")),
            reason=event.reason,
            by=event.actor,
        )
        for key_id in data.get("data_keys", []):
            self.wraps.add((int(key_id), str(data["recipient"])))

    def _on_access_revoked(self, event: EventRecord, data: dict[str, Any]) -> None:
        for grant_id in data["grants"]:
            self.grants[int(grant_id)].revoked = event.ts

    def _on_access_expired(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.grants[int(data["grant"])].expired = event.ts

    def _on_key_created(self, event: EventRecord, data: dict[str, Any]) -> None:
        key_id = int(data["data_key"])
        self.key_account[key_id] = str(event.account)
        for fingerprint in data["recipients"]:
            self.wraps.add((key_id, str(fingerprint)))

    def _on_key_wrapped(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.wraps.add((int(data["data_key"]), str(data["recipient"])))

    def _removed(self, data: dict[str, Any]) -> None:
        for key_id, fingerprint in data.get("removed", []):
            self.wraps.discard((int(key_id), str(fingerprint)))

    def _on_key_unwrapped(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._removed(data)

    def _on_key_retired(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._removed(data)

    def _on_rotation_aborted(self, _event: EventRecord, data: dict[str, Any]) -> None:
        self._removed(data)

    def _on_secret_set(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.versions.setdefault(str(event.account), []).append(
            {"version": data["version"], "at": event.ts, "by": event.actor, "changed": data.get("fields_changed", []),
             "how": "secret set"}
        )  # fmt: skip

    def _on_rotation_confirmed(self, event: EventRecord, data: dict[str, Any]) -> None:
        self.versions.setdefault(str(event.account), []).append(
            {"version": data["version"], "at": event.ts, "by": event.actor, "changed": ["password"], "how": "rotation"}
        )

    # -- questions ------------------------------------------------------------------------

    def admins_at(self, ts: str) -> list[str]:
        return sorted(
            handle
            for handle, periods in self.admin_periods.items()
            if any(start <= ts and (end is None or ts < end) for start, end in periods)
        )


def _iso_to_ts(value: Any) -> str | None:
    """Grant ends are stored as ISO seconds (``…Z``); event times as ``…\u200b.ffffffZ``."""
    if value is None:
        return None
    text = str(value)
    return text[:-1] + ".000000Z" if text.endswith("Z") and "." not in text else text


def replay(events: Any) -> Projection:
    projection = Projection()
    for event in events:
        projection.apply(event)
    return projection
