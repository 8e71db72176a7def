"""Every event govern exports as OCSF validates against the real OCSF 1.8.0 schema.

The schema is vendored in tests/data/ocsf-1.8.0/ (compiled from github.com/ocsf/ocsf-schema at
tag 1.8.0 by scripts/vendor_ocsf_schema.py); tests/ocsf_validate.py checks each event offline.
SQLite only: the export is the same code over either backend (tests/test_evidence.py compares
the backends' exports), and this scenario is long.
"""

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, Govern
from forge import Forged, append_transaction, fingerprint_of, head, signer_of
from ocsf_validate import Validator, load_schema

from audit.state import _HANDLERS
from govern.services.secrets import RETENTION

# Actions the log accepts without a handler of their own (the state handles them inline).
_INLINE = {"vault.initialised", "vault.recovered", "secret.revealed"}
EVERY_ACTION = set(_HANDLERS) | _INLINE


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(load_schema())


def _requests(g: Govern, as_: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = g.ok("access", "requests", "--pending", "--json", as_=as_).json()
    return result


def _open_steps(g: Govern, handle: str, kind: str | None = None) -> list[int]:
    case = g.ok("offboard", "status", handle, "--json").json()
    return [int(s["step"]) for s in case["steps"] if s["status"] == "open" and kind in (None, s["kind"])]


def _every_event(g: Govern, tmp_path: Path) -> None:
    """A vault's life in which govern emits every event type it has."""
    recovery = tmp_path / "recovery.txt"
    g.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice Admin", "--recovery-file", str(recovery))
    for handle in ("bob", "carol", "dave", "erin"):
        g.enrol(handle)
    g.ok("staff", "add", "fred", "--name", "Fred")
    g.ok("staff", "invite", "fred")  # staff.invited
    g.ok("staff", "set-role", "carol", "admin")  # staff.role_changed
    g.account()  # account.added, secret.set, key.created, key.wrapped
    g.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    g.ok("secret", "set", "ig-acme", "--password-stdin", input="ig " + CANARY_PASSWORD + "\n")
    g.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    g.ok("account", "set", "x-acme", "--max-holders", "2", "--rotate-every", "30d")  # account.updated
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "2d")  # access.granted
    g.ok("access", "extend", "x-acme", "bob", "--for", "7d")  # access.extended
    g.ok("secret", "show", "x-acme", as_="bob")  # secret.revealed, key.unwrapped
    assert g("secret", "show", "x-acme", as_="dave").code == 4  # secret.denied
    g.ok("access", "grant", "x-acme", "dave", "--reason", "launch")
    g.ok("access", "grant", "x-acme", "erin", "--reason", "crisis cover", "--over-cap")  # access.over_cap
    g.ok("access", "record", "x-acme", "fred", "--reason", "told on the phone")  # access.recorded
    # Requests: approved, denied, withdrawn, and one left pending for the offboarding to cancel.
    g.ok("access", "request", "ig-acme", "--reason", "campaign", as_="bob")
    (asked,) = _requests(g, "alice")
    g.ok("access", "approve", str(asked["id"]))  # access.requested, access.approved
    g.ok("access", "request", "ig-acme", "--reason", "cover", as_="dave")
    (asked,) = _requests(g, "alice")
    g.ok("access", "deny", str(asked["id"]), "--reason", "not this week")  # access.denied
    g.ok("access", "request", "ig-acme", "--reason", "cover", as_="erin")
    (asked,) = _requests(g, "erin")
    g.ok("access", "withdraw", str(asked["id"]), as_="erin")  # access.withdrawn
    g.ok("access", "revoke", "x-acme", "dave", "--reason", "launch over")  # access.revoked
    g.ok("rotation", "start", "ig-acme")
    g.ok("rotation", "abort", "ig-acme")  # rotation.aborted
    g.ok("rotation", "start", "x-acme")  # rotation.started
    g.ok("rotation", "confirm", "x-acme")  # rotation.confirmed, key.retired
    policy = tmp_path / "policy.md"
    policy.write_text("# Social media policy\n\nShare nothing.\n", encoding="utf-8")
    g.ok("policy", "publish", str(policy), "--version", "2026-12")  # policy.published
    for handle in ("bob", "dave", "erin"):
        g.ok("policy", "ack", as_=handle)  # policy.acknowledged
    g.ok("review", "start", "--name", "Q4 2026")  # review.started
    g.ok("review", "certify", "x-acme", "bob")  # review.certified
    g.ok("review", "revoke", "x-acme", "erin", "--reason", "left the social team")  # review.revoked
    g.ok("review", "close", "--revoke-undecided")  # review.closed
    # An insider's correctly sealed transaction that breaks a rule is contained; an admin decides.
    bad = head(g.db)[0] + 1
    forged = {"data_keys": [999], "removed": [[999, fingerprint_of(g.db, "bob")]], "exposed": []}
    append_transaction(
        g.db, [Forged("bob", "key.unwrapped", account="x-acme", subject="bob", data=forged)], **signer_of(g.db, "bob")
    )
    g.ok("audit", "acknowledge", str(bad), "--reason", "bob's client bug")  # audit.violation_acknowledged
    g.ok("passwd", "--new-passphrase-stdin", as_="bob", input="bob a new passphrase entirely\n")
    g.ok("access", "request", "x-acme", "--reason", "again", as_="dave")
    g.ok("offboard", "start", "dave", "--reason", "left the company")  # offboard.started, access.cancelled
    manual = _open_steps(g, "dave", "manual")
    g.ok("offboard", "done", "dave", str(manual[0]), "--note", "done")  # offboard.step_done
    for number in _open_steps(g, "dave"):
        g.ok("offboard", "done", "dave", str(number), "--waive", "--reason", "account being deleted")
    g.ok("offboard", "start", "bob", "--reason", "left")
    g.ok("rotation", "start", "x-acme")
    g.ok("rotation", "confirm", "x-acme")  # offboard.step_closed (automatic)
    for number in _open_steps(g, "bob"):
        g.ok("offboard", "done", "bob", str(number), "--waive", "--reason", "n/a")  # offboard.completed
    g.ok("access", "grant", "ig-acme", "erin", "--reason", "short", "--for", "1h")
    g.later(RETENTION + timedelta(days=1))
    g.ok("sweep")  # access.expired, secret.destroyed
    g.ok("recover", "--recovery-file", str(recovery), "--admin", "zoe", "--name", "Zoe Rescue", as_="zoe")


def test_every_event_govern_exports_is_valid_ocsf_1_8_0(
    sqlite_govern: Govern, tmp_path: Path, validator: Validator
) -> None:
    g = sqlite_govern
    _every_event(g, tmp_path)
    lines = g.ok("audit", "export", "--format", "ocsf", as_="zoe").out.splitlines()
    log = g.ok("audit", "log", "--json", as_="zoe").json()
    assert len(lines) == len(log) > 0
    emitted = {e["action"] for e in log}
    assert emitted == EVERY_ACTION, f"not exercised: {sorted(EVERY_ACTION - emitted)}"
    failures = {}
    for line, source in zip(lines, log, strict=True):
        event = json.loads(line)
        moment = datetime.strptime(source["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert event["time"] == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        errors = validator.validate(event)
        if errors:
            failures.setdefault(source["action"], errors)
    assert failures == {}
    classes = {json.loads(line)["class_uid"] for line in lines}
    assert classes == {3001, 3004, 3005}
    assert g.ok("audit", "verify", as_="zoe").code == 0
    assert CANARY_PASSWORD not in "\n".join(lines)


def _valid_event(validator: Validator) -> dict[str, Any]:
    event = {
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": 3005,
        "class_name": "User Access Management",
        "activity_id": 1,
        "activity_name": "Assign Privileges",
        "type_uid": 300501,
        "type_name": "User Access Management: Assign Privileges",
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 1,
        "status": "Success",
        "time": 1_795_000_000_000,
        "metadata": {"version": "1.8.0", "product": {"name": "govern", "vendor_name": "govern", "version": "1"}},
        "actor": {"user": {"name": "alice", "uid": "alice"}},
        "user": {"name": "bob", "uid": "bob"},
        "privileges": ["credential:x-acme"],
        "resources": [{"uid": "x-acme", "name": "x-acme", "type": "social media account"}],
        "unmapped": {"anything": {"goes": [1, 2]}},
    }
    assert validator.validate(event) == []
    return event


def _broken(validator: Validator, change: Any) -> list[str]:
    event = copy.deepcopy(_valid_event(validator))
    change(event)
    return validator.validate(event)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e.pop("privileges"), "privileges: required attribute missing"),
        (lambda e: e["metadata"].pop("product"), "metadata.product: required attribute missing"),
        (lambda e: e["actor"]["user"].update(nickname="al"), "actor.user.nickname: unknown attribute"),
        (lambda e: e.update(comment="why"), "comment: unknown attribute"),
        (lambda e: e.update(resource={"uid": "x-acme"}), "resource: deprecated attribute"),
        (lambda e: e["user"].update(credential_uid="k"), "user.credential_uid: deprecated attribute"),
        (lambda e: e.update(time="2026-11-29T10:00:00Z"), "time: '2026-11-29T10:00:00Z' is not a valid timestamp_t"),
        (lambda e: e.update(time=1_795_000_000), "time: 1795000000 does not look like milliseconds"),
        (lambda e: e.update(severity_id="1"), "severity_id: '1' is not a valid integer_t"),
        (lambda e: e.update(privileges="credential:x-acme"), "privileges: expected an array"),
        (lambda e: e.update(severity_id=7), "severity_id: 7 is not in the enum"),
        (lambda e: e.update(status="Failure"), "status: 'Failure' does not match the caption of status_id 1"),
        (lambda e: e.update(activity_id=3, type_uid=300503), "activity_id: 3 is not in the enum"),
        (lambda e: e.update(type_uid=300502), "type_uid: 300502 != class_uid * 100 + activity_id"),
        (
            lambda e: e.update(activity_id=99, activity_name="Other", type_uid=300599),
            "activity_name: activity_id is 99",
        ),
        (lambda e: e.update(category_uid=2), "category_uid: 2 is not in the enum"),
        (lambda e: e["metadata"].update(version="1.5.0"), "metadata.version: '1.5.0', expected '1.8.0'"),
        (lambda e: e.update(device={"name": "laptop"}), "device: attribute of profile 'host', not declared"),
        (lambda e: e.update(user={"email_addr": "bob@example.org"}), "user: user needs at least one of"),
        (lambda e: e["user"].update(email_addr="not an address"), "user.email_addr: 'not an address' does not match"),
        (lambda e: e.update(class_uid=3999), "class_uid: 3999 is not a class of this schema"),
        (lambda e: e.update(observables=[{"type_id": 20, "name": "a"}]), "observables[0].type_id: cannot be validated"),
    ],
)
def test_the_validator_catches(validator: Validator, change: Any, expected: str) -> None:
    errors = _broken(validator, change)
    assert any(error.startswith(expected) for error in errors), errors


def test_the_validator_requires_profile_attributes_only_with_the_profile(validator: Validator) -> None:
    event = _valid_event(validator)
    event["metadata"]["profiles"] = ["host"]
    event["device"] = {"type_id": 2, "hostname": "laptop"}
    assert validator.validate(event) == []
    event["metadata"]["profiles"] = ["cloud"]
    del event["device"]
    assert "cloud: required attribute missing" in validator.validate(event)


def test_the_vendored_schema_names_its_source() -> None:
    schema = load_schema()
    assert schema["version"] == "1.8.0"
    assert schema["source"]["repository"] == "https://github.com/ocsf/ocsf-schema"
    assert len(schema["source"]["commit"]) == 40
    folder = Path(__file__).parent / "data" / "ocsf-1.8.0"
    assert "Apache" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "OCSF" in (folder / "NOTICE").read_text(encoding="utf-8")
