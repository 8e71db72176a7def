"""Pins and verified state: what each client keeps, and that incremental equals full verification.

The attacks themselves are played in test_attacks.py; these tests pin down the machinery.
"""

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern
from sqlalchemy import create_engine
from sqlmodel import Session

from audit.chain import verify_chain
from audit.state import LogState
from audit.stream import SealCursor, stream_events
from govern.settings import state_dir
from govern.trust import load_pin, unexplained_rows


def busy(g: Govern) -> None:
    g.enrol("carol", role="manager")
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "30d")
    g.ok("secret", "show", "x-acme", as_="bob")
    g.ok("rotation", "start", "x-acme", as_="bob")
    g.ok("rotation", "confirm", "x-acme", as_="bob")
    g.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    g.ok("staff", "set-role", "carol", "admin")
    g.ok("secret", "set", "x-acme", "--password-stdin", input="a-new-password-123\n")


def full_state(db_url: str) -> LogState:
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            return verify_chain(stream_events(session), SealCursor(session)).state
    finally:
        engine.dispose()


def vault_id(g: Govern) -> str:
    return str(g.ok("pin", "show", "--json").json()["vault_id"])


def test_the_pin_follows_every_command_and_equals_a_full_verification(vault: Govern) -> None:
    busy(vault)
    shown = vault.ok("pin", "show", "--json").json()
    pinned = load_pin(shown["vault_id"])
    assert pinned is not None
    assert shown["seq"] == shown["log_seq"] == pinned.seq, "an ordinary command moves the pin to the head"
    full = full_state(vault.db)
    assert pinned.to_json() == full.to_json(), "state verified incrementally, command by command, is the full state"
    assert LogState.from_json(json.loads(json.dumps(full.to_json()))).to_json() == full.to_json()
    engine = create_engine(vault.db)
    try:
        with Session(engine) as session:
            assert unexplained_rows(session, full) == []
    finally:
        engine.dispose()


def test_pins_are_private_files_outside_the_database(sqlite_govern: Govern) -> None:
    sqlite_govern.init()
    folder = state_dir() / "pins"
    files = sorted(p.name for p in folder.iterdir())
    assert any(name.endswith(".json") and name != "databases.json" for name in files)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not str(folder).startswith(str(Path(sqlite_govern.db.removeprefix("sqlite:///")).parent))


@pytest.mark.tampers
def test_a_vault_swapped_under_a_known_database_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client remembers which vault each database held; another vault there is refused."""
    path = tmp_path / "shared" / "vault.db"
    g = Govern(f"sqlite:///{path}", monkeypatch)
    g.init()
    g.account()
    os.rename(path, tmp_path / "original.db")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # Someone puts a vault of their own making at the same place (its own genesis and keys).
    other = Govern(f"sqlite:///{path}", monkeypatch)
    other.ok(
        "init",
        "--org",
        "Evil",
        "--admin",
        "alice",
        "--name",
        "Alice",
        as_="alice",
        env={"GOVERN_STATE_DIR": str(tmp_path / "attacker-client")},
    )
    verified = g("audit", "verify")
    assert verified.code == 6, "a scheduled audit verify must not quietly adopt the swapped vault"
    assert "swapped vault" in verified.err
    refused = g("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@a")
    assert refused.code == 6, refused.err
    assert "swapped vault" in refused.err


@pytest.mark.tampers
def test_an_enrolment_code_refuses_a_vault_with_another_genesis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code names the genesis of the vault the person was invited to: a look-alike is refused."""
    real = Govern(f"sqlite:///{tmp_path / 'real' / 'vault.db'}", monkeypatch)
    real.init()
    code = real.ok("staff", "add", "bob", "--name", "Bob", "--json").json()["enrolment_code"]
    fake = Govern(f"sqlite:///{tmp_path / 'fake' / 'vault.db'}", monkeypatch)
    fake.init()
    fake.ok("staff", "add", "bob", "--name", "Bob")
    bobs_machine = {"GOVERN_STATE_DIR": str(tmp_path / "bob-client")}
    refused = fake("staff", "enroll", "bob", "--code", code, as_="bob", env=bobs_machine)
    assert refused.code == 6, refused.err
    assert "not the vault you were invited to" in refused.err
    real.ok("staff", "enroll", "bob", "--code", code, as_="bob", env=bobs_machine)
    assert real.ok("whoami", "--json", as_="bob", env=bobs_machine).json()["status"] == "active"


@pytest.mark.tampers
def test_a_deliberate_re_pin_is_audited(vault: Govern) -> None:
    vault.ok("secret", "show", "x-acme")
    reset = vault.ok("pin", "reset", "--reason", "restored from the 03:00 backup", "--json").json()
    assert reset["pinned"] is True
    (event,) = [e for e in vault.ok("audit", "log", "--json").json() if e["action"] == "client.repinned"]
    assert event["actor"] == "alice"
    assert event["reason"] == "restored from the 03:00 backup"
    assert event["data"]["previous"]["seq"] > 0
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD


def test_doctor_reports_rows_the_log_does_not_explain(vault: Govern) -> None:
    healthy = vault("doctor", "--json").json()  # exit 7 here only for the tests' fast KDF
    assert not [p for p in healthy["problems"] if "log" in p]
    assert healthy["trust"]["verified"] is True
    assert healthy["trust"]["unexplained_rows"] == 0


@pytest.mark.tampers
def test_doctor_names_a_substituted_recovery_key(vault: Govern) -> None:
    from sqlhelp import sql

    sql(vault.db, "UPDATE vault SET recovery_public = :k", k=bytes(32))
    report = vault("doctor", "--json")
    problems = report.json()["problems"]
    assert any("recovery key" in p for p in problems), problems


def test_a_first_time_client_verifies_the_whole_log_and_pins_it(vault: Govern, tmp_path: Path) -> None:
    busy(vault)
    fresh = {"GOVERN_STATE_DIR": str(tmp_path / "new-laptop")}
    assert vault.ok("pin", "show", "--json", env=fresh).json()["pinned"] is False
    shown = vault.ok("secret", "show", "x-acme", env=fresh)
    assert shown.out.strip() == "a-new-password-123"
    pinned = vault.ok("pin", "show", "--json", env=fresh).json()
    assert pinned["pinned"] is True
    assert pinned["genesis"] == vault.ok("pin", "show", "--json").json()["genesis"]


def test_a_pin_whose_cached_state_is_unreadable_is_rebuilt_from_the_genesis(vault: Govern) -> None:
    """The anchor (genesis, seq, head) is what protects; the cached state may come from another version."""
    vault.ok("secret", "show", "x-acme")
    path = state_dir() / "pins" / f"{vault_id(vault)}.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    body["state"] = {"format": 0}
    path.write_text(json.dumps(body), encoding="utf-8")
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    rebuilt = json.loads(path.read_text(encoding="utf-8"))
    assert rebuilt["state"]["format"] != 0
    assert rebuilt["seq"] > body["seq"]


@pytest.mark.tampers
def test_a_vault_id_that_is_not_a_uuid_never_becomes_a_path(vault: Govern) -> None:
    from sqlhelp import sql

    sql(vault.db, "UPDATE vault SET id = '../../../../tmp/owned'")
    refused = vault("secret", "show", "x-acme")
    assert refused.code == 6, refused.err
    assert "not a UUID" in refused.err
    assert not Path("/tmp/owned.json").exists()
