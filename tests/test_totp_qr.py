"""``secret set --totp-qr IMAGE``: QR screenshots drawn by segno, decoded by zxing-cpp; Google
Authenticator export QRs (``otpauth-migration://``) with a protobuf payload built here."""

import base64
import struct
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
import segno
from conftest import CANARY_SEED, Govern

from govern.errors import InvalidInput
from govern.services.totpqr import migration_entries

SECOND = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"  # another 160-bit seed


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def otp(seed: str, name: str, issuer: str, *, algorithm: int = 1, digits: int = 1, kind: int = 2) -> bytes:
    secret = base64.b32decode(seed + "=" * (-len(seed) % 8))
    return b"".join(
        (
            _field(1, secret),
            _field(2, name.encode()),
            _field(3, issuer.encode()),
            _field(4, algorithm),
            _field(5, digits),
            _field(6, kind),
        )
    )


def migration(*entries: bytes) -> str:
    payload = b"".join(_field(1, e) for e in entries) + _field(2, 1) + _field(3, 1) + _field(4, 0) + _field(5, 77)
    return "otpauth-migration://offline?data=" + quote(base64.b64encode(payload).decode(), safe="")


def qr_png(text: str, path: Path) -> Path:
    segno.make(text, error="m").save(str(path), kind="png", scale=5, border=4)
    return path


def stored(g: Govern) -> str:
    return g.ok("secret", "show", "x-acme", "--field", "totp-uri").out.strip()


def test_a_setup_qr_screenshot_sets_the_seed(vault: Govern, tmp_path: Path) -> None:
    image = qr_png(f"otpauth://totp/X:acme?secret={CANARY_SEED.lower()}&issuer=X", tmp_path / "qr.png")
    result = vault.ok("secret", "set", "x-acme", "--totp-qr", str(image))
    assert CANARY_SEED not in result.err + result.out
    assert stored(vault) == f"otpauth://totp/X:acme?secret={CANARY_SEED}&issuer=X"


def test_an_export_qr_lists_its_accounts_and_imports_the_one_chosen(vault: Govern, tmp_path: Path) -> None:
    image = qr_png(migration(otp(SECOND, "acme-ig", "Instagram"), otp(CANARY_SEED, "acme", "X")), tmp_path / "ga.png")
    listed = vault("secret", "set", "x-acme", "--totp-qr", str(image))
    assert listed.code == 2
    assert "1  Instagram  acme-ig  (totp)" in listed.err
    assert "2  X  acme  (totp)" in listed.err
    assert "--totp-qr-entry" in listed.err
    assert CANARY_SEED not in listed.err
    assert SECOND not in listed.err
    vault.ok("secret", "set", "x-acme", "--totp-qr", str(image), "--totp-qr-entry", "2")
    uri = stored(vault)
    assert uri.startswith("otpauth://totp/X:acme?")
    assert f"secret={CANARY_SEED}" in uri
    code = vault.ok("totp", "x-acme", "--json").json()["code"]
    assert len(code) == 6


def test_an_export_qr_of_one_account_needs_no_choice(vault: Govern, tmp_path: Path) -> None:
    image = qr_png(migration(otp(CANARY_SEED, "acme", "X", algorithm=2, digits=2)), tmp_path / "one.png")
    vault.ok("secret", "set", "x-acme", "--totp-qr", str(image))
    uri = stored(vault)
    assert "algorithm=SHA256" in uri
    assert "digits=8" in uri


def test_hotp_and_md5_entries_are_listed_but_refused(vault: Govern, tmp_path: Path) -> None:
    image = qr_png(
        migration(otp(SECOND, "counter", "Bank", kind=1), otp(CANARY_SEED, "old", "Legacy", algorithm=4)),
        tmp_path / "bad.png",
    )
    for entry, says in (("1", "TOTP"), ("2", "MD5")):
        result = vault("secret", "set", "x-acme", "--totp-qr", str(image), "--totp-qr-entry", entry)
        assert result.code == 2
        assert says in result.err
    out_of_range = vault("secret", "set", "x-acme", "--totp-qr", str(image), "--totp-qr-entry", "3")
    assert out_of_range.code == 2
    assert "1-2" in out_of_range.err


def test_an_image_without_a_qr_code_is_refused(vault: Govern, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    result = vault("secret", "set", "x-acme", "--totp-qr", str(blank))
    assert result.code == 2
    assert "no QR code" in result.err
    other = qr_png("https://example.com/not-a-seed", tmp_path / "url.png")
    assert "no otpauth" in vault("secret", "set", "x-acme", "--totp-qr", str(other)).err


def test_a_file_that_is_not_an_image_is_refused(vault: Govern, tmp_path: Path) -> None:
    path = tmp_path / "not.png"
    path.write_bytes(b"GIF89a" + b"\x00" * 20)
    result = vault("secret", "set", "x-acme", "--totp-qr", str(path))
    assert result.code == 2
    assert vault("secret", "set", "x-acme", "--totp-qr", "/dev/zero").code == 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_decompression_bomb_image_is_refused_before_decoding(vault: Govern, tmp_path: Path) -> None:
    """A few hundred bytes of PNG claiming 100,000 x 100,000 pixels."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    result = vault("secret", "set", "x-acme", "--totp-qr", str(path))
    assert result.code == 2
    assert "pixels" in result.err or "not an image" in result.err


@pytest.mark.parametrize(
    "payload",
    [
        _field(1, b"\x0a\xff\xff\xff\xff\x0f"),  # a seed claiming 4 GiB
        b"\x0a\x05\x0a\x03ab",  # truncated inside an entry
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a varint that never ends
        b"\x0b",  # a group (wire type 3)
        _field(1, _field(1, b"x" * 200)),  # a seed longer than any HMAC key
        _field(1, _field(2, b"\xff\xfe")),  # a name that is not UTF-8
        b"",  # no accounts
    ],
)
def test_malformed_export_payloads_are_refused(payload: bytes) -> None:
    uri = "otpauth-migration://offline?data=" + quote(base64.b64encode(payload).decode(), safe="")
    with pytest.raises(InvalidInput):
        migration_entries(uri)


def test_export_payload_with_unescaped_plus_still_reads() -> None:
    payload = _field(1, otp(CANARY_SEED, "acme~~", "X>"))
    text = base64.b64encode(payload).decode()
    assert "+" in text  # a query parser reads a bare "+" as a space
    entries = migration_entries("otpauth-migration://offline?data=" + text)
    assert entries[0].name == "acme~~"
    assert f"secret={CANARY_SEED}" in str(entries[0].uri)
