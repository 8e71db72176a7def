"""The vault fingerprint: a short name of one vault's trust root, to compare out of band.

A vault is the log that grows from its genesis event, and its recovery key. Its fingerprint
is computed from both, domain separated (docs/security.md, "Trust roots"):

    digest      = SHA-256( b"govern-vault-fingerprint/v1\\n"
                           || genesis event hash (32 bytes, from its 64 hex digits)
                           || recovery key fingerprint (16 bytes, from its 32 hex digits) )
    fingerprint = base32( digest[:20] ), 32 characters (RFC 4648 alphabet A-Z 2-7, no padding),
                  shown in eight groups of four joined by "-":  ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567

160 bits: a look-alike vault (another genesis, or another recovery key) would need a second
preimage of that prefix. Typed fingerprints are compared case-insensitively, ignoring spaces
and dashes.
"""

import base64
import hashlib
import hmac
import re

DOMAIN = b"govern-vault-fingerprint/v1\n"
_BYTES = 20
_CHARS = 32  # base32 of 20 bytes, no padding
_GROUP = 4
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_TYPED = re.compile(r"[A-Z2-7]{32}")


def vault_fingerprint(genesis: str, recovery_fingerprint: str) -> str:
    """The fingerprint of the vault whose genesis event hash and recovery key fingerprint are given."""
    if not _HEX64.fullmatch(genesis) or not _HEX32.fullmatch(recovery_fingerprint):
        raise ValueError("a genesis hash is 64 hex digits and a recovery key fingerprint 32")
    digest = hashlib.sha256(DOMAIN + bytes.fromhex(genesis) + bytes.fromhex(recovery_fingerprint)).digest()
    text = base64.b32encode(digest[:_BYTES]).decode("ascii")
    return "-".join(text[i : i + _GROUP] for i in range(0, _CHARS, _GROUP))


def normalise(typed: str) -> str | None:
    """A typed fingerprint in its displayed form, or None when it cannot be one."""
    compact = re.sub(r"[\s-]", "", typed).upper()
    if not _TYPED.fullmatch(compact):
        return None
    return "-".join(compact[i : i + _GROUP] for i in range(0, _CHARS, _GROUP))


def same(left: str, right: str) -> bool:
    """Constant-time comparison of two fingerprints in displayed form."""
    return hmac.compare_digest(left.encode("ascii", "replace"), right.encode("ascii", "replace"))
