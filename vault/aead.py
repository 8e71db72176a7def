"""AES-256-GCM sealing with a format byte and one error for every failure."""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityError

FORMAT_V1 = 0x01
NONCE_BYTES = 12
DATA_KEY_BYTES = 32
_TAG_BYTES = 16


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key."""
    return os.urandom(DATA_KEY_BYTES)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key``, bound to ``associated_data``.

    Layout: ``0x01 || nonce(12) || ciphertext || tag(16)``.
    """
    if len(key) != DATA_KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_BYTES)
    return bytes([FORMAT_V1]) + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`; any failure is :class:`IntegrityError`."""
    if len(key) != DATA_KEY_BYTES or len(blob) < 1 + NONCE_BYTES + _TAG_BYTES or blob[0] != FORMAT_V1:
        raise IntegrityError()
    nonce = blob[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + NONCE_BYTES :], associated_data)
    except InvalidTag:
        raise IntegrityError() from None
