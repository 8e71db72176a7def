"""Rotation: states and due dates, two-phase rotations, exposure by kind, retention."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, CLOCK_ENV, FAST_KDF, Govern, passphrase_of
from sqlalchemy import create_engine
from sqlhelp import sql
from sqlmodel import Session, select

from audit.chain import verify_chain
from audit.state import LogState
from audit.stream import SealCursor, stream_events
from govern.exposure import known_secrets
from govern.models import Account, Person
from govern.platforms import CATALOGUE, generate_password, meets_rules
from govern.services.common import account_state
from govern.timeutil import utcnow

OTHER_URI = "otpauth://totp/Acme:social?secret=KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU&issuer=Acme"


def state(g: Govern, slug: str = "x-acme") -> dict[str, object]:
    rows = {r["account"]: r for r in g.ok("rotation", "status", "--json").json()}
    result: dict[str, object] = rows[slug]
    return result


@pytest.mark.parametrize("platform", sorted(CATALOGUE))
def test_generated_passwords_meet_the_platform_rules(platform: str) -> None:
    """The generator draws from ``secrets`` (not from Hypothesis), so sample it many times."""
    rules = CATALOGUE[platform]
    samples = [generate_password(platform) for _ in range(500)]
    for password in samples:
        assert meets_rules(password, rules)
        assert rules.min_length <= len(password) <= rules.max_length
        assert len(password) == min(24, rules.max_length)
    assert len(set(samples)) == len(samples), "no repeats"


def test_due_dates_with_time_passed_in(vault: Govern) -> None:
    engine = create_engine(vault.db)
    try:
        with Session(engine) as session:
            account = session.exec(select(Account).where(Account.slug == "x-acme")).one()
            set_at = datetime.fromisoformat(str(account_state(session, account, utcnow())["last_rotated"]))
            at = {days: account_state(session, account, set_at + timedelta(days=days)) for days in (0, 82, 84, 91, 120)}
    finally:
        engine.dispose()
    assert [at[d]["state"] for d in (0, 82, 84, 91, 120)] == ["ok", "ok", "due-soon", "overdue", "overdue"]
    assert at[0]["rotate_every"] == "90d", "the platform catalogue's default"
    assert at[91]["overdue"] is True


def test_status_states_and_check(vault: Govern) -> None:
    vault.ok("account", "add", "tt-acme", "--platform", "tiktok", "--handle", "@acme", "--rotate-every", "30d")
    assert state(vault, "tt-acme")["state"] == "never-set"
    assert state(vault)["state"] == "ok"
    assert vault("rotation", "status", "--check").code == 0
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    exposed = state(vault)
    assert exposed["state"] == "exposed"
    assert [(e["handle"], e["kind"]) for e in exposed["exposed_to"]] == [("bob", "password")]  # type: ignore[union-attr,index]
    check = vault("rotation", "status", "--check")
    assert check.code == 7
    assert "x-acme" in check.err
    shown = vault.ok("secret", "show", "x-acme")
    assert "exposed to bob" in shown.err
    vault.ok("rotation", "start", "x-acme")
    assert state(vault)["state"] == "rotating"
    assert vault("rotation", "status", "--check").code == 7, "still exposed until confirmed"
    vault.ok("rotation", "confirm", "x-acme")
    assert state(vault)["state"] == "ok"
    assert vault("rotation", "status", "--check").code == 0


def test_two_phase_rotation(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert vault("secret", "show", "x-acme", "--pending", as_="bob").code == 3
    assert vault("rotation", "confirm", "x-acme").code == 3
    started = vault.ok("rotation", "start", "x-acme", "--json", as_="bob").json()
    assert started["pending_version"] == 2
    assert vault("rotation", "start", "x-acme").code == 8
    assert vault("secret", "set", "x-acme", "--password-stdin", input="manual-pw-000\n").code == 8
    pending = vault.ok("secret", "show", "x-acme", "--pending", as_="bob").out.strip()
    assert meets_rules(pending, CATALOGUE["x"])
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD, "old still current"
    assert vault.ok("secret", "show", "x-acme", "--field", "username", "--pending").out.strip() == "acme-social"
    vault.ok("rotation", "confirm", "x-acme", as_="bob")
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == pending
    versions = vault.ok("secret", "history", "x-acme", "--json").json()
    assert [(v["version"], v["status"], v["changed"]) for v in versions] == [
        (1, "superseded", ["username", "password"]),
        (2, "current", ["password"]),
    ]
    assert versions[0]["retain_until"] is not None
    # Admins can still recover the superseded version during retention; holders cannot.
    assert vault.ok("secret", "show", "x-acme", "--version", "1").out.strip() == CANARY_PASSWORD
    assert vault("secret", "show", "x-acme", "--version", "1", as_="bob").code == 4
    actions = [e["action"] for e in vault.ok("audit", "log", "--action", "rotation", "--json").json()]
    assert actions == ["rotation.started", "rotation.confirmed"]
    for event in vault.ok("audit", "log", "--json").json():
        assert pending not in str(event)


def test_abort_keeps_the_current_password(vault: Govern) -> None:
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "abort", "x-acme")
    assert vault("secret", "show", "x-acme", "--pending").code == 3
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    statuses = [v["status"] for v in vault.ok("secret", "history", "x-acme", "--json").json()]
    assert statuses == ["current", "aborted"]
    assert sql(vault.db, "SELECT COUNT(*) FROM sealed_field f JOIN credential_version v ON v.id = f.version_id"
               " WHERE v.status = 'aborted'")[0][0] == 0  # fmt: skip
    vault.ok("rotation", "start", "x-acme")  # a new rotation can start


def test_a_crash_before_confirm_commits_loses_nothing(vault: Govern, tmp_path: Path) -> None:
    vault.ok("rotation", "start", "x-acme")
    pending = vault.ok("secret", "show", "x-acme", "--pending").out.strip()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GOVERN_DB_URL": vault.db,
        "GOVERN_USER": "alice",
        "GOVERN_PASSPHRASE": passphrase_of("alice"),
        "GOVERN_KDF": FAST_KDF,
        **CLOCK_ENV,
        "GOVERN_CACHE_TTL": "0",
        "GOVERN_TEST_CRASHPOINT": "before-commit",
    }
    killed = subprocess.run(
        [str(Path(sys.executable).with_name("govern")), "rotation", "confirm", "x-acme"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert killed.returncode == -9
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    assert vault.ok("secret", "show", "x-acme", "--pending").out.strip() == pending
    vault.ok("rotation", "confirm", "x-acme")
    assert vault.ok("secret", "show", "x-acme").out.strip() == pending


def test_after_confirm_a_revoked_key_cannot_unwrap(vault: Govern) -> None:
    from test_domain import current_wraps, keys_of

    from govern.custody import wrap_aad
    from vault import IntegrityError, unwrap_key

    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("rotation", "start", "x-acme")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left mid-rotation")
    vault.ok("rotation", "confirm", "x-acme")
    vault_id, account_id, key_id, wraps = current_wraps(vault.db, "x-acme")
    bob = keys_of(vault.db, "bob")
    assert bob.public.fingerprint not in {w.recipient_fingerprint for w in wraps}
    for wrap in wraps:
        with pytest.raises(IntegrityError):
            unwrap_key(wrap.blob, bob.x25519, wrap_aad(vault_id, account_id, key_id, wrap.recipient_fingerprint))
    # Bob could read the pending password before he was revoked: the new version is exposed to him.
    assert state(vault)["state"] == "exposed"


def test_totp_exposure_is_separate(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    kinds = sorted(e["kind"] for e in state(vault)["exposed_to"])  # type: ignore[union-attr]
    assert kinds == ["password", "totp"]
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "confirm", "x-acme")
    remaining = state(vault)
    assert remaining["state"] == "exposed"
    assert [e["kind"] for e in remaining["exposed_to"]] == ["totp"]  # type: ignore[union-attr]
    assert vault.ok("totp", "x-acme").code == 0, "rotating the password keeps the 2FA seed"
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=OTHER_URI + "\n")
    assert state(vault)["state"] == "ok"


def test_setting_the_same_password_is_not_a_rotation(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    same = vault("secret", "set", "x-acme", "--password-stdin", input=CANARY_PASSWORD + "\n")
    assert same.code == 8
    assert state(vault)["state"] == "exposed"
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="changed-by-hand-42\n")
    assert state(vault)["state"] == "ok", "a new password set by hand counts as a rotation"


def test_exposure_is_computed_from_history(vault: Govern) -> None:
    """Someone who left before a rotation does not expose the new password, but still knows the seed."""
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "confirm", "x-acme")
    engine = create_engine(vault.db)
    try:
        with Session(engine) as session:
            account = session.exec(select(Account).where(Account.slug == "x-acme")).one()
            bob = session.exec(select(Person).where(Person.handle == "bob")).one()
            state = LogState()
            verify_chain(stream_events(session), SealCursor(session), state=state)
            known = sorted(kind for kind, _version in known_secrets(session, state, account, bob))
    finally:
        engine.dispose()
    assert known == ["totp"]


def test_superseded_versions_are_destroyed_after_retention(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="second-password-1\n")
    assert vault.ok("secret", "show", "x-acme", "--version", "1").out.strip() == CANARY_PASSWORD
    # Retention runs from when the log says the version was superseded (issue 19: retain_until
    # moved into the past by SQL is not believed, tests/test_trust_closure.py).
    vault.later(timedelta(days=29))
    vault.ok("account", "set", "x-acme", "--max-holders", "4")  # any write applies retention
    assert vault.ok("secret", "show", "x-acme", "--version", "1").out.strip() == CANARY_PASSWORD
    vault.later(timedelta(days=2))
    vault.ok("account", "set", "x-acme", "--max-holders", "5")
    assert vault("secret", "show", "x-acme", "--version", "1").code == 3
    history = vault.ok("secret", "history", "x-acme", "--json").json()
    assert history[0]["status"] == "destroyed"
    fields = sql(
        vault.db,
        "SELECT COUNT(*) FROM sealed_field f JOIN credential_version v ON v.id = f.version_id WHERE v.number = 1",
    )[0][0]
    assert fields == 0
    destroyed = vault.ok("audit", "log", "--action", "secret.destroyed", "--json").json()
    assert destroyed[0]["data"] == {"version": 1}


def test_members_without_a_grant_cannot_rotate(vault: Govern) -> None:
    assert vault("rotation", "start", "x-acme", as_="bob").code == 4
    vault.enrol("aud", role="auditor")
    assert vault("rotation", "start", "x-acme", as_="aud").code == 4
