"""No plaintext at rest; sealed values that were altered or moved never open."""

import base64
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, CANARY_SEED, CANARY_URI, Govern
from sqlhelp import sql


def _sql(govern: Govern, statement: str, **params: object) -> list[tuple[object, ...]]:
    return sql(govern.db, statement, **params)


def test_canary_never_in_database_files(sqlite_govern: Govern) -> None:
    g = sqlite_govern
    g.init()
    g.enrol("bob")
    g.account()
    g.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    g.ok("secret", "show", "x-acme", as_="bob")
    g.ok("totp", "x-acme", as_="bob")
    folder = Path(g.db.removeprefix("sqlite:///")).parent
    files = [p for p in folder.iterdir() if p.is_file()]
    assert folder / "vault.db" in files
    needles = [CANARY_PASSWORD.encode(), CANARY_SEED.encode(), b"acme-social"]
    needles += [base64.b64encode(n) for n in needles]
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"{needle!r} found in {path.name}"


@pytest.mark.tampers
def test_flipped_byte_in_a_sealed_value_is_an_integrity_failure(vault: Govern) -> None:
    (blob,) = _sql(vault, "SELECT ciphertext FROM sealed_field WHERE field = 'password'")[0]
    assert isinstance(blob, (bytes, memoryview))
    tampered = bytearray(bytes(blob))
    tampered[len(tampered) // 2] ^= 0x01
    _sql(vault, "UPDATE sealed_field SET ciphertext = :c WHERE field = 'password'", c=bytes(tampered))
    result = vault("secret", "show", "x-acme")
    assert result.code == 6
    assert CANARY_PASSWORD not in result.out + result.err
    # Caught before decryption: the sealed fields no longer match their signed digest.
    assert "not the ones its signed event commits to" in result.err
    assert "Traceback" not in result.err


@pytest.mark.tampers
@pytest.mark.parametrize("move", ["field", "version", "account"])
def test_ciphertext_moved_to_another_row_fails_to_open(vault: Govern, move: str) -> None:
    vault.account("ig-acme", password="another-password-123")
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="second-version-pw\n")
    if move == "field":
        # The password ciphertext pasted into the username field of the same version.
        _sql(
            vault,
            "UPDATE sealed_field SET ciphertext = (SELECT s2.ciphertext FROM sealed_field s2 WHERE s2.id ="
            " (SELECT MAX(s3.id) FROM sealed_field s3 WHERE s3.field = 'password' AND s3.version_id ="
            " sealed_field.version_id)) WHERE field = 'username'",
        )
        args = ["--field", "username"]
        target = "x-acme"
    elif move == "version":
        # Version 1's password pasted over version 2's (same account, same data key lineage).
        rows = _sql(
            vault,
            "SELECT s.id, v.number FROM sealed_field s JOIN credential_version v ON v.id = s.version_id"
            " JOIN account a ON a.id = v.account_id WHERE a.slug = 'x-acme' AND s.field = 'password'"
            " ORDER BY v.number",
        )
        old_id, new_id = rows[0][0], rows[-1][0]
        _sql(
            vault,
            "UPDATE sealed_field SET ciphertext = (SELECT ciphertext FROM sealed_field WHERE id = :old)"
            " WHERE id = :new",
            old=old_id,
            new=new_id,
        )
        args, target = [], "x-acme"
    else:
        rows = _sql(
            vault,
            "SELECT a.slug, s.id FROM sealed_field s JOIN credential_version v ON v.id = s.version_id"
            " JOIN account a ON a.id = v.account_id WHERE s.field = 'password' AND v.status = 'current'",
        )
        ids = dict(rows)  # type: ignore[arg-type]
        _sql(
            vault,
            "UPDATE sealed_field SET ciphertext = (SELECT ciphertext FROM sealed_field WHERE id = :src)"
            " WHERE id = :dst",
            src=ids["x-acme"],
            dst=ids["ig-acme"],
        )
        args, target = [], "ig-acme"
    result = vault("secret", "show", target, *args)
    assert result.code == 6, result.err
    assert "signed event commits to" in result.err
    assert "second-version-pw" not in result.out
    assert CANARY_PASSWORD not in result.out


@pytest.mark.tampers
def test_a_grant_row_inserted_by_hand_gives_no_key(vault: Govern) -> None:
    _sql(
        vault,
        "INSERT INTO access_grant (account_id, person_id, reason, granted_by, starts_at)"
        " SELECT a.id, p.id, 'sneaky', 'alice', CURRENT_TIMESTAMP FROM account a, person p"
        " WHERE a.slug = 'x-acme' AND p.handle = 'bob'",
    )
    result = vault("secret", "show", "x-acme", as_="bob")
    assert result.code == 6, "a grant the signed log does not explain is refused, not obeyed"
    assert "grant 1 is not explained by the log" in result.err
    assert CANARY_PASSWORD not in result.out


@pytest.mark.tampers
def test_an_auditor_never_decrypts_even_with_a_forged_grant(vault: Govern) -> None:
    vault.enrol("carol", role="auditor")
    assert vault("access", "grant", "x-acme", "carol", "--reason", "audit").code == 4
    _sql(
        vault,
        "INSERT INTO access_grant (account_id, person_id, reason, granted_by, starts_at)"
        " SELECT a.id, p.id, 'forged', 'alice', CURRENT_TIMESTAMP FROM account a, person p"
        " WHERE a.slug = 'x-acme' AND p.handle = 'carol'",
    )
    assert vault("secret", "show", "x-acme", as_="carol").code == 6
    # Made admin by SQL too: still refused, and an admin's write wraps nothing to her.
    _sql(vault, "UPDATE person SET role = 'admin' WHERE handle = 'carol'")
    result = vault("secret", "show", "x-acme", as_="carol")
    assert result.code == 6
    assert CANARY_PASSWORD not in result.out
    assert vault("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@a").code == 6
    wraps = _sql(
        vault,
        "SELECT COUNT(*) FROM key_wrap w JOIN person p ON p.id = w.person_id WHERE p.handle = 'carol'",
    )
    assert wraps[0][0] == 0
