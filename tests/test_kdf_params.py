"""Key blobs authenticate their Argon2id parameters and salt (issue 10, ADR 0001).

Editing the parameters, the salt or the ciphertext of a key blob is an integrity failure
(exit 6), found when the blob is parsed, before any derivation; parameters above the
documented ceilings are refused the same way, even in a blob its owner signed; a wrong
passphrase is still exit 5.
"""

import base64
import json
from typing import Any

import pytest
from conftest import Govern, passphrase_of
from memkeyring import MemoryKeyring
from sqlhelp import sql

from vault import (
    MINIMUM_PARAMS,
    BadPassphraseError,
    IntegrityError,
    KdfParams,
    PersonKeys,
    SealedKeyBlob,
    new_data_key,
)
from vault import kdf as kdf_module
from vault import keys as keys_module
from vault.errors import UnsupportedFormatError, WeakParametersError
from vault.kdf import MAXIMUM_PARAMS

PASSPHRASE = "a long passphrase"
HUGE = {"m": 4 * 1024 * 1024, "t": 64, "p": 4}  # 4 GiB, 64 passes: minutes of Argon2id, if it ran at all


@pytest.fixture
def no_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Argon2id is ever asked to run."""

    def refuse(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("Argon2id was run on a blob that should have been refused first")

    monkeypatch.setattr(kdf_module, "derive", refuse)


def sealed(params: KdfParams = MINIMUM_PARAMS) -> tuple[PersonKeys, dict[str, Any], bytes]:
    """A blob sealed under a random key (no Argon2id, so ``no_derivation`` can watch)."""
    keys = PersonKeys.generate()
    kek = new_data_key()
    return keys, json.loads(keys.seal_with_kek(kek, kdf_module.new_salt(), params)), kek


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


EDITS = {
    "memory": lambda b: b["kdf"].update(m=b["kdf"]["m"] + 1024),
    "iterations": lambda b: b["kdf"].update(t=b["kdf"]["t"] + 1),
    "lanes": lambda b: b["kdf"].update(p=b["kdf"]["p"] + 1),
    "salt": lambda b: b.update(salt=flip(b["salt"])),
    "ciphertext": lambda b: b.update(ct=flip(b["ct"])),
    "public key": lambda b: b["pub"].update(ed25519=flip(b["pub"]["ed25519"])),
    "signature": lambda b: b.update(sig=flip(b["sig"])),
}


@pytest.mark.parametrize("edit", EDITS, ids=str)
def test_kdf_parameters_edited_in_a_blob_are_an_integrity_failure(edit: str, no_derivation: None) -> None:
    _keys, body, _kek = sealed()
    EDITS[edit](body)
    with pytest.raises(IntegrityError) as caught:
        SealedKeyBlob.parse(encode(body))
    assert not isinstance(caught.value, BadPassphraseError)


def test_a_blob_re_signed_by_someone_else_under_a_persons_fingerprint_is_refused(no_derivation: None) -> None:
    """The attacker edits the parameters and signs with their own key: the keys are not the fingerprint's."""
    alice, _body, _kek = sealed()
    _mallory, forged_body, _ = sealed(KdfParams(MINIMUM_PARAMS.memory_kib, 3, 1))
    forged_body["fp"] = alice.public.fingerprint
    blob = SealedKeyBlob.parse(encode(forged_body))  # consistent in itself…
    with pytest.raises(IntegrityError):
        blob.derive_kek(PASSPHRASE)  # …but not alice's: refused before Argon2id


def test_kdf_parameters_are_bound_as_associated_data() -> None:
    """Belt and braces: even past the signature, the AEAD binds the parameters and salt."""
    keys, body, kek = sealed()
    blob = SealedKeyBlob.parse(encode(body))
    assert blob.open(kek).public == keys.public
    for params, salt in ((KdfParams(MINIMUM_PARAMS.memory_kib, 3, 1), blob.salt), (blob.params, bytes(16))):
        moved = SealedKeyBlob(params, salt, blob.fingerprint, blob.ciphertext, blob.public, blob.signature)
        with pytest.raises(BadPassphraseError):
            moved.open(kek)


def test_huge_kdf_parameters_are_refused_before_deriving(no_derivation: None) -> None:
    keys, body, _kek = sealed()
    body["kdf"] = dict(HUGE)
    with pytest.raises(IntegrityError):
        SealedKeyBlob.parse(encode(body))
    # Even in a blob its owner signed (a machine set to absurd costs), the ceilings hold.
    params = KdfParams(HUGE["m"], HUGE["t"], HUGE["p"])
    salt = base64.b64decode(body["salt"])
    ciphertext = base64.b64decode(body["ct"])
    message = keys_module._header_message(params, salt, keys.public, ciphertext)
    body["sig"] = base64.b64encode(keys.sign(message)).decode()
    with pytest.raises(IntegrityError):
        SealedKeyBlob.parse(encode(body))
    with pytest.raises(WeakParametersError):
        params.validate()
    with pytest.raises(WeakParametersError):
        KdfParams.parse("m=4194304,t=64,p=4")  # GOVERN_KDF cannot ask for it either
    with pytest.raises(WeakParametersError):
        keys.seal_with_kek(bytes(32), salt, params)
    for name, value in (("m", MAXIMUM_PARAMS.memory_kib + 1), ("t", 17), ("p", 17), ("m", "65536"), ("t", 2.0)):
        over = dict(body, kdf={"m": 65536, "t": 3, "p": 4} | {name: value})
        with pytest.raises(IntegrityError):
            SealedKeyBlob.parse(encode(over))
    assert MAXIMUM_PARAMS.validate() == KdfParams(2 * 1024 * 1024, 16, 16)


def test_wrong_passphrase_is_still_bad_passphrase_not_integrity() -> None:
    keys = PersonKeys.generate()
    blob = SealedKeyBlob.parse(keys.seal(PASSPHRASE, MINIMUM_PARAMS)[0])
    with pytest.raises(BadPassphraseError):
        blob.open(blob.derive_kek("not the passphrase"))
    assert blob.open(blob.derive_kek(PASSPHRASE)).public == keys.public


def test_an_old_format_blob_is_refused_as_unsupported() -> None:
    old = {"v": 1, "alg": "argon2id+aes-256-gcm", "kdf": {"m": 19456, "t": 2, "p": 1}, "salt": "", "fp": "", "ct": ""}
    with pytest.raises(UnsupportedFormatError, match="format 1"):
        SealedKeyBlob.parse(encode(old))
    assert issubclass(UnsupportedFormatError, IntegrityError)


# Through the CLI: a database writer edits alice's blob.


def _edit_blob(vault: Govern, handle: str, edit: Any) -> None:
    [(blob,)] = sql(
        vault.db,
        "SELECT k.sealed_private FROM person_key k JOIN person p ON p.id = k.person_id"
        " WHERE p.handle = :h AND k.active",
        h=handle,
    )
    assert isinstance(blob, bytes)
    body = json.loads(blob)
    edit(body)
    sql(
        vault.db,
        "UPDATE person_key SET sealed_private = :s WHERE active"
        " AND person_id = (SELECT id FROM person WHERE handle = :h)",
        s=encode(body),
        h=handle,
    )
    MemoryKeyring.entries.clear()  # no cached key: the passphrase path


@pytest.mark.tampers
@pytest.mark.parametrize("edit", ["iterations", "salt"], ids=str)
def test_kdf_parameters_edited_in_a_blob_are_exit_6(vault: Govern, edit: str) -> None:
    _edit_blob(vault, "alice", EDITS[edit])
    result = vault("secret", "show", "x-acme")
    assert result.code == 6, result.err
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err


@pytest.mark.tampers
def test_huge_kdf_parameters_in_the_database_are_exit_6_at_once(vault: Govern, no_derivation: None) -> None:
    """Refused before deriving: ``no_derivation`` fails the test if Argon2id is asked to run."""
    _edit_blob(vault, "alice", lambda b: b.update(kdf=dict(HUGE)))
    MemoryKeyring.entries.clear()
    result = vault("secret", "show", "x-acme")
    assert result.code == 6, result.err
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_wrong_passphrase_is_still_exit_5(vault: Govern) -> None:
    MemoryKeyring.entries.clear()
    result = vault("secret", "show", "x-acme", passphrase="not alice's passphrase")
    assert result.code == 5, result.err
    assert "wrong passphrase" in result.err
    vault.ok("secret", "show", "x-acme", passphrase=passphrase_of("alice"))
