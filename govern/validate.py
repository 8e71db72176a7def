"""Validation of every piece of user input. Errors are :class:`InvalidInput` (exit 2)."""

import re
import unicodedata

from govern.errors import InvalidInput

ROLES = ("member", "manager", "admin", "auditor")
PLATFORMS = ("x", "instagram", "facebook", "linkedin", "tiktok", "youtube", "other")
FIELDS = ("password", "username", "totp-uri", "recovery-codes")

_HANDLE = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")


def _no_controls(text: str, what: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text):
        raise InvalidInput(f"{what} contains control characters")
    return text


def handle(text: str) -> str:
    if not _HANDLE.fullmatch(text):
        raise InvalidInput(
            f"invalid handle {text!r}: 1-32 characters, lower-case letters, digits, '.', '_' or '-',"
            " starting with a letter"
        )
    return text


def slug(text: str) -> str:
    if not _SLUG.fullmatch(text):
        raise InvalidInput(f"invalid account name {text!r}: 1-63 lower-case letters, digits or '-', like x-acme")
    return text


def text(value: str, what: str, *, max_length: int = 200, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidInput(f"{what} must not be empty")
    if len(cleaned) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters")
    return _no_controls(cleaned, what)


def reason(value: str) -> str:
    return text(value, "reason", max_length=1000)


def email(value: str) -> str:
    cleaned = value.strip()
    if not _EMAIL.fullmatch(cleaned):
        raise InvalidInput(f"invalid email address {value!r}")
    return _no_controls(cleaned, "email")


def role(value: str) -> str:
    if value not in ROLES:
        raise InvalidInput(f"invalid role {value!r}: one of {', '.join(ROLES)}")
    return value


def platform(value: str) -> str:
    cleaned = value.strip().lower()
    if cleaned == "twitter":
        cleaned = "x"
    if cleaned not in PLATFORMS:
        raise InvalidInput(f"unknown platform {value!r}: one of {', '.join(PLATFORMS)}")
    return cleaned


def field(value: str) -> str:
    if value not in FIELDS:
        raise InvalidInput(f"unknown field {value!r}: one of {', '.join(FIELDS)}")
    return value


def max_holders(value: int) -> int:
    if not 1 <= value <= 100:
        raise InvalidInput("--max-holders must be between 1 and 100")
    return value


def passphrase(value: str) -> str:
    if len(value) < 12:
        raise InvalidInput("a passphrase needs at least 12 characters")
    if len(value) > 1024:
        raise InvalidInput("a passphrase is limited to 1024 characters")
    if "\n" in value or "\r" in value:
        raise InvalidInput("a passphrase cannot contain a line break")
    return value


def secret_value(value: str, what: str) -> str:
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > 4096:
        raise InvalidInput(f"{what} is longer than 4096 characters")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise InvalidInput(f"{what} cannot contain line breaks or NUL")
    return value


def is_uuid(value: str) -> bool:
    """True for the canonical text of a UUID (a vault id), as a file name may safely hold it."""
    import uuid

    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        return False
