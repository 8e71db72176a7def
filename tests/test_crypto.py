"""The vault package: AEAD, KDF floor, key blobs, wraps, signatures, recovery keys."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import (
    DEFAULT_PARAMS,
    MINIMUM_PARAMS,
    BadPassphraseError,
    IntegrityError,
    KdfParams,
    PersonKeys,
    RecoveryKey,
    SealedKeyBlob,
    WeakParametersError,
    aad,
    new_data_key,
    open_sealed,
    seal,
    unwrap_key,
    verify_signature,
    wrap_key,
)
from vault.kdf import derive

FAST = MINIMUM_PARAMS


@given(plaintext=st.binary(max_size=2048), associated=st.binary(max_size=128))
def test_seal_open_round_trip(plaintext: bytes, associated: bytes) -> None:
    key = new_data_key()
    assert open_sealed(key, seal(key, plaintext, associated), associated) == plaintext


@given(data=st.data())
@settings(max_examples=60)
def test_any_flipped_byte_fails_to_open(data: st.DataObject) -> None:
    key = new_data_key()
    blob = bytearray(seal(key, b"password", b"ad"))
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(IntegrityError):
        open_sealed(key, bytes(blob), b"ad")


def test_wrong_associated_data_or_key_fails_the_same_way() -> None:
    key = new_data_key()
    blob = seal(key, b"secret", aad("field", "v", 1, "password", 1))
    errors = []
    for attempt in (
        lambda: open_sealed(key, blob, aad("field", "v", 2, "password", 1)),
        lambda: open_sealed(key, blob, aad("field", "v", 1, "username", 1)),
        lambda: open_sealed(key, blob, aad("field", "v", 1, "password", 2)),
        lambda: open_sealed(new_data_key(), blob, aad("field", "v", 1, "password", 1)),
        lambda: open_sealed(key, blob[:10], aad("field", "v", 1, "password", 1)),
    ):
        with pytest.raises(IntegrityError) as caught:
            attempt()
        errors.append(str(caught.value))
    assert len(set(errors)) == 1, "every failure must read the same"


def test_aad_encoding_is_injective() -> None:
    assert aad("ab", "c") != aad("a", "bc")
    assert aad(1, "2") != aad("1", "2")
    assert aad("x") != aad(b"x")


def test_kdf_floor_is_enforced() -> None:
    assert KdfParams(65536, 3, 4) == DEFAULT_PARAMS
    for weak in (KdfParams(19455, 2, 1), KdfParams(19456, 1, 1), KdfParams(19456, 2, 0)):
        with pytest.raises(WeakParametersError):
            weak.validate()
    with pytest.raises(WeakParametersError):
        derive("passphrase", b"s" * 16, KdfParams(8192, 1, 1))
    with pytest.raises(WeakParametersError):
        KdfParams.parse("m=1024,t=1,p=1")
    assert KdfParams.parse("m=19456,t=2,p=1") == MINIMUM_PARAMS


def test_key_blob_round_trip_and_wrong_passphrase() -> None:
    keys = PersonKeys.generate()
    blob, kek = keys.seal("a long passphrase", FAST)
    parsed = SealedKeyBlob.parse(blob)
    assert parsed.params == FAST
    assert parsed.fingerprint == keys.public.fingerprint
    assert parsed.open(kek).public == keys.public
    assert parsed.open(parsed.derive_kek("a long passphrase")).public == keys.public
    with pytest.raises(BadPassphraseError):
        parsed.open(parsed.derive_kek("a wrong passphrase"))
    assert b"a long passphrase" not in blob


def test_key_blob_refuses_weak_parameters_written_into_it() -> None:
    keys = PersonKeys.generate()
    blob, _ = keys.seal("a long passphrase", FAST)
    body = json.loads(blob)
    body["kdf"] = {"m": 1024, "t": 1, "p": 1}
    with pytest.raises(IntegrityError):
        SealedKeyBlob.parse(json.dumps(body).encode())
    with pytest.raises(IntegrityError):
        SealedKeyBlob.parse(b"not json")


def test_key_blob_swapped_between_people_fails() -> None:
    alice, mallory = PersonKeys.generate(), PersonKeys.generate()
    blob, kek = alice.seal("alice passphrase", FAST)
    body = json.loads(blob)
    body["fp"] = mallory.public.fingerprint  # claim the blob belongs to someone else
    with pytest.raises(BadPassphraseError):
        SealedKeyBlob.parse(json.dumps(body).encode()).open(kek)


def test_wrap_opens_only_for_its_recipient_and_binding() -> None:
    bob, eve = PersonKeys.generate(), PersonKeys.generate()
    data_key = new_data_key()
    binding = aad("wrap", "vault", 1, 1, bob.public.fingerprint)
    wrap = wrap_key(data_key, bob.public.x25519, binding)
    assert unwrap_key(wrap, bob.x25519, binding) == data_key
    with pytest.raises(IntegrityError):
        unwrap_key(wrap, eve.x25519, binding)
    with pytest.raises(IntegrityError):
        unwrap_key(wrap, bob.x25519, aad("wrap", "vault", 2, 1, bob.public.fingerprint))
    tampered = bytearray(wrap)
    tampered[5] ^= 1
    with pytest.raises(IntegrityError):
        unwrap_key(bytes(tampered), bob.x25519, binding)


def test_signatures() -> None:
    keys = PersonKeys.generate()
    signature = keys.sign(b"message")
    verify_signature(keys.public.ed25519, b"message", signature)
    with pytest.raises(IntegrityError):
        verify_signature(keys.public.ed25519, b"messagE", signature)
    with pytest.raises(IntegrityError):
        verify_signature(PersonKeys.generate().public.ed25519, b"message", signature)


def test_recovery_key_export_round_trip_and_typo_detection() -> None:
    recovery = RecoveryKey.generate()
    text = recovery.export()
    assert text.startswith("GOVERN-RECOVERY-1-")
    assert RecoveryKey.load(text.lower()).public == recovery.public
    wrap = wrap_key(new_data_key(), recovery.public, b"ad")
    assert len(unwrap_key(wrap, RecoveryKey.load(text).private, b"ad")) == 32
    typo = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]
    with pytest.raises(IntegrityError):
        RecoveryKey.load(typo)
