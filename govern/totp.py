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


def validate_uri(uri: str) -> str:
    """Check an ``otpauth://totp/…`` URI; the error never repeats the URI (it holds the seed)."""
    cleaned = uri.strip()
    try:
        parsed = urlparse(cleaned)
        query = parse_qs(parsed.query)
    except ValueError:
        raise InvalidInput("the TOTP URI is not a valid otpauth:// URI") from None
    if parsed.scheme != "otpauth" or parsed.netloc != "totp":
        raise InvalidInput("the TOTP URI must start with otpauth://totp/")
    secret = (query.get("secret") or [""])[0]
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
    import base64
    import binascii

    try:
        raw = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput("the TOTP URI's secret is not valid base32") from None
    if len(raw) < 10:
        raise InvalidInput("the TOTP URI's secret is shorter than 80 bits")
    return cleaned


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
