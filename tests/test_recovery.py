"""Recovery with the organisation recovery key: nothing is lost when every admin is gone."""

import json
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern
from memkeyring import MemoryKeyring


def test_recovering_a_vault_whose_admin_is_gone(govern: Govern, tmp_path: Path) -> None:
    recovery = tmp_path / "recovery.txt"
    govern.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--recovery-file", str(recovery))
    govern.enrol("bob")
    govern.account()
    govern.ok("rotation", "start", "x-acme")
    govern.ok("rotation", "confirm", "x-acme")
    current = govern.ok("secret", "show", "x-acme").out.strip()
    MemoryKeyring.entries.clear()
    # Alice's passphrase is lost: nobody can unlock her keys any more.
    assert govern("secret", "show", "x-acme", passphrase="forgotten passphrase").code == 5
    other = tmp_path / "other.txt"
    other.write_text("GOVERN-RECOVERY-1-AAAAAA-AAAAAA\n")
    assert govern("recover", "--recovery-file", str(other), "--admin", "zoe", "--name", "Zoe", as_="zoe").code == 5
    result = govern.ok(
        "recover", "--recovery-file", str(recovery), "--admin", "zoe", "--name", "Zoe Rescue", "--json", as_="zoe"
    ).json()
    assert result["data_keys"] >= 1
    assert govern.ok("secret", "show", "x-acme", as_="zoe").out.strip() == current
    assert govern.ok("secret", "show", "x-acme", "--version", "1", as_="zoe").out.strip() == CANARY_PASSWORD
    assert govern("recover", "--recovery-file", str(recovery), "--admin", "zoe", "--name", "Z", as_="zoe").code == 8
    govern.ok("staff", "add", "yan", "--name", "Yan", as_="zoe")  # zoe acts as an admin
    verified = govern("audit", "verify", as_="zoe")
    assert verified.code == 0, verified.err
    events = govern.ok("audit", "log", "--action", "vault.recovered", "--json", as_="zoe").json()
    assert events[0]["subject"] == "zoe"
    assert "GOVERN-RECOVERY" not in json.dumps(govern.ok("audit", "log", "--json", as_="zoe").json())


@pytest.mark.tampers
def test_a_recovery_without_the_recovery_key_is_reported(govern: Govern, tmp_path: Path) -> None:
    """An attacker with database access appends a well-chained, self-signed 'recovery'."""
    import base64

    from sqlalchemy import create_engine
    from sqlmodel import Session

    from audit.log import AuditTransaction
    from govern.models import Person, PersonKey
    from govern.services.vaultinit import public_keys_event
    from govern.timeutil import utcnow
    from vault import MINIMUM_PARAMS, PersonKeys

    govern.ok("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    mallory = PersonKeys.generate()

    class Signer:
        handle = "mallory"
        key_fingerprint = mallory.public.fingerprint

        def sign(self, message: bytes) -> bytes:
            return mallory.sign(message)

    engine = create_engine(govern.db)
    try:
        with Session(engine) as session:
            now = utcnow()
            person = Person(handle="mallory", name="M", role="admin", status="active", created_at=now, created_by="x")
            session.add(person)
            session.flush()
            assert person.id is not None
            blob, _ = mallory.seal("mallory passphrase", MINIMUM_PARAMS)
            session.add(
                PersonKey(
                    person_id=person.id,
                    fingerprint=mallory.public.fingerprint,
                    x25519_public=mallory.public.x25519,
                    ed25519_public=mallory.public.ed25519,
                    sealed_private=blob,
                    created_at=now,
                )
            )
            tx = AuditTransaction(session, "mallory", now)
            forged = base64.b64encode(mallory.sign(b"not the recovery key")).decode()
            tx.append(
                "vault.recovered",
                subject="mallory",
                data={"recovery_key": "x", "admin_key": mallory.public.fingerprint, "signature": forged},
            )
            tx.append(
                "staff.added", subject="mallory", data={"name": "M", "email": None, "team": None, "role": "admin"}
            )
            tx.append("staff.enrolled", subject="mallory", data=public_keys_event(mallory, MINIMUM_PARAMS))
            tx.seal(Signer())
            session.commit()
    finally:
        engine.dispose()
    result = govern("audit", "verify")
    assert result.code == 6
    assert "not signed by this vault's recovery key" in result.err
