"""``govern passwd`` (re-seal the private keys) and ``govern lock`` (forget the cached unlock)."""

import json
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, Govern, passphrase_of
from forge import Forged, append_transaction, fingerprint_of, keys_of, sealed_private
from memkeyring import MemoryKeyring
from sqlhelp import sql

from audit.state import key_blob_digest
from govern.unlock import KEYRING_SERVICE
from vault import SealedKeyBlob

NEW = "bob's brand new passphrase 2026"
WRITER_PASSPHRASE = "the database writer's passphrase"


def blob_of(db: str, handle: str) -> bytes:
    value = sql(
        db,
        "SELECT k.sealed_private FROM person_key k JOIN person p ON p.id = k.person_id WHERE p.handle = :h",
        h=handle,
    )[0][0]
    assert isinstance(value, bytes)
    return value


def set_blob(db: str, handle: str, blob: bytes) -> None:
    sql(
        db,
        "UPDATE person_key SET sealed_private = :b WHERE person_id = (SELECT id FROM person WHERE handle = :h)",
        b=blob,
        h=handle,
    )


def cached_unlocks() -> list[str]:
    return [user for (service, user) in MemoryKeyring.entries if service == KEYRING_SERVICE]


def at_a_terminal(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """A person at a terminal typing ``answers`` in turn; returns the prompts they saw."""
    prompts: list[str] = []
    queue = list(answers)

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr("govern.unlock.terminal_available", lambda: True)
    monkeypatch.setattr("getpass.getpass", getpass)
    return prompts


def test_passwd_reseals_under_the_new_passphrase_and_keeps_the_keys(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    before = fingerprint_of(vault.db, "bob")
    old_blob = blob_of(vault.db, "bob")
    result = vault.ok("passwd", "--new-passphrase-stdin", "--json", as_="bob", input=NEW + "\n").json()
    assert result["key_fingerprint"] == before
    assert fingerprint_of(vault.db, "bob") == before, "a passwd never changes a public key"
    assert blob_of(vault.db, "bob") != old_blob
    MemoryKeyring.entries.clear()
    assert vault("secret", "show", "x-acme", as_="bob").code == 5, "the old passphrase no longer opens"
    shown = vault.ok("secret", "show", "x-acme", as_="bob", passphrase=NEW)
    assert shown.out.strip() == CANARY_PASSWORD
    # Audited: one event by bob about bob, with no key material (fingerprint, parameters, digest).
    events = [e for e in vault.ok("audit", "log", "--json").json() if e["action"] == "staff.passphrase_changed"]
    assert len(events) == 1
    event = events[0]
    assert (event["actor"], event["subject"]) == ("bob", "bob")
    data = event["data"] if isinstance(event["data"], dict) else json.loads(event["data"])
    assert set(data) == {"key", "kdf", "sealed"}
    assert data["key"] == before
    assert data["sealed"] == key_blob_digest(blob_of(vault.db, "bob"))
    blob = json.loads(blob_of(vault.db, "bob"))
    assert blob["ct"] not in json.dumps(event)
    assert blob["salt"] not in json.dumps(event)


def test_passwd_raises_the_kdf_parameters_and_doctor_says_how(vault: Govern) -> None:
    weak = vault("doctor", "--json", as_="bob")
    assert weak.code == 7
    assert any("run 'govern passwd'" in problem for problem in weak.json()["problems"])
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", input=NEW + "\n", env={"GOVERN_KDF": ""})
    params = SealedKeyBlob.parse(blob_of(vault.db, "bob")).params
    assert (params.memory_kib, params.iterations, params.lanes) == (65536, 3, 4), "the product defaults"
    report = vault("doctor", "--json", as_="bob", passphrase=NEW).json()
    assert not any("passwd" in problem for problem in report["problems"])
    assert report["your_kdf"] == "m=65536,t=3,p=4"


def test_passwd_never_lowers_the_kdf_parameters(vault: Govern) -> None:
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", input=NEW + "\n", env={"GOVERN_KDF": "m=19456,t=4,p=1"})
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", passphrase=NEW, input=NEW + " again\n")
    params = SealedKeyBlob.parse(blob_of(vault.db, "bob")).params
    assert params.iterations == 4, "GOVERN_KDF at the floor does not undo an earlier raise"


def test_passwd_prompts_twice_and_a_mismatch_is_exit_2(vault: Govern, monkeypatch: pytest.MonkeyPatch) -> None:
    old_blob = blob_of(vault.db, "bob")
    prompts = at_a_terminal(monkeypatch, passphrase_of("bob"), NEW, NEW + "x")
    result = vault("passwd", as_="bob", passphrase=None)
    assert result.code == 2
    assert "differ" in result.err
    assert prompts == ["Passphrase for bob: ", "New passphrase for bob: ", "Repeat it: "]
    assert blob_of(vault.db, "bob") == old_blob
    at_a_terminal(monkeypatch, passphrase_of("bob"), NEW, NEW)
    vault.ok("passwd", as_="bob", passphrase=None)
    assert vault.ok("whoami", as_="bob", passphrase=NEW)


def test_passwd_refuses_a_weak_new_passphrase(vault: Govern) -> None:
    result = vault("passwd", "--new-passphrase-stdin", as_="bob", input="short\n")
    assert result.code == 2
    assert "12 characters" in result.err


def test_passwd_wants_the_passphrase_not_the_cached_unlock(vault: Govern) -> None:
    """Someone at an unlocked laptop cannot take the account over by changing the passphrase."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "show", "x-acme", as_="bob")
    assert cached_unlocks()
    old_blob = blob_of(vault.db, "bob")
    result = vault("passwd", "--new-passphrase-stdin", as_="bob", passphrase=None, input=NEW + "\n")
    assert result.code == 2
    assert "passphrase is needed" in result.err
    wrong = vault("passwd", "--new-passphrase-stdin", as_="bob", passphrase="not bob's at all", input=NEW + "\n")
    assert wrong.code == 5
    assert blob_of(vault.db, "bob") == old_blob


def test_passwd_drops_the_cached_unlock(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    MemoryKeyring.entries.clear()
    vault.ok("secret", "show", "x-acme", as_="bob")
    assert len(cached_unlocks()) == 1
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", input=NEW + "\n")
    assert cached_unlocks() == []
    assert vault("secret", "show", "x-acme", as_="bob", passphrase=None).code == 2, "asked again"


def test_passwd_uses_stdin_once(vault: Govern) -> None:
    result = vault(
        "--passphrase-stdin",
        "passwd",
        "--new-passphrase-stdin",
        as_="bob",
        passphrase=None,
        input=f"{passphrase_of('bob')}\n{NEW}\n",
    )
    assert result.code == 2
    assert "standard input can carry one passphrase" in result.err


def test_lock_forgets_the_cached_unlock_and_is_idempotent(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    vault.ok("whoami")
    vault.ok("secret", "show", "x-acme")
    assert cached_unlocks()
    locked = vault.ok("lock", "--json", passphrase=None).json()
    assert locked["forgotten"] == 1
    assert cached_unlocks() == []
    again = vault.ok("lock", passphrase=None)
    assert "nothing was cached" in again.err
    assert vault("secret", "show", "x-acme", passphrase=None).code == 2, "the passphrase is asked again"


def test_lock_ignores_a_cache_ttl_of_zero(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    vault.ok("secret", "show", "x-acme")
    assert vault.ok("lock", "--json", passphrase=None, env={"GOVERN_CACHE_TTL": "0"}).json()["forgotten"] == 1


# -- attacks --------------------------------------------------------------------------------------


@pytest.mark.tampers
def test_attack_passwd_event_by_someone_else_does_not_verify(vault: Govern, tmp_path: Path) -> None:
    """An admin (or anyone) cannot log a passphrase change of another person."""
    alice = keys_of(vault.db, "alice")
    bob_key = fingerprint_of(vault.db, "bob")
    [forged] = append_transaction(
        vault.db,
        [
            Forged(
                actor="alice",
                action="staff.passphrase_changed",
                subject="bob",
                data={"key": bob_key, "kdf": {"m": 19456, "t": 2, "p": 1}, "sealed": "0" * 64},
            )
        ],
        signer="alice",
        key=alice.public.fingerprint,
        sign=alice.sign,
    )
    verified = vault("audit", "verify", env={"GOVERN_STATE_DIR": str(tmp_path / "fresh")})
    assert verified.code == 6
    assert f"event {forged.seq}" in verified.err


@pytest.mark.tampers
def test_attack_passwd_event_cannot_introduce_a_key(vault: Govern, tmp_path: Path) -> None:
    """A passphrase change naming another key (with public keys added) breaks the rules."""
    bob = keys_of(vault.db, "bob")
    from vault import PersonKeys

    other = PersonKeys.generate()
    [forged] = append_transaction(
        vault.db,
        [
            Forged(
                actor="bob",
                action="staff.passphrase_changed",
                subject="bob",
                data={"key": other.public.fingerprint, "kdf": {"m": 19456, "t": 2, "p": 1}, "sealed": "0" * 64},
            )
        ],
        signer="bob",
        key=bob.public.fingerprint,
        sign=bob.sign,
    )
    verified = vault("audit", "verify", env={"GOVERN_STATE_DIR": str(tmp_path / "fresh")})
    assert verified.code == 6
    assert f"event {forged.seq}" in verified.err


@pytest.mark.tampers
def test_attack_db_writer_replaces_a_key_blob_with_one_under_their_passphrase(vault: Govern) -> None:
    """A database writer puts in bob's row their own keys sealed under their passphrase.

    The writer cannot seal *bob's* private keys (they do not have them), so the blob holds
    other keys: bob gets a clear integrity error (6), never a passphrase the writer chose;
    the writer, acting as bob with that passphrase, gets the same and nothing is revealed.
    """
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    MemoryKeyring.entries.clear()
    writer_keys = keys_of(vault.db, "alice")  # an insider's real keys, or fresh ones: same result
    set_blob(vault.db, "bob", sealed_private(writer_keys, WRITER_PASSPHRASE))
    victim = vault("secret", "show", "x-acme", as_="bob")
    assert victim.code == 6, victim.err
    assert "private key blob of bob" in victim.err
    as_writer = vault("secret", "show", "x-acme", as_="bob", passphrase=WRITER_PASSPHRASE)
    assert as_writer.code == 6
    assert CANARY_PASSWORD not in as_writer.out + as_writer.err
    # Nor may the writer swap the whole key row (fingerprint and public keys) to fresh keys.
    from vault import PersonKeys

    fresh = PersonKeys.generate()
    sql(
        vault.db,
        "UPDATE person_key SET fingerprint = :f, x25519_public = :x, ed25519_public = :e, sealed_private = :b"
        " WHERE person_id = (SELECT id FROM person WHERE handle = 'bob')",
        f=fresh.public.fingerprint,
        x=fresh.public.x25519,
        e=fresh.public.ed25519,
        b=sealed_private(fresh, WRITER_PASSPHRASE),
    )
    swapped = vault("secret", "show", "x-acme", as_="bob", passphrase=WRITER_PASSPHRASE)
    assert swapped.code == 6
    assert CANARY_PASSWORD not in swapped.out + swapped.err
    assert vault("audit", "verify").code == 6


@pytest.mark.tampers
def test_attack_db_writer_puts_back_the_blob_of_the_old_passphrase(vault: Govern) -> None:
    """After a passwd (say the old passphrase leaked), the old blob put back is refused."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    old_blob = blob_of(vault.db, "bob")
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", input=NEW + "\n")
    set_blob(vault.db, "bob", old_blob)
    MemoryKeyring.entries.clear()
    with_old = vault("secret", "show", "x-acme", as_="bob")
    assert with_old.code == 6
    assert "last passphrase change" in with_old.err
    assert CANARY_PASSWORD not in with_old.out
    verified = vault("audit", "verify")
    assert verified.code == 6
    assert "last passphrase change" in verified.err
