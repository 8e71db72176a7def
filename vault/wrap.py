"""Age-style wrapping of data keys to X25519 recipients.

``wrap = 0x01 || ephemeral_public(32) || AES-256-GCM(kek, data_key, aad)`` where
``kek = HKDF-SHA256(ikm=X25519(ephemeral, recipient), salt=ephemeral_public ||
recipient_public, info="govern-wrap/v1")``. The associated data binds the wrap
to its recipient and account, so a wrap copied to another row fails to open.
"""

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vault.aead import DATA_KEY_BYTES, open_sealed, seal
from vault.errors import IntegrityError
from vault.keys import x25519_public_from_bytes

_FORMAT_V1 = 0x01
_INFO = b"govern-wrap/v1"


def _kek(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=_INFO,
    )
    return hkdf.derive(shared)


def wrap_key(data_key: bytes, recipient_public: bytes, associated_data: bytes) -> bytes:
    """Wrap ``data_key`` so only the holder of ``recipient_public``'s private key opens it."""
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError("data keys are 32 bytes")
    recipient = x25519_public_from_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:
        raise IntegrityError("a recipient public key") from None
    kek = _kek(shared, ephemeral_public, recipient_public)
    return bytes([_FORMAT_V1]) + ephemeral_public + seal(kek, data_key, associated_data)


def unwrap_key(blob: bytes, recipient: X25519PrivateKey, associated_data: bytes) -> bytes:
    """Open a wrap made by :func:`wrap_key`; any failure is :class:`IntegrityError`."""
    if len(blob) < 33 or blob[0] != _FORMAT_V1:
        raise IntegrityError("a key wrap")
    ephemeral_public = blob[1:33]
    recipient_public = recipient.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = recipient.exchange(x25519_public_from_bytes(ephemeral_public))
    except (ValueError, IntegrityError):
        raise IntegrityError("a key wrap") from None
    try:
        data_key = open_sealed(_kek(shared, ephemeral_public, recipient_public), blob[33:], associated_data)
    except IntegrityError:
        raise IntegrityError("a key wrap") from None
    if len(data_key) != DATA_KEY_BYTES:
        raise IntegrityError("a key wrap")
    return data_key
