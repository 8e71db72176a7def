"""Red-team round 2: new attacks by a database writer, or a member who knows only their own passphrase.

Each test plays one attack and asserts that it is *defended*: a test that fails here is an
attack that works today. The attacker's tools are those of ``forge.py`` plus two of their own:
raw rows inserted with SQLAlchemy, and events whose ``data`` text is not canonical JSON.
"""

import base64
import json
import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, Govern
from forge import (
    Forged,
    append_transaction,
    clean,
    connection,
    fingerprint_of,
    head,
    keys_of,
    person_id,
    refused,
    restore,
    signer_of,
    snapshot,
    vault_id,
)
from sqlalchemy import insert
from sqlhelp import sql
from sqlmodel import SQLModel

from audit.chain import EventRecord, SealRecord
from audit.export import export_message
from audit.state import sealed_digest
from govern.custody import field_aad, key_check_value, wrap_aad
from govern.timeutil import utcnow
from vault import PersonKeys, new_data_key, seal, wrap_key

pytestmark = pytest.mark.tampers

ATTACKER_PASSWORD = "ATTACKER-chosen-pw-redteam"


# -- helpers -------------------------------------------------------------------------------------


def insert_rows(db: str, table: str, *rows: dict[str, Any]) -> None:
    with connection(db) as conn:
        conn.execute(insert(SQLModel.metadata.tables[table]), list(rows))


def one(db: str, query: str, **params: Any) -> Any:
    return sql(db, query, **params)[0][0]


def account_id(db: str, slug: str = "x-acme") -> int:
    return int(one(db, "SELECT id FROM account WHERE slug = :s", s=slug))


def event_ts(db: str, action: str) -> str:
    return str(one(db, "SELECT ts FROM audit_event WHERE action = :a ORDER BY seq DESC", a=action))


def append_raw(db: str, actor: str, action: str, data_text: str, *, account: str | None = None) -> None:
    """One event whose data text the attacker wrote by hand, hash-chained, under a garbage seal."""
    seq, prev = head(db)
    tx = str(uuid.uuid4())
    ts = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    record = EventRecord(seq + 1, tx, ts, actor, action, account, actor, None, data_text, prev, "")
    record = replace(record, hash=record.computed_hash())
    fake = SealRecord(tx, record.seq, record.seq, record.hash, actor, fingerprint_of(db, actor), ts, "A" * 88)
    insert_rows(db, "audit_event", asdict(record))
    insert_rows(db, "audit_seal", asdict(fake))


def pin_path(vault: Govern) -> Path:
    return Path(vault.ok("pin", "show", "--json").json()["path"])


NOW = utcnow()


# -- 1. an owner grants themselves (self-approval without a request, over the cap) ------------------


@pytest.mark.parametrize("beneficiary", ["bob", "carol"])
def test_owner_forges_a_grant_without_any_request(vault: Govern, beneficiary: str) -> None:
    """The log lets an account's owner sign ``access.granted`` with any request number: no
    ``access.requested``, no ``access.approved``, the owner may be the beneficiary, and no cap
    is checked. The next key made for the account is then wrapped to the beneficiary."""
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "bob", "--max-holders", "1")
    vault.ok("access", "grant", "x-acme", "dave", "--reason", "the cap is now full")
    member = keys_of(vault.db, beneficiary)
    append_transaction(
        vault.db,
        [
            Forged(
                actor="bob",
                action="access.granted",
                account="x-acme",
                subject=beneficiary,
                reason="I approve myself",
                data={"grant": 900, "until": None, "data_keys": [], "recipient": member.public.fingerprint,
                      "request": 900},
            )
        ],
        **signer_of(vault.db, "bob"),
    )  # fmt: skip
    aid, pid = account_id(vault.db), person_id(vault.db, beneficiary)
    insert_rows(vault.db, "access_request", {"id": 900, "account_id": aid, "person_id": pid, "reason": "-",
                                             "status": "approved", "created_at": NOW})  # fmt: skip
    insert_rows(vault.db, "access_grant", {"id": 900, "account_id": aid, "person_id": pid, "reason": "I approve myself",
                                    "granted_by": "bob", "starts_at": NOW, "request_id": 900})  # fmt: skip

    # An admin sets a new password: the new data key goes to the live holders of the log.
    vault("secret", "set", "x-acme", "--password-stdin", input="new-password-after-forgery\n")
    shown = vault("secret", "show", "x-acme", as_=beneficiary)
    assert "new-password-after-forgery" not in shown.out, "a key was wrapped to an owner-forged grant"
    refused(vault("audit", "verify"))  # the forged grant must break a rule of the log


# -- 2. a member closes the offboarding steps of someone else's case ------------------------------


def test_member_closes_offboarding_steps_and_completes_the_case(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "runs X")
    vault.ok("offboard", "start", "carol", "--reason", "left")
    case_id = int(one(vault.db, "SELECT id FROM offboard_case"))
    open_steps = [int(r[0]) for r in sql(vault.db, "SELECT number FROM offboard_step WHERE status = 'open'")]
    assert open_steps, "the case has manual follow-ups (rotate the password)"
    events = [
        Forged(actor="bob", action="offboard.step_closed", subject="carol",
               data={"case": case_id, "step": n, "kind": "rotate", "automatic": True})
        for n in open_steps
    ]  # fmt: skip
    events.append(Forged(actor="bob", action="offboard.completed", subject="carol", data={"case": case_id}))
    append_transaction(vault.db, events, **signer_of(vault.db, "bob"))
    sql(vault.db, "UPDATE offboard_step SET status = 'done'")
    sql(vault.db, "UPDATE offboard_case SET status = 'closed'")

    refused(vault("audit", "verify"))  # only an admin, or the rotation that cleared the exposure, closes a step


# -- 3. a member (no grant) signs key housekeeping that should need an admin ----------------------


@pytest.mark.parametrize("action", ["key.retired", "key.unwrapped"])
def test_member_removes_the_admin_and_recovery_wraps(vault: Govern, action: str) -> None:
    """``key.retired`` / ``key.unwrapped`` are not admin-only: any member can sign one that removes
    the recovery key's and every admin's wrap of the current key, so the credential is lost
    and the signed log says it was done properly."""
    key_id = int(one(vault.db, "SELECT id FROM data_key WHERE retired_at IS NULL"))
    recovery = str(one(vault.db, "SELECT recovery_fingerprint FROM vault"))
    removed = [[key_id, recovery], [key_id, fingerprint_of(vault.db, "alice")]]
    data: dict[str, Any] = {"removed": removed}
    if action == "key.retired":
        data["data_keys"] = [key_id]
    append_transaction(
        vault.db,
        [Forged(actor="bob", action=action, account="x-acme", subject="alice", data=data)],
        **signer_of(vault.db, "bob"),
    )
    sql(vault.db, "DELETE FROM key_wrap WHERE data_key_id = :k", k=key_id)
    if action == "key.retired":
        sql(vault.db, "UPDATE data_key SET retired_at = created_at WHERE id = :k", k=key_id)

    refused(vault("audit", "verify"))


def test_holder_aborts_the_current_version_and_retires_another_accounts_key(vault: Govern) -> None:
    """``rotation.aborted`` is checked only for holding the account; its data names any version
    (even the current one) and any data key (even another account's)."""
    vault.account("y-acme", password="y-password")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    y_key = int(one(vault.db, "SELECT d.id FROM data_key d JOIN account a ON a.id = d.account_id"
                              " WHERE a.slug = 'y-acme' AND d.retired_at IS NULL"))  # fmt: skip
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="rotation.aborted", account="x-acme",
                data={"version": 1, "rotation": 900, "data_key": y_key, "removed": []})],
        **signer_of(vault.db, "bob"),
    )  # fmt: skip
    v1 = int(one(vault.db, "SELECT id FROM credential_version WHERE account_id = :a AND number = 1",
                 a=account_id(vault.db)))  # fmt: skip
    sql(vault.db, "UPDATE credential_version SET status = 'aborted' WHERE id = :v", v=v1)
    sql(vault.db, "UPDATE data_key SET retired_at = created_at WHERE id = :k", k=y_key)
    insert_rows(vault.db, "rotation", {"id": 900, "account_id": account_id(vault.db), "status": "aborted",
                                       "pending_version_id": v1, "previous_version_id": v1, "started_by": "bob",
                                       "started_at": NOW})  # fmt: skip

    refused(vault("audit", "verify"))


def test_member_withdraws_someone_elses_request(vault: Govern) -> None:
    vault.enrol("carol")
    request = vault.ok("access", "request", "x-acme", "--reason", "need it", "--json", as_="carol").json()["id"]
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="access.withdrawn", account="x-acme", subject="carol", data={"request": request})],
        **signer_of(vault.db, "bob"),
    )
    sql(vault.db, "UPDATE access_request SET status = 'cancelled' WHERE id = :r", r=request)

    refused(vault("audit", "verify"))


# -- 3b. rows the comparison does not look at, which still decide (no passphrase needed) -----------


def test_expired_at_set_in_advance_skips_expiry_processing(vault: Govern) -> None:
    """``access_grant.expired_at`` is not compared with the log, yet ``expire_due`` skips grants that
    have it: the holder keeps their wraps after the grant ends and is never marked exposed."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "one hour", "--for", "1h")
    sql(vault.db, "UPDATE access_grant SET expired_at = starts_at")
    vault.later(timedelta(hours=2))
    # The pre-set expiry is a row the signed log does not explain: nothing acts on it.
    refused(vault("sweep"))
    refused(vault("rotation", "status", "--check"))
    refused(vault("secret", "show", "x-acme", as_="bob"))


def test_version_date_moved_forward_hides_an_overdue_rotation(vault: Govern) -> None:
    vault.later(timedelta(days=400))
    assert vault("rotation", "status", "--check").code == 7  # overdue
    sql(vault.db, "UPDATE credential_version SET created_at = :t", t=datetime(2099, 1, 1, tzinfo=UTC))
    refused(vault("rotation", "status", "--check"))  # the row's date is not the signed event's


def test_step_deadline_moved_hides_an_overdue_offboarding(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "runs X")
    vault.ok("offboard", "start", "carol", "--reason", "left")
    vault.later(timedelta(days=3))
    assert vault("offboard", "status", "--check").code == 7  # the rotation step is past its deadline
    sql(
        vault.db,
        "UPDATE offboard_step SET deadline = :t WHERE deadline IS NOT NULL",
        t=datetime(2099, 1, 1, tzinfo=UTC),
    )
    refused(vault("offboard", "status", "--check"))


# -- 4. time: a revoked holder back-dates a secret.set, clears their exposure, plants a password ---


def test_revoked_holder_backdates_a_new_version_into_their_grant(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    granted_at = event_ts(vault.db, "access.granted")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    assert vault("rotation", "status", "--check").code == 7  # exposed to bob

    db, vid, aid = vault.db, vault_id(vault.db), account_id(vault.db)
    bob = keys_of(db, "bob")
    recovery_fp, recovery_pub = sql(db, "SELECT recovery_fingerprint, recovery_public FROM vault")[0]
    alice_fp, alice_pub = sql(db, "SELECT fingerprint, x25519_public FROM person_key WHERE person_id = :p",
                              p=person_id(db, "alice"))[0]  # fmt: skip
    key, key_id, version_id = new_data_key(), 900, 900
    sealed = {"password": seal(key, ATTACKER_PASSWORD.encode(), field_aad(vid, aid, "password", 2))}
    insert_rows(db, "data_key", {"id": key_id, "account_id": aid, "created_at": NOW})
    insert_rows(
        db,
        "key_wrap",
        *[
            {"data_key_id": key_id, "person_id": pid, "recipient_fingerprint": fp, "created_at": NOW,
             "blob": wrap_key(key, public, wrap_aad(vid, aid, key_id, fp))}
            for pid, fp, public in [(None, recovery_fp, recovery_pub), (person_id(db, "alice"), alice_fp, alice_pub),
                                    (person_id(db, "bob"), bob.public.fingerprint, bob.public.x25519)]
        ],
    )  # fmt: skip
    sql(db, "UPDATE credential_version SET status = 'superseded' WHERE account_id = :a", a=aid)
    insert_rows(db, "credential_version", {"id": version_id, "account_id": aid, "number": 2, "data_key_id": key_id,
                                           "status": "current", "fields": "password", "changed": "password",
                                           "created_by": "bob", "created_at": NOW})  # fmt: skip
    insert_rows(db, "sealed_field", {"version_id": version_id, "field": "password", "ciphertext": sealed["password"]})
    sql(db, "UPDATE credential_exposure SET cleared_at = :t, cleared_by_version = 2", t=NOW)
    append_transaction(
        db,
        [
            Forged(actor="bob", action="key.created", account="x-acme",
                   data={"data_key": key_id, "recipients": [recovery_fp, alice_fp, bob.public.fingerprint],
                         "kcv": key_check_value(key)}),
            Forged(actor="bob", action="secret.set", account="x-acme",
                   data={"version": 2, "previous_version": 1, "fields": ["password"], "fields_changed": ["password"],
                         "exposures_cleared": 1,
                         "content": {"data_key": key_id, "sealed": sealed_digest(sealed),
                                     "kcv": key_check_value(key)}}),
        ],
        ts=granted_at,  # back-dated into the grant that was revoked since
        **signer_of(db, "bob"),
    )  # fmt: skip

    shown = vault("secret", "show", "x-acme")
    assert ATTACKER_PASSWORD not in shown.out, "a revoked holder planted the password admins are shown"
    assert vault("rotation", "status", "--check").code != 0, "the revoked holder's exposure was cleared"
    refused(vault("audit", "verify"))


def test_events_must_not_go_back_in_time(vault: Govern) -> None:
    """Smallest form of the above: after the revocation, a reveal signed with the grant's own ts."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    granted_at = event_ts(vault.db, "access.granted")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="secret.revealed", account="x-acme", data={"version": 1, "field": "password"})],
        ts=granted_at,  # before the revocation, which is earlier in the chain
        **signer_of(vault.db, "bob"),
    )
    refused(vault("audit", "verify"))


# -- 5. hostile event data and hostile rows: exit 6, never a crash (exit 1) -----------------------


@pytest.mark.parametrize(
    "data_text",
    [
        '{"request": Infinity}',  # json.loads accepts it; int(inf) raises OverflowError
        '{"request": 1e999}',
        "[" * 100_000 + "]" * 100_000,  # RecursionError in json.loads
    ],
    ids=["infinity", "huge-float", "deep-nesting"],
)
def test_hostile_event_data_is_an_integrity_failure_not_a_crash(vault: Govern, data_text: str) -> None:
    append_raw(vault.db, "bob", "access.requested", data_text, account="x-acme")
    refused(vault("audit", "verify"))
    refused(vault("secret", "show", "x-acme"))


def test_event_data_stored_as_a_blob_is_an_integrity_failure_not_a_crash(sqlite_govern: Govern) -> None:
    """SQLite lets a writer store bytes in a text column (PostgreSQL enforces column types)."""
    vault = sqlite_govern
    vault.init()
    vault.account()
    last = head(vault.db)[0]
    sql(vault.db, "UPDATE audit_event SET data = CAST(data AS BLOB) WHERE seq = :s", s=last)
    refused(vault("audit", "verify"))
    refused(vault("secret", "show", "x-acme"))


@pytest.mark.parametrize("field", ["keys", "people", "grants"])
def test_a_corrupt_state_cache_in_the_pin_does_not_disable_the_rollback_check(vault: Govern, field: str) -> None:
    """Wrong types in the pin's state: no crash, and the anchor (seq, head) still refuses a rollback."""
    backup = snapshot(vault.db)
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")  # the pin moves past the backup
    path = pin_path(vault)
    body = json.loads(path.read_text())
    body["state"][field] = []
    path.write_text(json.dumps(body))
    clean(vault("access", "list"))
    restore(vault.db, backup)
    refused(vault("secret", "show", "x-acme"))


# -- 6. exports --------------------------------------------------------------------------------------


def test_export_cut_before_the_pin_is_not_anchored_by_it(vault: Govern, tmp_path: Path) -> None:
    """A former admin cuts the log where they were still admin and signs it as a complete export;
    ``verify --export`` on a client pinned further on accepts it and says it is anchored by the pin."""
    vault.enrol("carol", role="admin")
    full = tmp_path / "full.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(full))
    cut_at = head(vault.db)[0]
    vault.ok("staff", "set-role", "carol", "member")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "what carol wants hidden")
    vault.ok("audit", "verify")  # this client's pin is now past the cut

    carol: PersonKeys = keys_of(vault.db, "carol")
    lines = [json.loads(line) for line in full.read_text().splitlines()]
    header = {**lines[0], "exported_by": "carol", "key": carol.public.fingerprint}
    body = [x for x in lines[1:-1] if x.get("seq", x.get("last_seq", 0)) <= cut_at]
    events = [x for x in body if x["type"] == "event"]
    footer: dict[str, Any] = {"events": len(events), "last_seq": cut_at, "head": events[-1]["hash"]}
    signed_header = {k: v for k, v in header.items() if k != "type"}
    footer["signature"] = base64.b64encode(carol.sign(export_message(signed_header, footer))).decode()
    forged = tmp_path / "cut.jsonl"
    forged.write_text("\n".join(json.dumps(x) for x in [header, *body, {"type": "footer", **footer}]) + "\n")

    result = vault("audit", "verify", "--export", str(forged), "--json")
    assert result.code == 6 or "pin" not in result.json()["anchored_by"], (
        f"a cut export was accepted as anchored by the pin: {result.out}"
    )


# -- 7. regression: what is defended today and not played elsewhere ------------------------------


def test_auditor_cannot_be_made_a_holder_by_the_log(vault: Govern) -> None:
    """An admin asked to grant an auditor is refused (exit 4) and nothing reaches the log."""
    vault.enrol("audra", role="auditor")
    refused(vault("access", "grant", "x-acme", "audra", "--reason", "x"), code=4)
    vault.ok("audit", "verify")


def test_grant_end_in_the_past_does_not_keep_access(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "short", "--for", "1h")
    vault.later(timedelta(hours=2))
    refused(vault("secret", "show", "x-acme", as_="bob"), code=4)
    assert CANARY_PASSWORD  # the canary is never printed (checked by refused via clean)
