"""Trust roots outside the database (issue 19, items 4 and 5): the vault fingerprint, first use,
``pin trust``, ``--expect``, checkpoints that anchor only when an admin or auditor signed them,
and the local custody of the pin (its MAC, its folder).

Each attack is played for real: a database put back from a backup, a look-alike vault made by
``govern init`` itself, a state file edited by hand, a folder of another user.
"""

import base64
import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern
from forge import fingerprint_of, keys_of, refused, restore, snapshot, vault_id, wraps_to
from sqlhelp import sql

from audit.checkpoint import make_checkpoint
from govern.settings import state_dir

pytestmark = pytest.mark.tampers

FINGERPRINT = re.compile(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}")


def client(tmp_path: Path, name: str) -> dict[str, str]:
    """Another client (a new laptop, an auditor's machine): its own state folder, no pin."""
    return {"GOVERN_STATE_DIR": str(tmp_path / name)}


def fingerprint(g: Govern, env: dict[str, str] | None = None) -> str:
    value = g.ok("pin", "show", "--json", env=env).json()["fingerprint"]
    assert isinstance(value, str)
    return value


def pin_file(g: Govern) -> Path:
    return state_dir() / "pins" / f"{vault_id(g.db)}.json"


def grant_bob(g: Govern) -> None:
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")


# -- the fingerprint ---------------------------------------------------------------------------------


def test_the_vault_fingerprint_is_the_tagged_sha256_of_the_genesis_and_the_recovery_key(govern: Govern) -> None:
    made = govern.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--json", as_="alice").json()
    shown = govern.ok("pin", "show", "--json").json()
    digest = hashlib.sha256(
        b"govern-vault-fingerprint/v1\n" + bytes.fromhex(shown["genesis"]) + bytes.fromhex(made["recovery_fingerprint"])
    ).digest()
    expected = base64.b32encode(digest[:20]).decode("ascii")
    assert made["fingerprint"].replace("-", "") == expected
    assert FINGERPRINT.fullmatch(made["fingerprint"])
    assert made["key_fingerprint"] != made["fingerprint"]
    assert (shown["fingerprint"], shown["confirmed"], shown["status"]) == (made["fingerprint"], True, "ok")
    assert govern.ok("whoami", "--json").json()["fingerprint"] == made["fingerprint"]
    verified = govern.ok("audit", "verify", "--json")
    assert verified.json()["fingerprint"] == made["fingerprint"]
    assert govern("doctor", "--json").json()["trust"]["fingerprint"] == made["fingerprint"]
    assert made["fingerprint"] in govern.ok("audit", "verify").err
    # Typed as read aloud: any case, spaces or dashes.
    govern.ok("audit", "verify", "--expect", made["fingerprint"].lower().replace("-", " "))
    assert refused(govern("audit", "verify", "--expect", "A" * 32)).err.count(made["fingerprint"]) == 1
    refused(govern("audit", "verify", "--expect", "not a fingerprint"), code=2)


def test_init_prints_the_vault_fingerprint(govern: Govern) -> None:
    made = govern.init()
    assert re.search(r"vault fingerprint " + FINGERPRINT.pattern, made.err), made.err


# -- first use ---------------------------------------------------------------------------------------


def test_attack_the_admins_new_laptop_on_a_database_put_back_before_a_revocation_wraps_nothing_to_the_revoked_holder(
    vault: Govern, tmp_path: Path
) -> None:
    real = fingerprint(vault)
    grant_bob(vault)
    backup = snapshot(vault.db)  # bob still holds x-acme
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left the company")
    checkpoint = tmp_path / "after-revocation.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    restore(vault.db, backup)  # the database writer puts the revocation out of the log

    laptop = client(tmp_path, "new-laptop")
    bobs = fingerprint_of(vault.db, "bob")
    before = wraps_to(vault.db, bobs)
    tried = refused(
        vault("secret", "set", "x-acme", "--password-stdin", input="a-brand-new-password-1\n", env=laptop), code=4
    )
    assert "first use" in tried.err
    assert real in tried.err, "the fingerprint to compare is said"
    assert "pin trust --fingerprint" in tried.err
    refused(vault("rotation", "start", "x-acme", env=laptop), code=4)
    refused(vault("access", "grant", "x-acme", "carol", "--reason", "x", env=laptop), code=3)
    assert wraps_to(vault.db, bobs) == before, "no new key was wrapped to the revoked holder"

    # The fingerprint names the vault, not its length: the same genesis after a rollback. The
    # checkpoint the admin kept outside the vault catches the rollback, and nothing is confirmed.
    behind = refused(vault("pin", "trust", "--fingerprint", real, "--checkpoint", str(checkpoint), env=laptop))
    assert "rolled back" in behind.err
    refused(vault("secret", "set", "x-acme", "--password-stdin", input="a-brand-new-password-1\n", env=laptop), code=4)
    assert wraps_to(vault.db, bobs) == before


def test_attack_a_log_rewritten_past_a_checkpoint_is_refused_by_pin_trust(vault: Govern, tmp_path: Path) -> None:
    backup = snapshot(vault.db)
    grant_bob(vault)
    checkpoint = tmp_path / "cp.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    restore(vault.db, backup)
    # Other events where the checkpointed ones were (a client that never saw them writes them).
    elsewhere = client(tmp_path, "elsewhere")
    for slug in ("ig-acme", "li-acme", "tt-acme"):
        vault.ok("account", "add", slug, "--platform", "instagram", "--handle", "@acme", env=elsewhere)
    laptop = client(tmp_path, "new-laptop")
    diverged = refused(
        vault("pin", "trust", "--fingerprint", fingerprint(vault, laptop), "--checkpoint", str(checkpoint), env=laptop)
    )
    assert "diverges" in diverged.err


def test_a_fingerprint_given_out_of_band_confirms_a_new_client(vault: Govern, tmp_path: Path) -> None:
    real = fingerprint(vault)
    checkpoint = tmp_path / "cp.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    laptop = client(tmp_path, "new-laptop")
    shown = vault.ok("secret", "show", "x-acme", env=laptop)  # reading for oneself is fine
    assert shown.out.strip() == CANARY_PASSWORD
    assert "first use" in shown.err
    assert real in shown.err
    trusted = vault.ok("pin", "trust", "--fingerprint", real, "--checkpoint", str(checkpoint), "--json", env=laptop)
    assert trusted.json()["fingerprint"] == real
    assert trusted.json()["confirmed_for"] == "alice"
    grant_bob(vault)
    assert vault.ok("pin", "show", "--json", env=laptop).json()["confirmed"] is True
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "done", env=laptop)
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="a-brand-new-password-1\n", env=laptop)
    assert "first use" not in vault.ok("secret", "show", "x-acme", env=laptop).err


def test_attack_a_mismatching_fingerprint_pins_nothing(vault: Govern, tmp_path: Path) -> None:
    laptop = client(tmp_path, "new-laptop")
    real = fingerprint(vault)
    other = ("B" if real[0] != "B" else "C") + real[1:]
    wrong = refused(vault("pin", "trust", "--fingerprint", other, env=laptop))
    assert real in wrong.err
    assert other in wrong.err
    assert not (tmp_path / "new-laptop" / "pins" / f"{vault_id(vault.db)}.json").exists(), "nothing pinned"
    refused(vault("pin", "trust", "--fingerprint", "0000", env=laptop), code=2)


def test_an_unconfirmed_client_signs_no_offboarding_plan(vault: Govern, tmp_path: Path) -> None:
    laptop = client(tmp_path, "new-laptop")
    plan = refused(vault("offboard", "start", "bob", "--reason", "left", env=laptop), code=4)
    assert "signs no offboarding plan" in plan.err
    assert sql(vault.db, "SELECT COUNT(*) FROM offboard_case")[0][0] == 0
    vault.ok("pin", "trust", "--fingerprint", fingerprint(vault), env=laptop)
    vault.ok("offboard", "start", "bob", "--reason", "left", env=laptop)


def test_enrolment_confirms_the_fingerprint(vault: Govern, tmp_path: Path) -> None:
    carols = client(tmp_path, "carol-laptop")
    code = vault.ok("staff", "add", "carol", "--name", "Carol", "--role", "admin", "--json").json()["enrolment_code"]
    vault.ok("staff", "enroll", "carol", "--code", code, as_="carol", env=carols)
    shown = vault.ok("pin", "show", "--json", as_="carol", env=carols).json()
    assert (shown["confirmed"], shown["fingerprint"]) == (True, fingerprint(vault))
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")  # alice: custodian wraps
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", as_="carol", env=carols)


# -- --expect and checkpoints ------------------------------------------------------------------------


def _lookalike_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real: Govern) -> Path:
    """The attacker's own vault: same id, org and handles, made by 'govern init' on another client."""
    fake = Govern(f"sqlite:///{tmp_path / 'fake' / 'vault.db'}", monkeypatch)
    attacker = client(tmp_path, "attacker")
    with monkeypatch.context() as patch:
        patch.setattr("govern.services.vaultinit.uuid.uuid4", lambda: uuid.UUID(vault_id(real.db)))
        fake.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice Admin", as_="alice", env=attacker)
    code = fake.ok("staff", "add", "bob", "--name", "Bob", "--json", env=attacker).json()["enrolment_code"]
    fake.ok("staff", "enroll", "bob", "--code", code, as_="bob", env=attacker)
    fake.ok("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", env=attacker)
    assert vault_id(fake.db) == vault_id(real.db)
    pack = tmp_path / "lookalike.zip"
    fake.ok("audit", "evidence", "--from", "2000-01-01", "--to", "now", "--out", str(pack), env=attacker)
    return pack


def test_attack_a_lookalike_vaults_evidence_is_refused_with_expect(
    vault: Govern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fingerprint(vault)
    pack = _lookalike_pack(tmp_path, monkeypatch, vault)
    verifier = client(tmp_path, "auditors-machine")  # no pin of anything
    shown = vault.ok("audit", "verify", "--evidence", str(pack), "--json", env=verifier).json()
    assert shown["fingerprint"] != real, "the verifier prints the look-alike's own fingerprint"
    told = refused(vault("audit", "verify", "--evidence", str(pack), "--expect", real, env=verifier))
    assert shown["fingerprint"] in told.err
    assert real in told.err
    refused(vault("audit", "verify", "--export", str(pack), "--expect", real, env=verifier))  # not even an export


def test_a_real_pack_verifies_with_its_expected_fingerprint(vault: Govern, tmp_path: Path) -> None:
    pack = tmp_path / "real.zip"
    vault.ok("audit", "evidence", "--from", "2000-01-01", "--to", "now", "--out", str(pack))
    verifier = client(tmp_path, "auditors-machine")
    real = fingerprint(vault)
    ok = vault.ok("audit", "verify", "--evidence", str(pack), "--expect", real, "--json", env=verifier).json()
    assert (ok["fingerprint"], ok["expected"]) == (real, "matches")
    export = tmp_path / "events.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(export))
    text = vault.ok("audit", "verify", "--export", str(export), "--expect", real, env=verifier)
    assert real in text.out


def test_attack_a_checkpoint_a_member_signed_does_not_anchor_an_export(vault: Govern, tmp_path: Path) -> None:
    export = tmp_path / "events.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(export))
    lines = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    footer = lines[-1]
    bob = keys_of(vault.db, "bob")
    forged = make_checkpoint(
        vault_id=vault_id(vault.db),
        seq=footer["last_seq"],
        head=footer["head"],
        ts="2030-01-01T00:00:00Z",
        signer="bob",
        key=bob.public.fingerprint,
        sign=bob.sign,
    )
    checkpoint = tmp_path / "by-bob.json"
    checkpoint.write_text(json.dumps(forged), encoding="utf-8")
    verifier = client(tmp_path, "auditors-machine")
    offline = refused(vault("audit", "verify", "--export", str(export), "--checkpoint", str(checkpoint), env=verifier))
    assert "not an admin or auditor" in offline.err
    refused(vault("audit", "verify", "--checkpoint", str(checkpoint)))
    laptop = client(tmp_path, "new-laptop")
    refused(vault("pin", "trust", "--fingerprint", fingerprint(vault), "--checkpoint", str(checkpoint), env=laptop))


# -- local custody -----------------------------------------------------------------------------------


def test_attack_planted_state_mallory_is_admin_in_the_pin_gets_no_key(vault: Govern) -> None:
    vault.enrol("mallory")
    vault.ok("secret", "show", "x-acme")  # alice's client: pin and cache MACed for alice
    mallorys = fingerprint_of(vault.db, "mallory")
    path = pin_file(vault)

    def plant() -> None:
        body = json.loads(path.read_text(encoding="utf-8"))
        person = body["state"]["people"]["mallory"]
        person["role"] = "admin"
        person["admin_periods"] = [[body["state"]["last_ts"], None]]
        path.write_text(json.dumps(body), encoding="utf-8")

    plant()
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    vault.ok("secret", "set", "ig-acme", "--password-stdin", input="another-password-1\n")
    assert wraps_to(vault.db, mallorys) == 0, "the planted state decided nothing"
    assert json.loads(path.read_text(encoding="utf-8"))["state"]["people"]["mallory"]["role"] == "member"

    # With the row made to agree by a database writer too: refused as unexplained, still no key.
    plant()
    sql(vault.db, "UPDATE person SET role = 'admin' WHERE handle = 'mallory'")
    refused(vault("secret", "set", "ig-acme", "--password-stdin", input="another-password-2\n"))
    assert wraps_to(vault.db, mallorys) == 0
    sql(vault.db, "UPDATE person SET role = 'member' WHERE handle = 'mallory'")


def test_attack_a_state_folder_owned_by_another_user_is_refused(vault: Govern, tmp_path: Path) -> None:
    theirs = tmp_path / "someone-elses"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    refused(vault("secret", "show", "x-acme", env={"GOVERN_STATE_DIR": str(theirs)}))
    shared = tmp_path / "group-writable"
    shared.mkdir()
    os.chmod(shared, 0o770)  # noqa: S103 (the attack: a folder others may write)
    told = refused(vault("pin", "show", env={"GOVERN_STATE_DIR": str(shared)}))
    assert "writable by other users" in told.err
    made = tmp_path / "made-by-govern"
    vault.ok("secret", "show", "x-acme", env={"GOVERN_STATE_DIR": str(made)})
    assert (made.stat().st_mode & 0o777, (made / "pins").stat().st_mode & 0o777) == (0o700, 0o700)


def test_pin_show_is_not_ok_after_a_restore_rewrote_what_it_pinned(vault: Govern) -> None:
    backup = snapshot(vault.db)
    grant_bob(vault)
    assert vault.ok("pin", "show", "--json").json()["status"] == "ok"
    restore(vault.db, backup)
    shown = refused(vault("pin", "show", "--json"))
    assert shown.json()["status"].startswith("refused")
