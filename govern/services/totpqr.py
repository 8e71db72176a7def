"""2FA seeds from QR screenshots: an ``otpauth://totp/`` code, or a Google Authenticator export.

The image is decoded by zxing-cpp (a maintained decoder; the ``qr`` extra) after Pillow has
checked its size; the export's ``otpauth-migration://offline?data=…`` payload is a small
protobuf (``MigrationPayload``, as in Google Authenticator's export and dim13/otpauth's
``migration.proto``), read here by a bounded reader that refuses anything it does not expect.
Nothing here ever puts a seed in an error message.
"""

import base64
import binascii
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlparse

from govern.errors import InvalidInput
from govern.totp import validate_uri

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 4K screenshot is 8.3 million
MAX_PAYLOAD = 8 * 1024  # a QR code holds at most 2,953 bytes
MAX_ENTRIES = 64
MAX_SECRET = 128  # bytes; an HMAC-SHA512 key is 64
_ALGORITHMS = {0: "SHA1", 1: "SHA1", 2: "SHA256", 3: "SHA512"}  # 4 is MD5: refused
_DIGITS = {0: 6, 1: 6, 2: 8}


@dataclass(frozen=True)
class MigrationEntry:
    """One account of a Google Authenticator export; ``uri`` holds the seed and is never shown."""

    number: int
    issuer: str
    name: str
    kind: str  # totp, hotp or unknown
    uri: str | None  # None when govern cannot store it (HOTP, MD5)
    why_not: str = ""


def qr_texts(raw: bytes) -> list[str]:
    """The text of every QR code in an image (PNG, JPEG, …)."""
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise InvalidInput("reading QR images needs the qr extra: pip install 'govern[qr]'") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Any = Image.open(io.BytesIO(raw))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidInput(f"the image is {width}x{height} pixels: larger than a screenshot ({MAX_PIXELS})")
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("the file is not an image govern can read (PNG, JPEG, GIF, BMP, WebP)") from None
    except (OSError, ValueError, SyntaxError):
        raise InvalidInput("the image is damaged or truncated") from None
    results = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode))
    return [r.text for r in results if r.valid and r.text]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 64, 7):
        if at >= len(data):
            raise InvalidInput("the export QR's payload is truncated")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
    raise InvalidInput("the export QR's payload holds a malformed number")


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of a protobuf message: varints and length-delimited fields only."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise InvalidInput("the export QR's payload is malformed")
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            length, at = _varint(data, at)
            if length > len(data) - at:
                raise InvalidInput("the export QR's payload is truncated")
            yield number, data[at : at + length]
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            if at > len(data):
                raise InvalidInput("the export QR's payload is truncated")
        else:
            raise InvalidInput("the export QR's payload is malformed")


def _text(value: int | bytes, what: str) -> str:
    if not isinstance(value, bytes) or len(value) > 512:
        raise InvalidInput(f"the export QR's {what} is malformed")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the export QR's {what} is not UTF-8") from None


def _parameters(number: int, message: bytes) -> tuple[bytes, str, str, dict[int, int]]:
    """``(secret, name, issuer, {4: algorithm, 5: digits, 6: type})`` of one ``OtpParameters``."""
    secret = b""
    name = issuer = ""
    numbers: dict[int, int] = {}
    for field, value in _fields(message):
        if field == 1:
            if not isinstance(value, bytes) or not 0 < len(value) <= MAX_SECRET:
                raise InvalidInput(f"entry {number} of the export QR has a malformed seed")
            secret = value
        elif field in (2, 3):
            text = _text(value, "account name" if field == 2 else "issuer")
            name, issuer = (text, issuer) if field == 2 else (name, text)
        elif field in (4, 5, 6):
            if not isinstance(value, int):
                raise InvalidInput(f"entry {number} of the export QR is malformed")
            numbers[field] = value
    return secret, name, issuer, numbers


def _entry(number: int, message: bytes) -> MigrationEntry:
    secret, name, issuer, numbers = _parameters(number, message)
    algorithm, digits, kind = numbers.get(4, 0), numbers.get(5, 0), numbers.get(6, 0)
    label = {0: "totp", 1: "hotp", 2: "totp"}.get(kind, "unknown")
    why_not = ""
    if label != "totp":
        why_not = "not a time-based (TOTP) seed"
    elif algorithm not in _ALGORITHMS:
        why_not = "an algorithm govern does not accept (MD5)"
    elif digits not in _DIGITS:
        why_not = "an unknown number of digits"
    elif not secret:
        why_not = "no seed"
    uri = None
    if not why_not:
        key = base64.b32encode(secret).decode().rstrip("=")
        params = {"secret": key, "algorithm": _ALGORITHMS[algorithm], "digits": str(_DIGITS[digits]), "period": "30"}
        if issuer:
            params["issuer"] = issuer
        account = f"{issuer}:{name}" if issuer else name or "account"
        uri = validate_uri(f"otpauth://totp/{quote(account, safe=':@')}?{urlencode(params, quote_via=quote)}")
    return MigrationEntry(number=number, issuer=issuer, name=name, kind=label, uri=uri, why_not=why_not)


def migration_entries(text: str) -> list[MigrationEntry]:
    """The accounts of an ``otpauth-migration://offline?data=…`` URI (Google Authenticator's export)."""
    parsed = urlparse(text.strip())
    # A "+" left unescaped would read as a space: base64 has no spaces, so put it back.
    data = (parse_qs(parsed.query).get("data") or [""])[0].replace(" ", "+")
    if not data or len(data) > MAX_PAYLOAD * 2:
        raise InvalidInput("the export QR holds no payload, or one larger than a QR code can hold")
    try:
        payload = base64.b64decode(
            data + "=" * (-len(data) % 4), altchars=b"-_" if "-" in data or "_" in data else None
        )
    except (binascii.Error, ValueError):
        raise InvalidInput("the export QR's payload is not base64") from None
    entries: list[MigrationEntry] = []
    for field, value in _fields(payload):
        if field == 1:
            if not isinstance(value, bytes):
                raise InvalidInput("the export QR's payload is malformed")
            if len(entries) >= MAX_ENTRIES:
                raise InvalidInput(f"the export QR lists more than {MAX_ENTRIES} accounts")
            entries.append(_entry(len(entries) + 1, value))
    if not entries:
        raise InvalidInput("the export QR lists no accounts")
    return entries


def uri_from_qr_text(texts: list[str]) -> tuple[str | None, list[MigrationEntry]]:
    """An ``otpauth://totp/`` URI found in the codes, else the entries of a migration export."""
    for text in texts:
        if text.lower().startswith("otpauth://totp/"):
            return validate_uri(text), []
    for text in texts:
        if text.lower().startswith("otpauth-migration://"):
            return None, migration_entries(text)
    if any(t.lower().startswith("otpauth://hotp/") for t in texts):
        raise InvalidInput("the QR code holds a counter-based (HOTP) seed: govern stores time-based (TOTP) seeds")
    if not texts:
        raise InvalidInput("no QR code found in the image: crop the screenshot around the code, or use --totp-key")
    raise InvalidInput("the QR code holds no otpauth:// URI (is it a 2FA setup code?)")
