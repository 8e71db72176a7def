"""TOTP (RFC 6238) from ``otpauth://`` URIs, with the clock passed in."""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from govern.errors import InvalidInput

_ALGORITHMS: dict[str, Any] = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


@dataclass(frozen=True)
class TotpCode:
    code: str
    seconds_left: int
    period: int


def _totp(secret: str, digits: int, period: int, algorithm: str) -> Any:
    import pyotp

    class _Totp(pyotp.TOTP):
        # Platforms still issue 80-bit seeds (16 base32 characters); pyotp wants 112.
        min_secret_length_bits = 80

    return _Totp(secret, digits=digits, interval=period, digest=_ALGORITHMS[algorithm])


# RFC 4226 section 4, requirement R6: "The length of the shared secret MUST be at least 128
# bits. This document RECOMMENDs a shared secret length of 160 bits." The seed is chosen by the
# platform, not by us, and platforms still issue 80-bit seeds (16 base32 characters), so govern
# refuses only what no authenticator should accept (under 80 bits) and warns under 128.
MIN_SEED_BITS = 80
RFC_SEED_BITS = 128
_MAX_SEED_CHARS = 1024  # 640 bytes: far above any HMAC key a platform issues
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def normalise_key(key: str, what: str = "the 2FA key") -> str:
    """A base32 seed as platforms show it, in the canonical form: upper case, no spaces, dashes or padding.

    Accepts ``jbsw y3dp ehpk 3pxp``, ``JBSW-Y3DP-EHPK-3PXP`` and padded keys alike; the error
    never repeats the key.
    """
    compact = "".join(key.split()).replace("-", "").upper().rstrip("=")
    if not compact:
        raise InvalidInput(f"{what} is empty")
    if len(compact) > _MAX_SEED_CHARS:
        raise InvalidInput(f"{what} is longer than {_MAX_SEED_CHARS} base32 characters")
    if not set(compact) <= _BASE32 or len(compact) % 8 in (1, 3, 6):
        raise InvalidInput(f"{what} is not valid base32 (letters A-Z and digits 2-7)")
    import base64
    import binascii

    try:
        raw = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} is not valid base32 (letters A-Z and digits 2-7)") from None
    if len(raw) * 8 < MIN_SEED_BITS:
        raise InvalidInput(
            f"{what} holds {len(raw) * 8} bits; at least {MIN_SEED_BITS} are needed"
            f" (RFC 4226 asks for {RFC_SEED_BITS}): copy the whole key the platform shows"
        )
    return compact


def seed_bits(uri: str) -> int:
    """The length in bits of the seed of a URI already checked by ``validate_uri``."""
    import base64

    secret = parse_qs(urlparse(uri).query)["secret"][0]
    return len(base64.b32decode(secret + "=" * (-len(secret) % 8))) * 8


def uri_from_key(key: str, label: str) -> str:
    """An ``otpauth://totp/`` URI for a bare key (SHA1, 6 digits, 30 s: what a bare key means)."""
    from urllib.parse import quote

    return f"otpauth://totp/{quote(label, safe='')}?secret={normalise_key(key)}"


def validate_uri(uri: str) -> str:
    """Check an ``otpauth://totp/…`` URI and return it with its secret normalised.

    The error never repeats the URI (it holds the seed).
    """
    from urllib.parse import parse_qsl, quote, urlencode, urlunparse

    cleaned = uri.strip()
    try:
        parsed = urlparse(cleaned)
        query = parse_qs(parsed.query)
        pairs = parse_qsl(parsed.query, keep_blank_values=True)
    except ValueError:
        raise InvalidInput("the TOTP URI is not a valid otpauth:// URI") from None
    if parsed.scheme.lower() != "otpauth" or parsed.netloc.lower() != "totp":
        raise InvalidInput("the TOTP URI must start with otpauth://totp/")
    secrets = query.get("secret") or []
    if len(secrets) != 1:
        raise InvalidInput("the TOTP URI must carry exactly one secret= parameter")
    algorithm = (query.get("algorithm") or ["SHA1"])[0].upper()
    if algorithm not in _ALGORITHMS:
        raise InvalidInput("the TOTP URI names an unsupported algorithm (use SHA1, SHA256 or SHA512)")
    try:
        digits = int((query.get("digits") or ["6"])[0])
        period = int((query.get("period") or ["30"])[0])
    except ValueError:
        raise InvalidInput("the TOTP URI has a non-numeric digits or period") from None
    if digits not in (6, 7, 8) or not 10 <= period <= 300:
        raise InvalidInput("the TOTP URI needs 6-8 digits and a period of 10-300 seconds")
    secret = normalise_key(secrets[0], "the TOTP URI's secret")
    if secret == secrets[0] and parsed.scheme == "otpauth" and parsed.netloc == "totp":
        return cleaned
    query_text = urlencode([(k, secret if k == "secret" else v) for k, v in pairs], quote_via=quote)
    return urlunparse(("otpauth", "totp", parsed.path, parsed.params, query_text, parsed.fragment))


def code_at(uri: str, moment: datetime) -> TotpCode:
    parsed = urlparse(validate_uri(uri))
    query = parse_qs(parsed.query)
    secret = query["secret"][0].upper()
    digits = int((query.get("digits") or ["6"])[0])
    period = int((query.get("period") or ["30"])[0])
    algorithm = (query.get("algorithm") or ["SHA1"])[0].upper()
    return code_for(secret, moment, digits=digits, period=period, algorithm=algorithm)


def code_for(
    secret_b32: str, moment: datetime, *, digits: int = 6, period: int = 30, algorithm: str = "SHA1"
) -> TotpCode:
    if moment.tzinfo is None:
        raise ValueError("TOTP needs a timezone-aware time")
    timestamp = int(moment.timestamp())
    code = _totp(secret_b32, digits, period, algorithm).at(timestamp)
    return TotpCode(code=str(code), seconds_left=period - timestamp % period, period=period)
