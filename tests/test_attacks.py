"""The attack suite of issue 9: a database writer who knows no passphrase, on SQLite and PostgreSQL.

Each test plays one numbered attack with raw SQL and the public material in the database
(attack 1 and 8b also use a member's real keys, as an insider would), then asserts that
no ordinary command acts on the forged state (exit 6, nothing revealed, nothing wrapped)
and that ``audit verify`` exits 6 naming the first bad event. Signatures and each
client's pin decide who gets a key, never rows.
"""

import base64
import json
import re
import uuid
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern, Result, passphrase_of
from forge import (
    Forged,
    append_transaction,
    as_forged,
    cut_from,
    events_from,
    fingerprint_of,
    keys_of,
    openable_wraps,
    person_id,
    public_keys_data,
    reseal_version,
    restore,
    sealed_private,
    seq_of,
    snapshot,
    vault_id,
    wraps_to,
)
from sqlhelp import count, sql

from audit.export import export_message
from audit.state import enrolment_message
from vault import MINIMUM_PARAMS, PersonKeys, RecoveryKey

pytestmark = pytest.mark.tampers

ATTACKER_PASSWORD = "ATTACKER-chosen-pw-0b5e"
ATTACKER_PASSPHRASE = "the attacker's own passphrase"


def clean(result: Result, *secrets: str) -> Result:
    """No traceback, and none of ``secrets`` (the canary by default) anywhere in the output."""
    assert "Traceback" not in result.err, result.err
    for secret in secrets or (CANARY_PASSWORD,):
        assert secret not in result.out, result.out
        assert secret not in result.err, result.err
    return result


def refused(result: Result, *secrets: str, code: int = 6) -> Result:
    clean(result, *secrets)
    assert result.code == code, f"expected exit {code}, got {result.code}: {result.err}"
    return result


def names_event(result: Result, seq: int) -> None:
    assert re.search(rf"\bevent {seq}\b", result.err), f"expected 'event {seq}' in: {result.err}"


def fresh_client(tmp_path: Path, name: str = "fresh-client") -> dict[str, str]:
    """A client that has never seen this vault (no pin): it must verify from the genesis."""
    return {"GOVERN_STATE_DIR": str(tmp_path / name)}


def grant_bob(vault: Govern, *extra: str) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", *extra)


def current_number(db: str, slug: str = "x-acme", status: str = "current") -> int:
    value = sql(
        db,
        "SELECT v.number FROM credential_version v JOIN account a ON a.id = v.account_id"
        " WHERE a.slug = :s AND v.status = :st",
        s=slug,
        st=status,
    )[0][0]
    assert isinstance(value, int)
    return value


# -- 1. forged history that verifies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "seal_signer"),
    [
        ("alice", "bob"),  # the event says alice, the seal is honestly bob's
        ("alice", "alice"),  # the seal claims alice but is signed with bob's key
        ("bob", "bob"),  # honest about the actor, but bob has no right to change roles
    ],
)
def test_attack1_forged_history_signed_by_a_member_does_not_verify(
    vault: Govern, tmp_path: Path, actor: str, seal_signer: str
) -> None:
    bob = keys_of(vault.db, "bob")
    [forged] = append_transaction(
        vault.db,
        [Forged(actor=actor, action="staff.role_changed", subject="bob", data={"from": "member", "to": "admin"})],
        signer=seal_signer,
        key=bob.public.fingerprint,
        sign=bob.sign,
    )
    sql(vault.db, "UPDATE person SET role = 'admin' WHERE handle = 'bob'")  # the rows agree with the forgery

    for env in (None, fresh_client(tmp_path)):
        verified = refused(vault("audit", "verify", env=env))
        names_event(verified, forged.seq)

    shown = refused(vault("secret", "show", "x-acme", as_="bob"))
    assert shown.out == ""
    refused(vault("secret", "show", "x-acme", as_="bob", env=fresh_client(tmp_path, "bob-new-laptop")))
    assert wraps_to(vault.db, bob.public.fingerprint) == 0


def test_attack1_deleted_reveal_rechained_with_a_forged_enrolment_does_not_verify(
    vault: Govern, tmp_path: Path
) -> None:
    grant_bob(vault)
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD
    vault.ok("account", "add", "y-acme", "--platform", "x", "--handle", "@acme_y")  # a tail after the reveal
    reveal = seq_of(vault.db, "secret.revealed", "bob")
    tail = events_from(vault.db, reveal)
    assert tail[0].action == "secret.revealed"
    reveal_tx = tail[0].tx
    rest = [e for e in tail if e.tx != reveal_tx]
    assert rest, "the reveal must not be the last transaction"

    # Bob deletes his reveal and everything after it, introduces a fresh key for alice in a
    # forged enrolment, and re-chains alice's tail signed with it.
    cut_from(vault.db, reveal)
    fresh = PersonKeys.generate()
    fp = fresh.public.fingerprint
    enrolment = Forged(
        actor="alice",
        action="staff.enrolled",
        subject="alice",
        data={
            "public_keys": public_keys_data(fresh),
            "kdf": MINIMUM_PARAMS.to_dict(),
            "code_signature": base64.b64encode(fresh.sign(enrolment_message(vault_id(vault.db), "alice", fp))).decode(),
        },
    )
    [introduced] = append_transaction(vault.db, [enrolment], signer="alice", key=fp, sign=fresh.sign)
    assert introduced.seq == reveal
    for tx in dict.fromkeys(e.tx for e in rest):
        group = [as_forged(e) for e in rest if e.tx == tx]
        append_transaction(vault.db, group, signer="alice", key=fp, sign=fresh.sign, ts=rest[0].ts)
    assert not [e for e in events_from(vault.db, 1) if e.action == "secret.revealed" and e.actor == "bob"]

    names_event(refused(vault("audit", "verify", env=fresh_client(tmp_path))), introduced.seq)
    refused(vault("audit", "verify"))  # this client's pin also saw the original tail
    refused(vault("secret", "show", "x-acme", as_="bob"))
    refused(vault("secret", "show", "x-acme", as_="bob", env=fresh_client(tmp_path, "bob-new-laptop")))


# -- 2. admin by SQL, then real keys ----------------------------------------------------------------


def test_attack2_admin_by_sql_gets_no_wrap(vault: Govern, tmp_path: Path) -> None:
    bob_fp = fingerprint_of(vault.db, "bob")
    assert wraps_to(vault.db, bob_fp) == 0
    sql(vault.db, "UPDATE person SET role = 'admin' WHERE handle = 'bob'")

    write = refused(vault("account", "add", "y-acme", "--platform", "x", "--handle", "@acme_y"))
    assert "person bob" in write.err
    assert "admin" in write.err
    refused(vault("secret", "set", "x-acme", "--password-stdin", input="new-password-after-attack\n"))
    assert wraps_to(vault.db, bob_fp) == 0, "a role written by SQL got a wrap"
    assert count(vault.db, "account") == 1

    for env in (None, fresh_client(tmp_path)):
        shown = clean(vault("secret", "show", "x-acme", as_="bob", env=env))
        assert shown.code in (4, 6), shown.err
    assert openable_wraps(vault.db, keys_of(vault.db, "bob")) == []
    refused(vault("audit", "verify"))


@pytest.mark.parametrize("how", ["reopened", "inserted"])
def test_attack2_grant_by_sql_gets_no_wrap_at_rotation(vault: Govern, how: str) -> None:
    bob_fp = fingerprint_of(vault.db, "bob")
    if how == "reopened":
        grant_bob(vault)
        vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
        sql(vault.db, "UPDATE access_grant SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL")
    else:
        sql(
            vault.db,
            "INSERT INTO access_grant (account_id, person_id, reason, granted_by, starts_at)"
            " SELECT a.id, p.id, 'sneaky', 'alice', CURRENT_TIMESTAMP FROM account a, person p"
            " WHERE a.slug = 'x-acme' AND p.handle = 'bob'",
        )
    before = wraps_to(vault.db, bob_fp)
    assert before == 0

    rotation = refused(vault("rotation", "start", "x-acme"))
    assert "grant" in rotation.err
    assert wraps_to(vault.db, bob_fp) == 0, "a grant written by SQL got a wrap at the rotation"
    assert count(vault.db, "rotation") == 0
    shown = clean(vault("secret", "show", "x-acme", as_="bob"))
    assert shown.code in (4, 6), shown.err
    assert openable_wraps(vault.db, keys_of(vault.db, "bob")) == []
    refused(vault("audit", "verify"))


# -- 3. key substitution ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["recovery", "person-key", "person-key-and-fingerprint"])
def test_attack3_substituted_public_key_gets_nothing(vault: Govern, target: str) -> None:
    attacker = PersonKeys.generate()
    grant_bob(vault)
    wraps_before = count(vault.db, "key_wrap")
    if target == "recovery":
        attacker_fp = RecoveryKey.fingerprint_of(attacker.public.x25519)
        sql(
            vault.db,
            "UPDATE vault SET recovery_public = :p, recovery_fingerprint = :f",
            p=attacker.public.x25519,
            f=attacker_fp,
        )
    else:
        bob_id = person_id(vault.db, "bob")
        ed25519 = sql(vault.db, "SELECT ed25519_public FROM person_key WHERE person_id = :p", p=bob_id)[0][0]
        attacker_fp = fingerprint_of(vault.db, "bob")
        if target == "person-key-and-fingerprint":
            from vault import PublicKeys

            assert isinstance(ed25519, bytes)
            attacker_fp = PublicKeys(x25519=attacker.public.x25519, ed25519=ed25519).fingerprint
        sql(
            vault.db,
            "UPDATE person_key SET x25519_public = :x, fingerprint = :f WHERE person_id = :p",
            x=attacker.public.x25519,
            f=attacker_fp,
            p=bob_id,
        )
    attacker_wraps = wraps_to(vault.db, attacker_fp)

    refused(vault("secret", "set", "x-acme", "--password-stdin", input="new-password-after-attack\n"))
    refused(vault("rotation", "start", "x-acme"))
    refused(vault("access", "grant", "x-acme", "alice", "--reason", "admin grant"))
    assert count(vault.db, "key_wrap") == wraps_before, "something was wrapped after the substitution"
    assert wraps_to(vault.db, attacker_fp) == attacker_wraps
    assert openable_wraps(vault.db, attacker) == [], "the attacker's key opens a wrap"
    assert count(vault.db, "rotation") == 0

    clean(vault("doctor"))  # doctor may stay 0; it must not crash
    refused(vault("audit", "verify"))


# -- 4. attacker-chosen passwords -------------------------------------------------------------------


def test_attack4_attacker_sealed_password_is_never_shown(vault: Govern, tmp_path: Path) -> None:
    grant_bob(vault)
    reseal_version(vault.db, "x-acme", current_number(vault.db), ATTACKER_PASSWORD, ["alice", "bob"])

    for handle in ("bob", "alice"):
        for env in (None, fresh_client(tmp_path, f"{handle}-new-laptop")):
            shown = refused(vault("secret", "show", "x-acme", as_=handle, env=env), CANARY_PASSWORD, ATTACKER_PASSWORD)
            assert shown.out == ""
    refused(vault("rotation", "start", "x-acme"), ATTACKER_PASSWORD)  # would copy the attacker's fields on
    refused(vault("audit", "verify"), ATTACKER_PASSWORD)


def test_attack4_attacker_sealed_pending_password_is_never_shown(vault: Govern) -> None:
    grant_bob(vault)
    vault.ok("rotation", "start", "x-acme")
    pending = current_number(vault.db, status="pending")
    reseal_version(vault.db, "x-acme", pending, ATTACKER_PASSWORD, ["alice", "bob"])

    for handle in ("alice", "bob"):
        shown = refused(vault("secret", "show", "x-acme", "--pending", as_=handle), ATTACKER_PASSWORD)
        assert shown.out == ""
    refused(vault("rotation", "confirm", "x-acme"), ATTACKER_PASSWORD)
    assert current_number(vault.db, status="pending") == pending, "the forged version was confirmed"
    refused(vault("audit", "verify"), ATTACKER_PASSWORD)


def test_attack4_substituted_wrap_alone_is_caught_by_the_key_check_value(vault: Govern) -> None:
    """Only bob's wrap is replaced (the sealed fields still match their commitment)."""
    grant_bob(vault)
    number = current_number(vault.db)
    original = sql(
        vault.db,
        "SELECT sf.id, sf.ciphertext FROM sealed_field sf JOIN credential_version v ON v.id = sf.version_id"
        " WHERE v.number = :n",
        n=number,
    )
    reseal_version(vault.db, "x-acme", number, ATTACKER_PASSWORD, ["bob"])
    for field_id, ciphertext in original:  # put the committed ciphertexts back
        sql(vault.db, "UPDATE sealed_field SET ciphertext = :c WHERE id = :i", c=ciphertext, i=field_id)
    shown = refused(vault("secret", "show", "x-acme", as_="bob"), CANARY_PASSWORD, ATTACKER_PASSWORD)
    assert shown.out == ""


# -- 5. silent state edits --------------------------------------------------------------------------


def test_attack5_deleted_exposures_fail_the_rotation_check(vault: Govern) -> None:
    grant_bob(vault)
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    assert count(vault.db, "credential_exposure") > 0
    assert clean(vault("rotation", "status", "--check")).code == 7

    sql(vault.db, "DELETE FROM credential_exposure")
    checked = refused(vault("rotation", "status", "--check"))
    assert "exposure" in checked.err
    refused(vault("audit", "verify"))


def test_attack5_steps_marked_done_fail_the_offboarding_check(vault: Govern) -> None:
    grant_bob(vault)
    vault.ok("offboard", "start", "bob", "--reason", "left")
    assert clean(vault("offboard", "status", "--check")).code in (0, 7)
    open_steps = sql(vault.db, "SELECT COUNT(*) FROM offboard_step WHERE status = 'open'")[0][0]
    assert isinstance(open_steps, int)
    assert open_steps > 0

    sql(
        vault.db,
        "UPDATE offboard_step SET status = 'done', closed_by = 'alice', closed_at = CURRENT_TIMESTAMP"
        " WHERE status = 'open'",
    )
    checked = refused(vault("offboard", "status", "--check"))
    assert "offboarding step" in checked.err
    refused(vault("rotation", "status", "--check"))
    refused(vault("audit", "verify"))


def test_attack5_grant_end_removed_is_refused(vault: Govern) -> None:
    grant_bob(vault, "--for", "1h")
    sql(vault.db, "UPDATE access_grant SET ends_at = NULL")
    shown = refused(vault("secret", "show", "x-acme", as_="bob"))
    assert "grant 1" in shown.err
    assert "end" in shown.err
    refused(vault("totp", "x-acme", as_="bob"))
    refused(vault("audit", "verify"))


def test_attack5_raised_cap_is_refused(vault: Govern) -> None:
    sql(vault.db, "UPDATE account SET max_holders = 100")
    granted = refused(vault("access", "grant", "x-acme", "bob", "--reason", "runs X"))
    assert "account x-acme" in granted.err
    assert "max holders" in granted.err
    assert count(vault.db, "access_grant") == 0
    assert wraps_to(vault.db, fingerprint_of(vault.db, "bob")) == 0
    refused(vault("audit", "verify"))


# -- 6. forged enrolment of an invited admin --------------------------------------------------------


def test_attack6_forged_enrolment_of_an_invited_admin(vault: Govern, tmp_path: Path) -> None:
    code = vault.ok("staff", "add", "carol", "--name", "Carol", "--role", "admin", "--json").json()["enrolment_code"]
    wraps_before = count(vault.db, "key_wrap")

    # The attacker never sees the code: they enrol "carol" with their own keys.
    forged = PersonKeys.generate()
    fp = forged.public.fingerprint
    carol = person_id(vault.db, "carol")
    sql(
        vault.db,
        "INSERT INTO person_key (person_id, fingerprint, x25519_public, ed25519_public, sealed_private, created_at,"
        " active) VALUES (:p, :f, :x, :e, :s, CURRENT_TIMESTAMP, :a)",
        p=carol,
        f=fp,
        x=forged.public.x25519,
        e=forged.public.ed25519,
        s=sealed_private(forged, ATTACKER_PASSPHRASE),
        a=True,
    )
    sql(vault.db, "UPDATE person SET status = 'active' WHERE id = :p", p=carol)
    sql(vault.db, "UPDATE enrolment SET used_at = CURRENT_TIMESTAMP WHERE person_id = :p", p=carol)
    signature = forged.sign(enrolment_message(vault_id(vault.db), "carol", fp))  # not the code's key
    [enrolled] = append_transaction(
        vault.db,
        [
            Forged(
                actor="carol",
                action="staff.enrolled",
                subject="carol",
                data={
                    "public_keys": public_keys_data(forged),
                    "kdf": MINIMUM_PARAMS.to_dict(),
                    "code_signature": base64.b64encode(signature).decode(),
                },
            )
        ],
        signer="carol",
        key=fp,
        sign=forged.sign,
    )

    for command in (("secret", "show", "x-acme"), ("access", "request", "x-acme", "--reason", "hi")):
        for env in (None, fresh_client(tmp_path, "attacker-laptop")):
            refused(vault(*command, as_="carol", passphrase=ATTACKER_PASSPHRASE, env=env))
    names_event(refused(vault("audit", "verify")), enrolled.seq)
    names_event(refused(vault("audit", "verify", env=fresh_client(tmp_path))), enrolled.seq)

    # The next admin write must not make the forger a custodian.
    refused(vault("account", "add", "y-acme", "--platform", "x", "--handle", "@acme_y"))
    refused(vault("secret", "set", "x-acme", "--password-stdin", input="new-password-after-attack\n"))
    assert wraps_to(vault.db, fp) == 0
    assert count(vault.db, "key_wrap") == wraps_before
    assert openable_wraps(vault.db, forged) == []

    # The real carol, with her real code, is refused while the forged rows stand (denial of
    # service is what a database writer can still do): her client will not enrol into a log
    # that does not verify, so she never trusts the forger's state.
    real = refused(vault("staff", "enroll", "carol", "--code", code, as_="carol", env=fresh_client(tmp_path, "carol")))
    assert real.code == 6
    # Once the forgery is removed, her code still works: nothing the attacker did consumed it.
    cut_from(vault.db, enrolled.seq)
    sql(vault.db, "DELETE FROM person_key WHERE person_id = :p", p=carol)
    sql(vault.db, "UPDATE person SET status = 'invited' WHERE id = :p", p=carol)
    sql(vault.db, "UPDATE enrolment SET used_at = NULL WHERE person_id = :p", p=carol)
    vault.ok("staff", "enroll", "carol", "--code", code, as_="carol", env=fresh_client(tmp_path, "carol"))
    vault.ok("account", "add", "y-acme", "--platform", "x", "--handle", "@acme_y")  # custodian wraps for carol
    assert vault.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    assert wraps_to(vault.db, fp) == 0
    vault.ok("audit", "verify")


# -- 7. rollback ------------------------------------------------------------------------------------


def test_attack7_rollback_below_the_pin_is_refused(vault: Govern, tmp_path: Path) -> None:
    bob_client = fresh_client(tmp_path, "bob-client")
    grant_bob(vault)
    assert vault.ok("secret", "show", "x-acme", as_="bob", env=bob_client).out.strip() == CANARY_PASSWORD
    backup = snapshot(vault.db)  # taken while bob still held x-acme

    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    assert clean(vault("secret", "show", "x-acme", as_="bob", env=bob_client)).code == 4  # bob's client sees it
    assert clean(vault("rotation", "status", "--check")).code == 7  # alice's client too (exposed)
    restore(vault.db, backup)

    shown = refused(vault("secret", "show", "x-acme", as_="bob", env=bob_client))
    assert shown.out == ""
    refused(vault("totp", "x-acme", as_="bob", env=bob_client))
    refused(vault("rotation", "status", "--check"))
    refused(vault("audit", "verify"))

    # A deliberate re-pin after a legitimate restore is recorded in the log.
    vault.ok("pin", "reset", "--reason", "restore ticket 42")
    repins = vault.ok("audit", "log", "--action", "client.", "--json").json()
    assert [e["action"] for e in repins] == ["client.repinned"]
    assert repins[0]["reason"] == "restore ticket 42"
    assert repins[0]["actor"] == "alice"
    after = vault.ok("pin", "show", "--json").json()
    assert after["seq"] == count(vault.db, "audit_event")
    vault.ok("audit", "verify")
    # Bob's client still refuses: it saw the revocation, and only he can re-pin it deliberately.
    refused(vault("secret", "show", "x-acme", as_="bob", env=bob_client))


def test_attack7_ordinary_commands_advance_the_pin(vault: Govern, tmp_path: Path) -> None:
    """What makes a rollback visible: each verifying command moves this client's pin to the head it verified."""
    bob_client = fresh_client(tmp_path, "bob-client")
    grant_bob(vault)
    vault.ok("secret", "show", "x-acme", as_="bob", env=bob_client)
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    pins = [vault.ok("pin", "show", "--json").json()]
    # The refusal is committed (secret.denied, signed by bob): it moves bob's pin past itself.
    assert clean(vault("secret", "show", "x-acme", as_="bob", env=bob_client)).code == 4
    pins.append(vault.ok("pin", "show", "--json", env=bob_client).json())
    for pin in pins:
        assert pin["pinned"] is True
        assert pin["seq"] == pin["log_seq"], f"the pin stayed at event {pin['seq']} of {pin['log_seq']}"


def test_attack7_rollback_below_a_pin_set_by_audit_verify_is_refused(vault: Govern, tmp_path: Path) -> None:
    """The same rollback, with both clients' pins moved past the revocation by ``audit verify``.

    Nothing that signs (an export, a checkpoint) may vouch for the rolled-back log either.
    """
    bob_client = fresh_client(tmp_path, "bob-client")
    grant_bob(vault)
    vault.ok("secret", "show", "x-acme", as_="bob", env=bob_client)
    backup = snapshot(vault.db)
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    for env in (None, bob_client):
        vault.ok("audit", "verify", as_="bob" if env else "alice", env=env)
    restore(vault.db, backup)

    refused(vault("secret", "show", "x-acme", as_="bob", env=bob_client))
    refused(vault("secret", "show", "x-acme"))
    refused(vault("rotation", "status", "--check"))
    refused(vault("audit", "verify"))
    signed = {
        "export": vault("audit", "export", "--format", "jsonl", "--out", str(tmp_path / "rolled-back.jsonl")),
        "checkpoint": vault("audit", "checkpoint", "--out", str(tmp_path / "rolled-back-checkpoint.json")),
    }
    vouched = {name: result.err.strip() for name, result in signed.items() if clean(result).code != 6}
    assert not vouched, f"signed statements of a log rolled back below this client's pin: {vouched}"


# -- 8. offline exports -----------------------------------------------------------------------------


def _export(vault: Govern, tmp_path: Path, tmp_name: str = "evidence.jsonl") -> list[dict[str, object]]:
    out = tmp_path / tmp_name
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(out))
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _cut(lines: list[dict[str, object]], transactions: int) -> list[dict[str, object]]:
    """The header and the first ``transactions`` transactions, with a footer rewritten to match."""
    kept: list[dict[str, object]] = [lines[0]]
    seals = 0
    for line in lines[1:]:
        if seals == transactions:
            break
        kept.append(line)
        seals += line["type"] == "seal"
    events = [line for line in kept if line["type"] == "event"]
    footer = {**lines[-1], "events": len(events), "last_seq": events[-1]["seq"], "head": events[-1]["hash"]}
    return [*kept, footer]


def test_attack8_cut_or_relabelled_exports_do_not_verify(vault: Govern, tmp_path: Path) -> None:
    grant_bob(vault)
    vault.ok("secret", "show", "x-acme", as_="bob")
    checkpoint = tmp_path / "checkpoint.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    lines = _export(vault, tmp_path)
    assert lines[0]["type"] == "header"
    assert lines[-1]["type"] == "footer"
    offline = fresh_client(tmp_path, "auditor-laptop")

    original = _write(tmp_path / "original.jsonl", lines)
    clean(vault("audit", "verify", "--export", str(original), env=offline))
    assert vault("audit", "verify", "--export", str(original), env=offline).code == 0
    assert vault("audit", "verify", "--export", str(original), "--checkpoint", str(checkpoint)).code == 0

    cut = _write(tmp_path / "cut.jsonl", _cut(lines, 3))
    refused(vault("audit", "verify", "--export", str(cut), env=offline))
    refused(vault("audit", "verify", "--export", str(cut)))  # this client's pin saw more
    refused(vault("audit", "verify", "--export", str(cut), "--checkpoint", str(checkpoint), env=offline))

    other_vault = [{**lines[0], "vault_id": str(uuid.uuid4())}, *lines[1:]]
    refused(vault("audit", "verify", "--export", str(_write(tmp_path / "other.jsonl", other_vault)), env=offline))

    unsigned_footer = {k: v for k, v in lines[-1].items() if k != "signature"}
    unsigned = _write(tmp_path / "unsigned.jsonl", [*lines[:-1], unsigned_footer])
    refused(vault("audit", "verify", "--export", str(unsigned), env=offline))

    stranger = PersonKeys.generate()
    forged_footer = {
        **unsigned_footer,
        "signature": base64.b64encode(stranger.sign(export_message(lines[0], unsigned_footer))).decode(),
    }
    forged = _write(tmp_path / "forged.jsonl", [*lines[:-1], forged_footer])
    refused(vault("audit", "verify", "--export", str(forged), env=offline))


def test_attack8_cut_export_re_signed_by_a_member_does_not_verify(vault: Govern, tmp_path: Path) -> None:
    """Bob (a member) can read every audit row from the database and sign with his own key; a
    member can never make a complete export, so a "complete" export signed by him is forged."""
    grant_bob(vault)
    vault.ok("secret", "show", "x-acme", as_="bob")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    lines = _cut(_export(vault, tmp_path), 4)
    bob = keys_of(vault.db, "bob")
    header = {**lines[0], "exported_by": "bob", "key": bob.public.fingerprint}
    footer = {k: v for k, v in lines[-1].items() if k != "signature"}
    footer["signature"] = base64.b64encode(bob.sign(export_message(header, footer))).decode()
    resigned = _write(tmp_path / "resigned.jsonl", [header, *lines[1:-1], footer])
    # A member's own export is filtered, never complete: it is refused as the log.
    bobs = tmp_path / "bob.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(bobs), as_="bob")
    filtered = refused(vault("audit", "verify", "--export", str(bobs), env=fresh_client(tmp_path, "auditor-laptop-2")))
    assert "filtered" in filtered.err
    # So a "complete" export signed by a member is a forgery, even with a valid signature.
    refused(vault("audit", "verify", "--export", str(resigned), env=fresh_client(tmp_path, "auditor-laptop")))


def test_attack_suite_plays_on_an_untampered_vault_too(vault: Govern, tmp_path: Path) -> None:
    """The helpers themselves forge nothing by accident: a snapshot restored unchanged verifies."""
    restore(vault.db, snapshot(vault.db))
    vault.ok("audit", "verify")
    vault.ok("audit", "verify", env=fresh_client(tmp_path))
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    assert passphrase_of("bob") != ATTACKER_PASSPHRASE
