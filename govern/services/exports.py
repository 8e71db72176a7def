"""Export formats besides the canonical JSONL: CSV for spreadsheets, OCSF 1.8.0 for SIEMs."""

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from audit.chain import EventRecord

CSV_COLUMNS = ["seq", "ts", "tx", "actor", "action", "account", "subject", "reason", "data", "hash"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
# Excel on Windows reads a CSV file as UTF-8 only when it starts with a byte order mark.
UTF8_BOM = "\ufeff"


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_quote(value: str) -> str:
    """A field quoted when it holds a separator, a quote, CR or LF (RFC 4180).

    Python's csv writer leaves a lone CR unquoted unless the line terminator holds one; a
    reader then splits the record there and the next cell starts a fresh line, where a
    spreadsheet runs a formula again. Quoting by hand keeps the rule in one visible place.
    """
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_record(cells: Iterable[Any]) -> str:
    """One CSV record (without its CRLF terminator)."""
    return ",".join(csv_quote(csv_safe(cell)) for cell in cells)


def csv_lines(events: Iterable[EventRecord], *, excel: bool = False) -> Iterator[str]:
    """The CSV export as records; the caller ends each with CRLF. ``excel``: start with a BOM."""
    yield (UTF8_BOM if excel else "") + csv_record(CSV_COLUMNS)
    for event in events:
        yield csv_record(getattr(event, column) for column in CSV_COLUMNS)


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
    "access.extended": (_USER_ACCESS, 1, "Assign Privileges"),
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
    mapped = _MAPPING.get(event.action)
    if mapped is None:
        # Activity 99 ("Other"): OCSF wants the source's own name of the activity.
        (class_uid, class_name), activity_id, activity_name = _ENTITY_MANAGEMENT, 99, event.action
    else:
        (class_uid, class_name), activity_id, activity_name = mapped
        if activity_id == 99:
            activity_name = event.action
    data = json.loads(event.data)
    out: dict[str, Any] = {
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        # The caption of type_uid: "Class: Other" for activity 99 (the source's name is activity_name).
        "type_name": f"{class_name}: {'Other' if activity_id == 99 else activity_name}",
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
            "sequence": event.seq,
            "correlation_uid": event.tx,
            "log_name": "govern audit log",
            "product": {"name": "govern", "vendor_name": "govern", "version": version},
        },
        "actor": {"user": _user(event.actor)},
        "unmapped": {
            "govern_action": event.action,
            "govern_seq": event.seq,
            "govern_hash": event.hash,
            "account": event.account,
            "reason": event.reason,
            "data": data,
        },
    }
    if event.action == "secret.denied":
        out["status_id"], out["status"] = 2, "Failure"
        out["status_detail"] = str(data.get("why", ""))
    if class_uid in (3001, 3005):
        out["user"] = _user(event.subject or event.actor)
    if class_uid == 3005:
        out["privileges"] = [f"credential:{event.account}"] if event.account else [f"role:{data.get('to', 'unknown')}"]
        if event.account:
            out["resources"] = [{"uid": event.account, "name": event.account, "type": "social media account"}]
    if class_uid == 3004:
        out["entity"] = _entity(event, data, vault_id)
        if event.reason:
            out["comment"] = event.reason  # "why the entity was changed" (Entity Management only)
    elif event.reason:
        out["message"] += f": {event.reason}"  # Account Change and User Access have no comment
    return out


def _user(handle: str) -> dict[str, str]:
    return {"name": handle, "uid": handle}


def _entity(event: EventRecord, data: dict[str, Any], vault_id: str) -> dict[str, Any]:
    """The managed entity: the object the event is about, with its own ``uid`` and ``type``.

    The person acted upon (``subject``), if any, is the Managed Entity's ``user``, so it is
    never only in the message.
    """
    entity: dict[str, Any]
    if event.account:
        entity = {"uid": event.account, "name": event.account, "type": "social media account", "type_id": 99}
    elif event.action.startswith("policy.") and data.get("version") is not None:
        name = f"social media policy {data['version']}"
        entity = {"uid": f"policy:{data['version']}", "name": name, "type": "policy", "type_id": 99}
    elif event.action.startswith("review.") and data.get("review") is not None:
        name = f"access review {data['review']}"
        entity = {"uid": f"review:{data['review']}", "name": name, "type": "access review", "type_id": 99}
    elif event.action.startswith("offboard.") and data.get("case") is not None:
        name = f"offboarding case {data['case']}"
        entity = {"uid": f"case:{data['case']}", "name": name, "type": "offboarding case", "type_id": 99}
    elif event.subject:
        entity = {"uid": event.subject, "name": event.subject, "type": "User", "type_id": 2}
    else:
        entity = {"uid": vault_id, "name": "govern vault", "type": "vault", "type_id": 99}
    if event.subject:
        entity["user"] = _user(event.subject)
    return entity


def ocsf_lines(events: Iterable[EventRecord], *, vault_id: str, version: str) -> Iterator[str]:
    for event in events:
        yield json.dumps(ocsf_event(event, vault_id=vault_id, version=version), ensure_ascii=False)
