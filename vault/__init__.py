"""Cryptography and key custody for govern.

This package knows no database and no command line. It seals values with
AES-256-GCM, derives passphrase keys with Argon2id, wraps data keys to X25519
recipients (age-style) and signs with Ed25519. Every stored format starts with a
version byte, and every failure to open a sealed value is one error,
:class:`vault.errors.IntegrityError`, whatever check failed.
"""

from vault.aead import DATA_KEY_BYTES, new_data_key, open_sealed, seal
from vault.encoding import aad
from vault.errors import BadPassphraseError, IntegrityError, VaultError, WeakParametersError
from vault.kdf import DEFAULT_PARAMS, MINIMUM_PARAMS, KdfParams
from vault.keys import PersonKeys, PublicKeys, RecoveryKey, SealedKeyBlob, verify_signature
from vault.wrap import unwrap_key, wrap_key

__all__ = [
    "DATA_KEY_BYTES",
    "DEFAULT_PARAMS",
    "MINIMUM_PARAMS",
    "BadPassphraseError",
    "IntegrityError",
    "KdfParams",
    "PersonKeys",
    "PublicKeys",
    "RecoveryKey",
    "SealedKeyBlob",
    "VaultError",
    "WeakParametersError",
    "aad",
    "new_data_key",
    "open_sealed",
    "seal",
    "unwrap_key",
    "verify_signature",
    "wrap_key",
]
