"""Offboarding: one command takes everything away and forces every known secret to change."""

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, Govern, passphrase_of
from sqlalchemy import create_engine
from sqlhelp import count, sql
from sqlmodel import Session, col, select
from test_rotation import OTHER_URI

from govern.custody import wrap_aad
from govern.models import Account, DataKey, KeyWrap, Person, PersonKey, VaultMeta
from vault import IntegrityError, SealedKeyBlob, unwrap_key


def steps(g: Govern, handle: str = "bob") -> list[dict[str, object]]:
    result: list[dict[str, object]] = g.ok("offboard", "status", handle, "--json").json()["steps"]
    return result


def open_steps(g: Govern, handle: str = "bob") -> dict[int, str]:
    return {int(s["step"]): str(s["kind"]) for s in steps(g, handle) if s["status"] == "open"}  # type: ignore[call-overload]


@pytest.fixture
def office(vault: Govern, tmp_path: Path) -> Govern:
    """bob holds x-acme (with TOTP and recovery codes) and owns it; carol holds x-acme and ig-acme."""
    codes = tmp_path / "codes.txt"
    codes.write_text("1111-2222\n3333-4444\n")
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    vault.ok("secret", "set", "x-acme", "--recovery-codes-file", str(codes))
    vault.account("ig-acme", password="ig-password-1234")
    vault.enrol("carol")
    vault.ok("account", "set", "x-acme", "--owner", "bob")
    for who, slug in (("bob", "x-acme"), ("carol", "x-acme"), ("carol", "ig-acme")):
        vault.ok("access", "grant", slug, who, "--reason", "team")
    vault.ok("access", "request", "ig-acme", "--reason", "cover", as_="bob")
    return vault


def test_offboarding_end_to_end(office: Govern, tmp_path: Path) -> None:
    g = office
    before = count(g.db, "audit_event")
    plan = g.ok("offboard", "start", "bob", "--reason", "left the company", "--dry-run", "--json").json()
    assert count(g.db, "audit_event") == before, "a dry run changes nothing"
    kinds = [s["kind"] for s in plan["steps"]]
    assert kinds[:4] == ["suspend", "cancel-requests", "reassign-owner", "remove-access"]
    assert {"rotate-password", "reenrol-totp", "regenerate-recovery-codes", "manual"} <= set(kinds)
    case = g.ok("offboard", "start", "bob", "--reason", "left the company", "--json").json()
    assert case["status"] == "open"
    assert g("whoami", as_="bob").code == 5
    assert g("secret", "show", "x-acme", as_="bob").code == 5
    assert g.ok("account", "show", "x-acme", "--json").json()["owner"] == "alice"
    assert [r["status"] for r in g.ok("access", "requests", "--json").json()] == ["cancelled"]
    # Offboarding bob never removes carol's access.
    assert g.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    assert g.ok("secret", "show", "ig-acme", as_="carol").out.strip() == "ig-password-1234"
    waiting = open_steps(g)
    assert sorted(set(waiting.values())) == ["manual", "reenrol-totp", "regenerate-recovery-codes", "rotate-password"]
    status = {r["account"]: r for r in g.ok("rotation", "status", "--json").json()}
    assert sorted(e["kind"] for e in status["x-acme"]["exposed_to"]) == ["password", "recovery-codes", "totp"]
    assert status["ig-acme"]["state"] == "ok", "bob never held ig-acme"
    # Follow-up steps close themselves as the secrets change.
    g.ok("rotation", "start", "x-acme", as_="carol")
    g.ok("rotation", "confirm", "x-acme", as_="carol")
    g.ok("secret", "set", "x-acme", "--totp-uri", "-", input=OTHER_URI + "\n")
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("9999-0000\n")
    g.ok("secret", "set", "x-acme", "--recovery-codes-file", str(fresh))
    assert set(open_steps(g).values()) == {"manual"}
    closed = {int(s["step"]): s for s in steps(g) if s["kind"] == "rotate-password"}  # type: ignore[call-overload]
    assert next(iter(closed.values()))["closed_by"] == "carol"
    rotate_step = next(iter(closed))
    assert g("offboard", "done", "bob", str(rotate_step)).code == 8
    manual = sorted(open_steps(g))
    assert g("offboard", "done", "bob", str(manual[0]), as_="carol").code == 4, "admins close steps"
    g.ok("offboard", "done", "bob", str(manual[0]), "--note", "removed from X Teams")
    for number in manual[1:-1]:
        g.ok("offboard", "done", "bob", str(number), "--note", "done")
    assert g("offboard", "done", "bob", str(manual[-1]), "--waive").code == 2
    done = g.ok("offboard", "done", "bob", str(manual[-1]), "--waive", "--reason", "shared IT inbox", "--json").json()
    assert done["status"] == "closed"
    assert done["head_seq"] is not None
    assert done["open_steps"] == 0
    assert g("offboard", "start", "bob", "--reason", "again").code == 8
    report = g.ok("offboard", "report", "bob", "--format", "json").json()
    assert [r["account"] for r in report["grants_revoked"]] == ["x-acme"]
    assert {(e["account"], e["kind"]) for e in report["exposed_credentials"]} == {
        ("x-acme", "password"),
        ("x-acme", "totp"),
        ("x-acme", "recovery-codes"),
    }
    assert all(e["rotated_at"] for e in report["exposed_credentials"])
    assert report["manual_steps"][0]["note"] == "removed from X Teams"
    assert report["duration_s"] is not None
    events = g.ok("audit", "log", "--json").json()
    head = next(e for e in events if e["seq"] == report["head_seq"])
    assert head["hash"] == report["head_hash"]
    assert head["action"] == "offboard.completed"
    out = tmp_path / "report.md"
    g.ok("offboard", "report", "bob", "--out", str(out))
    text = out.read_text()
    assert text.startswith("# Offboarding report: bob")
    assert "removed from X Teams" in text
    assert CANARY_PASSWORD not in text
    assert "JBSWY3DP" not in text


def test_leaver_decrypts_nothing_at_the_crypto_layer(office: Govern) -> None:
    office.ok("offboard", "start", "bob", "--reason", "left")
    engine = create_engine(office.db)
    try:
        with Session(engine) as session:
            meta = session.exec(select(VaultMeta)).one()
            bob = session.exec(select(Person).where(Person.handle == "bob")).one()
            key_row = session.exec(select(PersonKey).where(PersonKey.person_id == bob.id)).one()
            blob = SealedKeyBlob.parse(key_row.sealed_private)
            keys = blob.open(blob.derive_kek(passphrase_of("bob")))  # even with his passphrase
            live = session.exec(select(DataKey).where(col(DataKey.retired_at).is_(None))).all()
            for data_key in live:
                account = session.get(Account, data_key.account_id)
                assert account is not None
                assert account.id is not None
                assert data_key.id is not None
                wraps = session.exec(select(KeyWrap).where(KeyWrap.data_key_id == data_key.id)).all()
                assert keys.public.fingerprint not in {w.recipient_fingerprint for w in wraps}
                for wrap in wraps:
                    aad = wrap_aad(meta.id, account.id, data_key.id, wrap.recipient_fingerprint)
                    with pytest.raises(IntegrityError):
                        unwrap_key(wrap.blob, keys.x25519, aad)
    finally:
        engine.dispose()


def test_exposure_includes_accounts_left_earlier(vault: Govern) -> None:
    vault.account("ig-acme", password="ig-password-1234")
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    for slug in ("x-acme", "ig-acme"):
        vault.ok("access", "grant", slug, "bob", "--reason", "team")
        vault.ok("access", "revoke", slug, "bob", "--reason", "moved")
    vault.ok("rotation", "start", "ig-acme")
    vault.ok("rotation", "confirm", "ig-acme")  # rotated after bob left ig-acme
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "confirm", "x-acme")  # the password changed, the TOTP seed did not
    plan = vault.ok("offboard", "start", "bob", "--reason", "left", "--dry-run", "--json").json()
    follow = {(s["account"], s["kind"]) for s in plan["steps"] if not s["automatic"] and s["kind"] != "manual"}
    assert follow == {("x-acme", "reenrol-totp")}


def test_out_of_band_knowledge_counts(vault: Govern) -> None:
    vault.ok("staff", "add", "dana", "--name", "Dana")  # never enrolled
    assert vault("access", "record", "x-acme", "dana", "--reason", "told at a party", as_="bob").code == 4
    vault.ok("access", "record", "x-acme", "dana", "--reason", "password on a sticky note")
    assert vault("access", "record", "x-acme", "dana", "--reason", "again").code == 8
    result = vault.ok("offboard", "start", "dana", "--reason", "contract ended", "--json").json()
    assert "rotate-password" in {s["kind"] for s in result["steps"] if s["status"] == "open"}
    state = vault.ok("rotation", "status", "--json").json()[0]
    assert [(e["handle"], e["kind"]) for e in state["exposed_to"]] == [("dana", "password")]


def test_offboarding_an_admin_drops_custodian_wraps(vault: Govern) -> None:
    vault.enrol("erin", role="admin")
    vault.ok("staff", "set-role", "bob", "manager")  # any admin write gives erin her custodian wraps
    assert vault.ok("secret", "show", "x-acme", as_="erin").out.strip() == CANARY_PASSWORD
    vault.ok("offboard", "start", "erin", "--reason", "left")
    wraps = sql(
        vault.db, "SELECT COUNT(*) FROM key_wrap w JOIN person p ON p.id = w.person_id WHERE p.handle = 'erin'"
    )[0][0]
    assert wraps == 0
    assert vault.ok("rotation", "status", "--json").json()[0]["state"] == "exposed"


def test_bad_input(office: Govern) -> None:
    assert office("offboard", "start", "nobody", "--reason", "x").code == 3
    assert office("offboard", "start", "alice", "--reason", "x").code == 4
    assert office("offboard", "start", "carol", "--reason", "x", as_="bob").code == 4
    assert office("offboard", "start", "bob", "--reason", "x", "--effective", "2999-01-01").code == 2
    assert office("offboard", "status", "carol").code == 3
    assert office("offboard", "done", "carol", "1").code == 3


def test_deadlines_and_checks(office: Govern) -> None:
    office.ok("offboard", "start", "bob", "--reason", "left", "--deadline", "2h")
    assert office.ok("offboard", "status", "--check").code == 0
    office.later(timedelta(hours=3))
    late = office("offboard", "status", "--check")
    assert late.code == 7
    assert office("offboard", "status", "bob", "--check").code == 7
    assert office("rotation", "status", "--check").code == 7


def test_automatic_steps_cannot_be_closed_by_hand(office: Govern) -> None:
    office.ok("offboard", "start", "bob", "--reason", "left")
    rotate = next(n for n, kind in open_steps(office).items() if kind == "rotate-password")
    assert office("offboard", "done", "bob", str(rotate)).code == 4
    office.ok("offboard", "done", "bob", str(rotate), "--waive", "--reason", "account being deleted")
    assert rotate not in open_steps(office)


def test_one_exposure_per_secret_even_across_versions(vault: Govern) -> None:
    """Revoked earlier, then a version that kept the password: offboarding must not count it twice."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved")
    vault.ok("secret", "set", "x-acme", "--username", "renamed-login")  # the password is carried over
    vault.ok("offboard", "start", "bob", "--reason", "left", "--deadline", "3h")
    report = vault.ok("offboard", "report", "bob", "--format", "json").json()
    assert [(e["account"], e["kind"]) for e in report["exposed_credentials"]] == [("x-acme", "password")]
    assert report["exposed_credentials"][0]["deadline"] == report["deadline"], "the case's deadline applies"
    state = vault.ok("rotation", "status", "--json").json()[0]
    assert [(e["handle"], e["kind"]) for e in state["exposed_to"]] == [("bob", "password")]
