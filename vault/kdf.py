"""Argon2id parameters and derivation (RFC 9106), with a floor that is enforced."""

import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from vault.errors import WeakParametersError

SALT_BYTES = 16
KEY_BYTES = 32

# Documented ceilings (docs/adr/0001-argon2id.md): a key blob asking for more is refused
# as an integrity failure when it is parsed, before any derivation, so a tampered blob
# cannot ask for an unlock that never ends. GOVERN_KDF cannot ask for more either.
MAX_MEMORY_KIB = 2 * 1024 * 1024  # 2 GiB
MAX_ITERATIONS = 16
MAX_LANES = 16


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters: memory in KiB, iterations (t) and lanes (p)."""

    memory_kib: int
    iterations: int
    lanes: int

    def validate(self) -> "KdfParams":
        """Return ``self`` if within the floor and bounds, else raise."""
        floor = MINIMUM_PARAMS
        if self.memory_kib < floor.memory_kib or self.iterations < floor.iterations or self.lanes < floor.lanes:
            raise WeakParametersError(f"Argon2id parameters {self} are below the floor {floor}")
        if (
            self.memory_kib > MAX_MEMORY_KIB
            or self.iterations > MAX_ITERATIONS
            or self.lanes > MAX_LANES
            or self.memory_kib < 8 * self.lanes
        ):
            raise WeakParametersError(
                f"Argon2id parameters {self} are out of range"
                f" (at most m={MAX_MEMORY_KIB},t={MAX_ITERATIONS},p={MAX_LANES}, and m >= 8*p)"
            )
        return self

    def __str__(self) -> str:
        return f"m={self.memory_kib},t={self.iterations},p={self.lanes}"

    def to_dict(self) -> dict[str, int]:
        return {"m": self.memory_kib, "t": self.iterations, "p": self.lanes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KdfParams":
        try:
            values = (data["m"], data["t"], data["p"])
            if not all(type(value) is int for value in values):
                raise TypeError("Argon2id parameters are integers")
            params = cls(*values)
        except (KeyError, TypeError, ValueError) as exc:
            raise WeakParametersError("malformed Argon2id parameters") from exc
        return params.validate()

    @classmethod
    def parse(cls, text: str) -> "KdfParams":
        """Parse ``m=65536,t=3,p=4`` (memory in KiB)."""
        match = re.fullmatch(r"\s*m=(\d{1,9})\s*,\s*t=(\d{1,4})\s*,\s*p=(\d{1,4})\s*", text)
        if not match:
            raise WeakParametersError(f"cannot read Argon2id parameters {text!r}: expected m=KIB,t=N,p=N")
        return cls(int(match[1]), int(match[2]), int(match[3])).validate()


DEFAULT_PARAMS = KdfParams(memory_kib=64 * 1024, iterations=3, lanes=4)
MINIMUM_PARAMS = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1)
MAXIMUM_PARAMS = KdfParams(memory_kib=MAX_MEMORY_KIB, iterations=MAX_ITERATIONS, lanes=MAX_LANES)


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    """Derive a 32-byte key from ``passphrase`` with Argon2id."""
    params.validate()  # the floor and the ceilings, before any work
    if len(salt) < SALT_BYTES:
        raise WeakParametersError("Argon2id salt is shorter than 16 bytes")
    kdf = Argon2id(
        salt=salt,
        length=KEY_BYTES,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive(passphrase.encode("utf-8"))
