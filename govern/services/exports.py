"""Export formats besides the canonical JSONL: CSV for spreadsheets, OCSF 1.8.0 for SIEMs."""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from audit.chain import EventRecord

CSV_COLUMNS = ["seq", "ts", "tx", "actor", "action", "account", "subject", "reason", "data", "hash"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_lines(events: Iterable[EventRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().rstrip("\n")
    for event in events:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_safe(getattr(event, column)) for column in CSV_COLUMNS])
        yield buffer.getvalue().rstrip("\n")


# OCSF 1.8.0, category 3 (Identity & Access Management).
OCSF_VERSION = "1.8.0"
_ACCOUNT_CHANGE = (3001, "Account Change")
_ENTITY_MANAGEMENT = (3004, "Entity Management")
_USER_ACCESS = (3005, "User Access Management")

# action -> (class, activity_id, activity_name)
_MAPPING: dict[str, tuple[tuple[int, str], int, str]] = {
    "staff.added": (_ACCOUNT_CHANGE, 1, "Create"),
    "staff.enrolled": (_ACCOUNT_CHANGE, 2, "Enable"),
    "staff.offboarded": (_ACCOUNT_CHANGE, 5, "Disable"),
    "staff.role_changed": (_USER_ACCESS, 99, "Other"),
    "staff.passphrase_changed": (_ACCOUNT_CHANGE, 3, "Password Change"),
    "access.granted": (_USER_ACCESS, 1, "Assign Privileges"),
    "access.revoked": (_USER_ACCESS, 2, "Revoke Privileges"),
    "access.expired": (_USER_ACCESS, 2, "Revoke Privileges"),
    "review.revoked": (_USER_ACCESS, 2, "Revoke Privileges"),
    "account.added": (_ENTITY_MANAGEMENT, 1, "Create"),
    "account.updated": (_ENTITY_MANAGEMENT, 3, "Update"),
    "secret.revealed": (_ENTITY_MANAGEMENT, 2, "Read"),
    "secret.set": (_ENTITY_MANAGEMENT, 3, "Update"),
    "secret.destroyed": (_ENTITY_MANAGEMENT, 4, "Delete"),
    "rotation.confirmed": (_ENTITY_MANAGEMENT, 3, "Update"),
    "policy.published": (_ENTITY_MANAGEMENT, 1, "Create"),
}


def _epoch_ms(ts: str) -> int:
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)


def ocsf_event(event: EventRecord, *, vault_id: str, version: str) -> dict[str, Any]:
    (class_uid, class_name), activity_id, activity_name = _MAPPING.get(event.action, (_ENTITY_MANAGEMENT, 99, "Other"))
    data = json.loads(event.data)
    out: dict[str, Any] = {
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "time": _epoch_ms(event.ts),
        "message": f"{event.actor} {event.action}"
        + (f" {event.account}" if event.account else "")
        + (f" {event.subject}" if event.subject else ""),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{vault_id}:{event.seq}",
            "correlation_uid": event.tx,
            "log_name": "govern audit log",
            "product": {"name": "govern", "vendor_name": "govern", "version": version},
        },
        "actor": {"user": {"name": event.actor, "uid": event.actor}},
        "unmapped": {
            "govern_action": event.action,
            "govern_seq": event.seq,
            "govern_hash": event.hash,
            "account": event.account,
            "reason": event.reason,
            "data": data,
        },
    }
    if class_uid in (3001, 3005):
        out["user"] = {"name": event.subject or event.actor, "uid": event.subject or event.actor}
    if class_uid == 3005:
        out["privileges"] = [f"credential:{event.account}"] if event.account else [f"role:{data.get('to', 'unknown')}"]
        if event.account:
            out["resource"] = {"name": event.account, "type": "social media account"}
    if class_uid == 3004:
        out["entity"] = {"name": event.account or event.subject or "vault", "type": _entity_type(event)}
    return out


def _entity_type(event: EventRecord) -> str:
    if event.account:
        return "social media account"
    if event.action.startswith("policy."):
        return "policy"
    if event.action.startswith("review."):
        return "access review"
    if event.action.startswith("offboard."):
        return "offboarding case"
    return "vault"


def ocsf_lines(events: Iterable[EventRecord], *, vault_id: str, version: str) -> Iterator[str]:
    for event in events:
        yield json.dumps(ocsf_event(event, vault_id=vault_id, version=version), ensure_ascii=False)
