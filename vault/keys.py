"""Per-person key pairs, their passphrase-sealed storage, and the recovery key.

A person holds an X25519 key pair (to receive wrapped data keys) and an Ed25519
key pair (to sign audit transactions). The two private keys are sealed together
with AES-256-GCM under a key derived from the person's passphrase by Argon2id;
the Argon2id parameters and salt travel inside the blob so they can be raised
later without breaking old blobs.

Format 2 (ADR 0001) authenticates everything in the blob *without* the passphrase:
the person's own Ed25519 key signs the header (algorithm, Argon2id parameters, salt,
public keys) and the ciphertext, and the public keys must hash to the blob's
fingerprint, which the signed audit log vouches for. So an edited parameter, salt or
ciphertext is an integrity failure found before any derivation, and a failure of the
AEAD afterwards can only mean a wrong key: a wrong passphrase. The AEAD's associated
data binds the fingerprint, the parameters and the salt as well.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from vault import kdf
from vault.aead import open_sealed, seal
from vault.encoding import aad
from vault.errors import BadPassphraseError, IntegrityError, UnsupportedFormatError, WeakParametersError

_BLOB_VERSION = 2
_BLOB_ALG = "argon2id+aes-256-gcm+ed25519"
_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
_RAW = (Encoding.Raw, PublicFormat.Raw)
_RECOVERY_PREFIX = "GOVERN-RECOVERY-1-"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class PublicKeys:
    """The public halves of a person's keys and their fingerprint."""

    x25519: bytes
    ed25519: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(aad("person-keys", self.x25519, self.ed25519)).hexdigest()
        return digest[:32]


class PersonKeys:
    """A person's unlocked private keys. Never stored unsealed."""

    def __init__(self, x25519: X25519PrivateKey, ed25519: Ed25519PrivateKey) -> None:
        self.x25519 = x25519
        self.ed25519 = ed25519
        self.public = PublicKeys(
            x25519=x25519.public_key().public_bytes(*_RAW),
            ed25519=ed25519.public_key().public_bytes(*_RAW),
        )

    @classmethod
    def generate(cls) -> "PersonKeys":
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self.ed25519.sign(message)

    def local_key(self, purpose: bytes) -> bytes:
        """A 32-byte key only this person's unlock yields, for ``purpose`` (domain separated).

        HKDF-SHA256 over both private keys, ``info = b"govern-local-key/v1\\n" || purpose``: it
        authenticates what this client keeps on disk for this person (docs/security.md).
        """
        info = b"govern-local-key/v1\n" + purpose
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._private_bytes())

    def _private_bytes(self) -> bytes:
        raw = (Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return self.x25519.private_bytes(*raw) + self.ed25519.private_bytes(*raw)

    def seal(self, passphrase: str, params: kdf.KdfParams) -> tuple[bytes, bytes]:
        """Seal the private keys under ``passphrase``; return ``(blob, kek)``."""
        salt = kdf.new_salt()
        kek = kdf.derive(passphrase, salt, params)
        return self.seal_with_kek(kek, salt, params), kek

    def seal_with_kek(self, kek: bytes, salt: bytes, params: kdf.KdfParams) -> bytes:
        params.validate()
        if len(salt) != kdf.SALT_BYTES:
            raise WeakParametersError(f"Argon2id salt must be {kdf.SALT_BYTES} bytes")
        public = self.public
        ciphertext = seal(kek, self._private_bytes(), _blob_aad(public.fingerprint, params, salt))
        body = {
            "v": _BLOB_VERSION,
            "alg": _BLOB_ALG,
            "kdf": params.to_dict(),
            "salt": _b64(salt),
            "fp": public.fingerprint,
            "pub": {"x25519": _b64(public.x25519), "ed25519": _b64(public.ed25519)},
            "ct": _b64(ciphertext),
            "sig": _b64(self.sign(_header_message(params, salt, public, ciphertext))),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class SealedKeyBlob:
    """A parsed private-key blob: what is needed to derive its key and open it.

    :meth:`parse` refuses, as :class:`IntegrityError` and before any derivation, a blob
    that is malformed, of an unsupported format, asks for Argon2id parameters outside
    the floor and ceilings, or whose signed header and ciphertext were edited.
    """

    params: kdf.KdfParams
    salt: bytes
    fingerprint: str
    ciphertext: bytes
    public: PublicKeys
    signature: bytes

    @classmethod
    def parse(cls, blob: bytes) -> "SealedKeyBlob":
        try:
            body = json.loads(blob)
            if not isinstance(body, dict):
                raise ValueError("a key blob is a JSON object")
            version = body.get("v")
            if version != _BLOB_VERSION and isinstance(version, int) and 0 < version < _BLOB_VERSION:
                raise UnsupportedFormatError(
                    f"a private key blob is in format {version}, which this govern no longer reads"
                    " (its Argon2id parameters were not authenticated): create the vault again"
                )
            if version != _BLOB_VERSION or body.get("alg") != _BLOB_ALG:
                raise ValueError("unknown key blob format")
            parsed = cls(
                params=kdf.KdfParams.from_dict(body["kdf"]),  # floor and ceilings
                salt=_unb64(body["salt"]),
                fingerprint=_text(body["fp"]),
                ciphertext=_unb64(body["ct"]),
                public=PublicKeys(x25519=_unb64(body["pub"]["x25519"]), ed25519=_unb64(body["pub"]["ed25519"])),
                signature=_unb64(body["sig"]),
            )
        except UnsupportedFormatError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, WeakParametersError):
            raise IntegrityError("a private key blob") from None
        parsed._verify_header()
        return parsed

    def _verify_header(self) -> None:
        """The owner's signature over everything but the fingerprint (checked in :meth:`derive_kek`)."""
        if (
            len(self.salt) != kdf.SALT_BYTES
            or len(self.public.x25519) != _KEY_BYTES
            or len(self.public.ed25519) != _KEY_BYTES
            or len(self.signature) != _SIGNATURE_BYTES
        ):
            raise IntegrityError("a private key blob")
        message = _header_message(self.params, self.salt, self.public, self.ciphertext)
        try:
            verify_signature(self.public.ed25519, message, self.signature)
        except IntegrityError:
            raise IntegrityError("a private key blob") from None

    def derive_kek(self, passphrase: str) -> bytes:
        """Argon2id with the blob's (authenticated) parameters and salt.

        A blob whose fingerprint is not that of its own public keys is refused first, so
        a blob re-signed by someone else under a person's fingerprint costs no derivation.
        """
        if self.public.fingerprint != self.fingerprint:
            raise IntegrityError("a private key blob")
        return kdf.derive(passphrase, self.salt, self.params)

    def open(self, kek: bytes) -> PersonKeys:
        """Open with a derived key; a wrong key raises :class:`BadPassphraseError`.

        The header and ciphertext were authenticated by :meth:`parse`, so a failure of
        the AEAD here means the key is wrong (or the blob claims another fingerprint).
        """
        try:
            raw = open_sealed(kek, self.ciphertext, _blob_aad(self.fingerprint, self.params, self.salt))
        except IntegrityError:
            raise BadPassphraseError() from None
        if len(raw) != 64:
            raise IntegrityError("a private key blob")
        keys = PersonKeys(
            X25519PrivateKey.from_private_bytes(raw[:32]),
            Ed25519PrivateKey.from_private_bytes(raw[32:]),
        )
        if keys.public != self.public or keys.public.fingerprint != self.fingerprint:
            raise IntegrityError("a private key blob")
        return keys


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _blob_aad(fingerprint: str, params: kdf.KdfParams, salt: bytes) -> bytes:
    """Associated data of the sealed private keys: whose keys, and how the key was derived."""
    return aad("person-private-keys/v2", fingerprint, params.memory_kib, params.iterations, params.lanes, salt)


def _header_message(params: kdf.KdfParams, salt: bytes, public: PublicKeys, ciphertext: bytes) -> bytes:
    """What the owner signs: everything in the blob but the fingerprint (a hash of ``public``)."""
    return aad(
        "person-key-blob/v2",
        _BLOB_ALG,
        params.memory_kib,
        params.iterations,
        params.lanes,
        salt,
        public.x25519,
        public.ed25519,
        ciphertext,
    )


def verify_signature(ed25519_public: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``signature`` is valid for ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(ed25519_public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise IntegrityError("a signature") from None


class RecoveryKey:
    """The organisation recovery key pair (X25519), kept offline by its custodians.

    It also yields an Ed25519 signing key, derived with HKDF-SHA256 from the X25519
    private key, so that a recovery can prove in the audit log that it was done with
    the real recovery key.
    """

    def __init__(self, private: X25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key().public_bytes(*_RAW)
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"govern-recovery-signing/v1").derive(raw)
        self._signing = Ed25519PrivateKey.from_private_bytes(seed)
        self.signing_public = self._signing.public_key().public_bytes(*_RAW)

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    @classmethod
    def generate(cls) -> "RecoveryKey":
        return cls(X25519PrivateKey.generate())

    @staticmethod
    def fingerprint_of(public: bytes) -> str:
        return hashlib.sha256(aad("recovery-key", public)).hexdigest()[:32]

    @property
    def fingerprint(self) -> str:
        return self.fingerprint_of(self.public)

    def export(self) -> str:
        """Text form for offline safekeeping, with a checksum against typos."""
        raw = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        check = hashlib.sha256(raw).digest()[:4]
        text = base64.b32encode(raw + check).decode("ascii").rstrip("=")
        groups = "-".join(text[i : i + 6] for i in range(0, len(text), 6))
        return _RECOVERY_PREFIX + groups

    @classmethod
    def load(cls, text: str) -> "RecoveryKey":
        cleaned = text.strip().upper()
        if not cleaned.startswith(_RECOVERY_PREFIX):
            raise IntegrityError("a recovery key")
        body = cleaned[len(_RECOVERY_PREFIX) :].replace("-", "")
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            raise IntegrityError("a recovery key") from None
        if len(raw) != 36 or hashlib.sha256(raw[:32]).digest()[:4] != raw[32:]:
            raise IntegrityError("a recovery key")
        return cls(X25519PrivateKey.from_private_bytes(raw[:32]))


def x25519_public_from_bytes(public: bytes) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(public)
    except ValueError:
        raise IntegrityError("a public key") from None
