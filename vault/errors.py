"""Errors raised by the vault package.

Every failure to open a sealed value folds into :class:`IntegrityError`, so a
caller (or an attacker watching error messages) never learns which check failed.
"""


class VaultError(Exception):
    """Base class of every error raised by :mod:`vault`."""


class IntegrityError(VaultError):
    """A sealed value, wrap or signature failed to verify."""

    def __init__(self, what: str = "a sealed value") -> None:
        super().__init__(f"{what} failed to open: it was altered, moved or is corrupt")


class UnsupportedFormatError(IntegrityError):
    """A stored value in a format this version no longer reads (an integrity failure, exit 6)."""

    def __init__(self, message: str) -> None:
        VaultError.__init__(self, message)


class BadPassphraseError(VaultError):
    """The passphrase does not open the private key blob."""

    def __init__(self) -> None:
        super().__init__("wrong passphrase")


class WeakParametersError(VaultError, ValueError):
    """Key-derivation parameters are below the floor or out of range."""
