"""Password manager exports, read into one shape: :class:`Entry`.

Each reader follows what the manager's own exporter writes (see docs/import.md and
tests/data/import/README.md for the source files the shapes were taken from). Errors
are :class:`InvalidInput` naming the file's line (CSV) or entry number (JSON, XML, 1PUX),
never a value from the file: an export holds every password in the clear.

Only a login's *current* password is read: password history (Bitwarden's
``passwordHistory``, 1Password's ``passwordHistory``, KeePass's ``<History>``) is never
looked at, so an old password can never become the current one.
"""

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from govern.errors import InvalidInput

FORMATS = (
    "bitwarden-json",
    "bitwarden-csv",
    "1password-1pux",
    "1password-csv",
    "keepassxc-csv",
    "keepass-xml",
    "lastpass-csv",
    "chrome-csv",
    "csv",
)
# The generic CSV's columns (docs/import.md); account, platform and handle are required.
GENERIC_COLUMNS = (
    "account",
    "platform",
    "handle",
    "username",
    "password",
    "totp",
    "owner",
    "team",
    "rotate-every",
    "notes",
)
# A 1PUX is a zip; only export.data is read, and no more than this of it once inflated.
MAX_1PUX_DATA = 32 * 1024 * 1024
MAX_ENTRIES = 100_000

_UNENCRYPTED_HINT = {
    "bitwarden-json": (
        "this Bitwarden export is encrypted: export again with File format '.json' (not"
        " '.json (Encrypted)'), import it, then shred the file (shred -u FILE)"
    ),
    "keepass-xml": (
        "this is not a plain KeePass XML export (protected values are still encrypted): in KeePass use"
        " File > Export > KeePass XML (2.x), import it, then shred the file (shred -u FILE)"
    ),
}


@dataclass
class Entry:
    """One login as an export holds it; ``where`` names it in messages ("line 4", "item 2")."""

    where: str
    title: str = ""
    url: str = ""
    username: str = ""
    password: str = ""
    # What the export holds for the 2FA seed: an otpauth:// URI or a bare base32 key.
    totp: str = ""
    # Where the TOTP came from: "uri", "rebuilt-uri", "key-column", "custom-field" or "".
    totp_shape: str = ""
    # Only the generic CSV says these; other formats leave them empty.
    account: str = ""
    platform: str = ""
    handle: str = ""
    owner: str = ""
    team: str = ""
    rotate_every: str = ""
    kind: str = "login"  # "login", or what else the manager calls it (skipped)
    dropped: list[str] = field(default_factory=list)  # what the export had that govern does not keep


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def _csv_rows(text: str, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, row)`` for each record, with the header as line 1."""
    reader = csv.reader(io.StringIO(_strip_bom(text)), strict=True)
    line = 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"{fmt}: line {reader.line_num}: malformed CSV ({exc})") from None
        line = reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def _table(
    text: str, fmt: str, known: tuple[str, ...], required: tuple[str, ...], *, lower: bool = True
) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a CSV as ``(where, {column: value})``; the header must be exactly a known column set."""
    rows = _csv_rows(text, fmt)
    first = next(rows, None)
    if first is None:
        raise InvalidInput(f"{fmt}: the file is empty")
    _line, header = first
    names = [h.strip().lower() if lower else h.strip() for h in header]
    unknown = [n for n in names if n not in known]
    missing = [n for n in required if n not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise InvalidInput(
            f"{fmt}: line 1: unknown column set"
            + (f" (unexpected: {', '.join(unknown[:5])})" if unknown else "")
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + f"; expected the columns {', '.join(known)}"
        )
    for count, (line, row) in enumerate(rows, 1):
        if count > MAX_ENTRIES:
            raise InvalidInput(f"{fmt}: more than {MAX_ENTRIES} entries")
        if len(row) != len(names):
            raise InvalidInput(f"{fmt}: line {line}: {len(row)} fields where the header has {len(names)}")
        yield f"line {line}", dict(zip(names, row, strict=True))


def _totp_from_value(value: str, shape_for_uri: str, shape_for_key: str) -> tuple[str, str]:
    value = value.strip()
    if not value:
        return "", ""
    return value, shape_for_uri if value.lower().startswith(("otpauth://", "steam://")) else shape_for_key


# -- Bitwarden ------------------------------------------------------------------------------

_BITWARDEN_CSV = (
    "folder",
    "favorite",
    "type",
    "name",
    "notes",
    "fields",
    "reprompt",
    "login_uri",
    "login_username",
    "login_password",
    "login_totp",
)
_BITWARDEN_ORG_CSV = ("collections", *_BITWARDEN_CSV[2:])


def bitwarden_csv(text: str) -> list[Entry]:
    fmt = "bitwarden-csv"
    known = tuple(dict.fromkeys(_BITWARDEN_CSV + _BITWARDEN_ORG_CSV))
    out = []
    for where, row in _table(text, fmt, known, ("type", "name", "login_uri", "login_username", "login_password")):
        totp, shape = _totp_from_value(row.get("login_totp", ""), "uri", "key-column")
        dropped = [n for n in ("notes", "fields") if row.get(n, "").strip()]
        out.append(
            Entry(
                where=where,
                title=row["name"],
                kind=row["type"].strip() or "login",
                # Several URIs are joined with commas in one cell: the first decides.
                url=row["login_uri"].split(",")[0].strip(),
                username=row["login_username"],
                password=row["login_password"],
                totp=totp,
                totp_shape=shape,
                dropped=dropped,
            )
        )
    return out


def _field_totp(fields: Any) -> tuple[str, str]:
    """A custom field holding the 2FA seed (named like totp, otp, 2fa or one-time password)."""
    for item in fields if isinstance(fields, list) else []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or "").strip().lower()
        value = item.get("value")
        if isinstance(value, str) and value.strip() and name in ("totp", "otp", "2fa", "one-time password", "otpauth"):
            return value.strip(), "custom-field"
    return "", ""


def bitwarden_json(text: str) -> list[Entry]:
    fmt = "bitwarden-json"
    try:
        data = json.loads(_strip_bom(text))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{fmt}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, dict) or ("items" not in data and "encrypted" not in data):
        raise InvalidInput(f"{fmt}: not a Bitwarden JSON export (no 'items')")
    if data.get("encrypted") is True or "passwordProtected" in data or "encKeyValidation_DO_NOT_EDIT" in data:
        raise InvalidInput(f"{fmt}: {_UNENCRYPTED_HINT[fmt]}")
    items = data.get("items")
    if not isinstance(items, list):
        raise InvalidInput(f"{fmt}: 'items' is not a list")
    if len(items) > MAX_ENTRIES:
        raise InvalidInput(f"{fmt}: more than {MAX_ENTRIES} entries")
    return [_bitwarden_item(fmt, f"item {number}", item) for number, item in enumerate(items, 1)]


def _bitwarden_item(fmt: str, where: str, item: Any) -> Entry:
    if not isinstance(item, dict):
        raise InvalidInput(f"{fmt}: {where}: not an object")
    login = item.get("login")
    kind = "login" if item.get("type") == 1 and isinstance(login, dict) else f"type {item.get('type')}"
    if item.get("deletedDate"):
        kind = "deleted"
    if kind != "login" or not isinstance(login, dict):
        return Entry(where=where, title=str(item.get("name") or ""), kind=kind)
    for name, value in (
        ("name", item.get("name")),
        *((f"login.{n}", login.get(n)) for n in ("username", "password", "totp")),
    ):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{fmt}: {where}: '{name}' is not text")
    uris: list[Any] = login["uris"] if isinstance(login.get("uris"), list) else []
    url = next((str(u.get("uri") or "") for u in uris if isinstance(u, dict) and u.get("uri")), "")
    totp, shape = _totp_from_value(str(login.get("totp") or ""), "uri", "key-column")
    if not totp:
        totp, shape = _field_totp(item.get("fields"))
    return Entry(
        where=where,
        title=str(item.get("name") or ""),
        url=url,
        username=str(login.get("username") or ""),
        password=str(login.get("password") or ""),
        totp=totp,
        totp_shape=shape,
        dropped=[n for n in ("notes", "fields") if item.get(n)],
    )


# -- 1Password ------------------------------------------------------------------------------

_ONEPASSWORD_CSV = ("title", "url", "username", "password", "otpauth", "favorite", "archived", "tags", "notes")


def onepassword_csv(text: str) -> list[Entry]:
    fmt = "1password-csv"
    out = []
    for where, row in _table(text, fmt, _ONEPASSWORD_CSV, ("title", "url", "username", "password")):
        totp, shape = _totp_from_value(row.get("otpauth", ""), "uri", "key-column")
        archived = row.get("archived", "").strip().lower() == "true"
        out.append(
            Entry(
                where=where,
                title=row["title"],
                kind="archived" if archived else "login",
                url=row["url"].split(",")[0].strip(),
                username=row["username"],
                password=row["password"],
                totp=totp,
                totp_shape=shape,
                dropped=[n for n in ("notes", "tags") if row.get(n, "").strip()],
            )
        )
    return out


def _onepux_fields(details: dict[str, Any]) -> tuple[str, str, str]:
    """(username, password, totp) of a 1PUX login item's details."""
    username = password = ""
    for login_field in details.get("loginFields") or []:
        if not isinstance(login_field, dict):
            continue
        designation = login_field.get("designation")
        value = login_field.get("value")
        if not isinstance(value, str):
            continue
        if designation == "username" and not username:
            username = value
        elif designation == "password" and not password:
            password = value
    totp = ""
    for section in details.get("sections") or []:
        for section_field in section.get("fields") or [] if isinstance(section, dict) else []:
            value = section_field.get("value") if isinstance(section_field, dict) else None
            if isinstance(value, dict) and isinstance(value.get("totp"), str) and value["totp"].strip():
                totp = value["totp"].strip()
                break
        if totp:
            break
    return username, password, totp


def onepassword_1pux(raw: bytes) -> list[Entry]:
    fmt = "1password-1pux"
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError):
        raise InvalidInput(f"{fmt}: not a 1PUX file (a 1PUX is a zip archive)") from None
    with archive:
        try:
            info = archive.getinfo("export.data")
        except KeyError:
            raise InvalidInput(f"{fmt}: the archive holds no export.data") from None
        if info.file_size > MAX_1PUX_DATA:
            raise InvalidInput(f"{fmt}: export.data inflates to more than {MAX_1PUX_DATA} bytes")
        try:
            with archive.open(info) as stream:
                # The declared size may lie (a zip bomb): never inflate more than the bound.
                data = stream.read(MAX_1PUX_DATA + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
            raise InvalidInput(f"{fmt}: export.data cannot be read ({exc.__class__.__name__})") from None
        if len(data) > MAX_1PUX_DATA:
            raise InvalidInput(f"{fmt}: export.data inflates to more than {MAX_1PUX_DATA} bytes")
    try:
        export = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{fmt}: export.data is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{fmt}: export.data line {exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(export, dict) or not isinstance(export.get("accounts"), list):
        raise InvalidInput(f"{fmt}: export.data has no 'accounts'")
    items = [
        item
        for account in export["accounts"]
        for vault in ((account.get("vaults") or []) if isinstance(account, dict) else [])
        for item in ((vault.get("items") or []) if isinstance(vault, dict) else [])
    ]
    if len(items) > MAX_ENTRIES:
        raise InvalidInput(f"{fmt}: more than {MAX_ENTRIES} entries")
    return [_onepux_item(fmt, f"item {number}", item) for number, item in enumerate(items, 1)]


def _onepux_item(fmt: str, where: str, item: Any) -> Entry:
    if not isinstance(item, dict):
        raise InvalidInput(f"{fmt}: {where}: not an object")
    overview: dict[str, Any] = item["overview"] if isinstance(item.get("overview"), dict) else {}
    details: dict[str, Any] = item["details"] if isinstance(item.get("details"), dict) else {}
    title = str(overview.get("title") or "")
    # 001 is the Login category; archived (and trashed) items are not current.
    kind = "login" if item.get("categoryUuid") == "001" else f"category {item.get('categoryUuid')}"
    if item.get("state") not in (None, "active"):
        kind = str(item.get("state"))
    if kind != "login":
        return Entry(where=where, title=title, kind=kind)
    username, password, totp = _onepux_fields(details)
    url = str(overview.get("url") or "")
    if not url:
        urls = overview.get("urls") or []
        url = next((str(u.get("url")) for u in urls if isinstance(u, dict) and u.get("url")), "")
    return Entry(
        where=where,
        title=title,
        url=url,
        username=username,
        password=password,
        totp=totp,
        totp_shape=("uri" if totp.lower().startswith("otpauth://") else "custom-field") if totp else "",
        dropped=["notes"] if details.get("notesPlain") else [],
    )


# -- KeePass --------------------------------------------------------------------------------

_KEEPASSXC_CSV = ("Group", "Title", "Username", "Password", "URL", "Notes", "TOTP", "Icon", "Last Modified", "Created")


def keepassxc_csv(text: str) -> list[Entry]:
    fmt = "keepassxc-csv"
    out = []
    for where, row in _table(text, fmt, _KEEPASSXC_CSV, _KEEPASSXC_CSV[:6], lower=False):
        totp, shape = _totp_from_value(row.get("TOTP", ""), "rebuilt-uri", "key-column")
        out.append(
            Entry(
                where=where,
                title=row["Title"],
                url=row["URL"],
                username=row["Username"],
                password=row["Password"],
                totp=totp,
                totp_shape=shape,
                kind="deleted" if row["Group"].split("/")[-1:] == ["Recycle Bin"] else "login",
                dropped=[n for n in ("Notes",) if row.get(n, "").strip()],
            )
        )
    return out


def _keepass_strings(entry: ElementTree.Element) -> dict[str, str]:
    out = {}
    for string in entry.findall("String"):  # direct children only: never <History>'s entries
        key = string.findtext("Key") or ""
        value = string.find("Value")
        if value is not None and value.get("Protected", "").lower() == "true":
            raise InvalidInput(f"keepass-xml: {_UNENCRYPTED_HINT['keepass-xml']}")
        out[key] = "" if value is None else (value.text or "")
    return out


def _keepass_totp(strings: dict[str, str]) -> tuple[str, str]:
    """KeePassXC keeps an otpauth URI in ``otp``; KeePass 2.47+ a bare key in ``TimeOtp-Secret-Base32``."""
    if strings.get("otp", "").strip():
        return strings["otp"].strip(), "custom-field"
    key = strings.get("TimeOtp-Secret-Base32", "").strip()
    if not key:
        return "", ""
    from urllib.parse import urlencode

    params = {"secret": key}
    algorithm = {"HMAC-SHA-256": "SHA256", "HMAC-SHA-512": "SHA512"}.get(strings.get("TimeOtp-Algorithm", ""))
    if algorithm:
        params["algorithm"] = algorithm
    if strings.get("TimeOtp-Length", "").strip():
        params["digits"] = strings["TimeOtp-Length"].strip()
    if strings.get("TimeOtp-Period", "").strip():
        params["period"] = strings["TimeOtp-Period"].strip()
    from urllib.parse import quote

    label = quote(strings.get("Title", "").strip() or "KeePass", safe="")
    return f"otpauth://totp/{label}?" + urlencode(params), "custom-field"


# KeePass itself nests a few levels; anything deeper than this is not an export of a real vault.
MAX_GROUP_DEPTH = 64


def keepass_xml(text: str) -> list[Entry]:
    fmt = "keepass-xml"
    head = text[:4096]
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        # KeePass never writes a DTD; entities are how XML bombs and external reads work.
        raise InvalidInput(f"{fmt}: the file declares a DTD or entities, which a KeePass export never does")
    if "<KeePassFile" not in head:
        raise InvalidInput(f"{fmt}: not a KeePass 2 XML export (no <KeePassFile> at the start)")
    try:
        # Safe here: a DTD or entity was refused above, and ElementTree resolves no external resource.
        root = ElementTree.fromstring(_strip_bom(text))  # noqa: S314
    except ElementTree.ParseError as exc:
        line = exc.position[0] if exc.position else "?"
        raise InvalidInput(f"{fmt}: line {line}: malformed XML") from None
    recycle = (root.findtext("Meta/RecycleBinUUID") or "").strip()
    top = root.find("Root/Group")
    if top is None:
        raise InvalidInput(f"{fmt}: the export has no Root/Group")
    out: list[Entry] = []

    # Groups are walked with an explicit stack, depth-first in file order: a file of 20,000
    # nested groups is refused (exit 2), never a RecursionError.
    stack: list[tuple[ElementTree.Element, bool, int]] = [(top, False, 1)]
    while stack:
        group, in_bin, depth = stack.pop()
        if depth > MAX_GROUP_DEPTH:
            raise InvalidInput(f"{fmt}: groups nested more than {MAX_GROUP_DEPTH} deep")
        in_bin = in_bin or (bool(recycle) and (group.findtext("UUID") or "").strip() == recycle)
        for entry in group.findall("Entry"):  # an entry's <History> holds old copies: never read
            if len(out) >= MAX_ENTRIES:
                raise InvalidInput(f"{fmt}: more than {MAX_ENTRIES} entries")
            strings = _keepass_strings(entry)
            totp, shape = _keepass_totp(strings)
            out.append(
                Entry(
                    where=f"entry {len(out) + 1}",
                    title=strings.get("Title", ""),
                    url=strings.get("URL", ""),
                    username=strings.get("UserName", ""),
                    password=strings.get("Password", ""),
                    totp=totp,
                    totp_shape=shape,
                    kind="deleted" if in_bin else "login",
                    dropped=[n for n in ("Notes",) if strings.get(n, "").strip()],
                )
            )
        stack.extend((child, in_bin, depth + 1) for child in reversed(group.findall("Group")))
    return out


# -- LastPass, Chrome, generic --------------------------------------------------------------

_LASTPASS_CSV = ("url", "username", "password", "totp", "extra", "name", "grouping", "fav")


def lastpass_csv(text: str) -> list[Entry]:
    fmt = "lastpass-csv"
    out = []
    for where, row in _table(text, fmt, _LASTPASS_CSV, ("url", "username", "password", "name")):
        totp, shape = _totp_from_value(row.get("totp", ""), "uri", "key-column")
        out.append(
            Entry(
                where=where,
                title=row["name"],
                # LastPass writes secure notes as url http://sn.
                kind="secure note" if row["url"].strip() == "http://sn" else "login",
                url=row["url"],
                username=row["username"],
                password=row["password"],
                totp=totp,
                totp_shape=shape,
                dropped=[n for n in ("extra",) if row.get(n, "").strip()],
            )
        )
    return out


def chrome_csv(text: str) -> list[Entry]:
    fmt = "chrome-csv"
    out = []
    for where, row in _table(text, fmt, ("name", "url", "username", "password", "note"), ("url", "password")):
        out.append(
            Entry(
                where=where,
                title=row.get("name", ""),
                url=row["url"],
                username=row.get("username", ""),
                password=row["password"],
                dropped=[n for n in ("note",) if row.get(n, "").strip()],
            )
        )
    return out


def generic_csv(text: str) -> list[Entry]:
    fmt = "csv"
    out = []
    for where, row in _table(text, fmt, GENERIC_COLUMNS, ("account", "platform", "handle")):
        totp, shape = _totp_from_value(row.get("totp", ""), "uri", "key-column")
        out.append(
            Entry(
                where=where,
                title=row["account"],
                account=row["account"].strip(),
                platform=row["platform"].strip(),
                handle=row["handle"].strip(),
                username=row.get("username", ""),
                password=row.get("password", ""),
                totp=totp,
                totp_shape=shape,
                owner=row.get("owner", "").strip(),
                team=row.get("team", "").strip(),
                rotate_every=row.get("rotate-every", "").strip(),
                dropped=[n for n in ("notes",) if row.get(n, "").strip()],
            )
        )
    return out


_TEXT_READERS: dict[str, Callable[[str], list[Entry]]] = {
    "bitwarden-json": bitwarden_json,
    "bitwarden-csv": bitwarden_csv,
    "1password-csv": onepassword_csv,
    "keepassxc-csv": keepassxc_csv,
    "keepass-xml": keepass_xml,
    "lastpass-csv": lastpass_csv,
    "chrome-csv": chrome_csv,
    "csv": generic_csv,
}


def read_export(fmt: str, raw: bytes) -> list[Entry]:
    """Every entry of an export in format ``fmt`` (its raw bytes)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "1password-1pux":
        return onepassword_1pux(raw)
    if raw[:2] == b"PK":
        raise InvalidInput(f"{fmt}: this is a zip archive, not a {fmt} file (a .1pux? use --from 1password-1pux)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{fmt}: the file is not UTF-8 text") from None
    if "\x00" in text:
        raise InvalidInput(f"{fmt}: the file holds NUL bytes: not a text export")
    return _TEXT_READERS[fmt](text.replace("\r\n", "\n").replace("\r", "\n") if fmt != "keepass-xml" else text)
