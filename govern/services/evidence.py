"""``audit evidence``: one zip an auditor can hand over, and ``audit verify --evidence``.

The pack holds, in this order (``MEMBERS``):

- ``report.html`` and ``report.json``: the period report (:mod:`govern.services.periodreport`);
- ``events.jsonl``: the complete, signed JSONL export of the log (format 2, with every seal).
  The whole log, not only the period's events: a log verifies only from its genesis (keys
  enter through it and every event is checked against the rights its actor had then), and an
  export cut at the period's end would contradict any newer pin. ``manifest.json`` names the
  period's first and last events;
- ``checkpoint.json``: the head, signed by the generator before the export was made, so the
  export must contain it (``audit verify --export events.jsonl --checkpoint checkpoint.json``);
- ``verification.txt``: the transcript of that offline verification, run on the pack's own files;
- ``manifest.json``: SHA-256 and size of every member above, the vault, the period, the export's
  head, who generated it with which key; ``manifest.sig``: their Ed25519 signature over it.

The zip is written deterministically (stored, fixed times and attributes), so a verifier
rebuilds it from its members and compares every byte: a change anywhere — a member, a header,
the central directory, a comment — is caught, not only a change of a member's content.
"""

import base64
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from audit.errors import ChainError
from audit.log import format_ts
from govern.context import Context, reading, unlock
from govern.errors import InvalidInput
from govern.infile import read_bytes_file
from govern.services.common import require_role
from govern.timeutil import format_time
from vault import IntegrityError, verify_signature

FORMAT = "govern-evidence/v1"
MEMBERS = (
    "report.html",
    "report.json",
    "events.jsonl",
    "checkpoint.json",
    "verification.txt",
    "manifest.json",
    "manifest.sig",
)
_SIGNED = b"govern-evidence-manifest/v1\n"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_NO_FILTERS: dict[str, Any] = {"account": None, "staff": None, "action": None, "since": None, "until": None}
LIMIT = 4 * 1024 * 1024 * 1024  # 4 GiB: a zip without ZIP64 cannot be larger anyway


def build_zip(members: list[tuple[str, bytes]]) -> bytes:
    """The pack's bytes: the same members always give the same bytes (no compression, whose
    output could differ between zlib versions; fixed times, modes and system)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3
            info.external_attr = 0o100600 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


@contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="govern-evidence-"))  # 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _period_range(events: bytes, lo: str, hi: str) -> dict[str, Any]:
    first = last = None
    count = 0
    for line in events.splitlines():
        item = json.loads(line)
        if item.get("type") == "event" and lo <= str(item["ts"]) < hi:
            first = item["seq"] if first is None else first
            last = item["seq"]
            count += 1
    return {"first_seq": first, "last_seq": last, "events": count}


def build(ctx: Context, start: datetime, end: datetime) -> tuple[bytes, dict[str, Any]]:
    """The evidence pack for ``[start, end)`` and its manifest."""
    from govern.services import auditing, periodreport

    data = periodreport.build(ctx, start, end)
    checkpoint = auditing.checkpoint(ctx)  # before the export: the export must contain it
    checkpoint_bytes = (json.dumps(checkpoint, indent=2) + "\n").encode("utf-8")
    events = "".join(line + "\n" for line in auditing.export_lines(ctx, "jsonl", **_NO_FILTERS)).encode("utf-8")
    with _private_folder() as folder:
        (folder / "events.jsonl").write_bytes(events)
        (folder / "checkpoint.json").write_bytes(checkpoint_bytes)
        transcript = auditing.verify_export_file(folder / "events.jsonl", checkpoint=folder / "checkpoint.json")
    transcript["source"] = "events.jsonl"
    verification = _transcript(transcript)
    members = [
        ("report.html", periodreport.render(data, "html").encode("utf-8")),
        ("report.json", periodreport.render(data, "json").encode("utf-8")),
        ("events.jsonl", events),
        ("checkpoint.json", checkpoint_bytes),
        ("verification.txt", verification.encode("utf-8")),
    ]
    with reading(ctx) as (session, me):
        require_role(me, ("admin", "auditor"), "produce evidence packs")
        unlocked = unlock(ctx, session, me)
        manifest = {
            "format": FORMAT,
            "vault_id": data["vault_id"],
            "org": data["org"],
            "from": data["from"],
            "to": data["to"],
            "period": _period_range(events, format_ts(start), format_ts(end)),
            "generated_at": format_time(ctx.now()),
            "generated_by": me.handle,
            "key": unlocked.key_fingerprint,
            "export_head": {"seq": transcript["last_seq"], "hash": transcript["head"]},
            "checkpoint": {"seq": checkpoint["seq"], "head": checkpoint["head"]},
            "members": [{"name": name, "sha256": _sha256(body), "bytes": len(body)} for name, body in members],
        }
        manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        signature = unlocked.sign(_SIGNED + manifest_bytes)
    members.append(("manifest.json", manifest_bytes))
    members.append(("manifest.sig", base64.b64encode(signature) + b"\n"))
    return build_zip(members), manifest


def _transcript(result: dict[str, Any]) -> str:
    lines = [
        "$ govern audit verify --export events.jsonl --checkpoint checkpoint.json --json",
        json.dumps(result, indent=2, ensure_ascii=False),
        f"verified {result['events']} events in {result['transactions']} signed transactions;"
        f" anchored by {result['anchored_by']}",
    ]
    return "\n".join(lines) + "\n"


def _members(raw: bytes) -> list[tuple[str, bytes]]:
    """The pack's members, in order; each read checks its CRC."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            if tuple(names) != MEMBERS:
                raise ChainError(f"the pack holds {', '.join(names) or 'nothing'}, not the members of an evidence pack")
            # A pack is stored, never compressed: a compressed member (a zip bomb handed to an
            # auditor) is refused before a byte of it is inflated.
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(raw):
                    raise ChainError(f"{info.filename} is compressed or larger than the pack: not an evidence pack")
            return [(name, archive.read(name)) for name in names]
    except ChainError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError... from damaged bytes
        raise ChainError(f"the evidence pack is not an intact zip: {exc}") from None


def _manifest(body: dict[str, bytes]) -> tuple[dict[str, Any], bytes]:
    """The manifest (each member's SHA-256 and size checked against it) and its signature."""
    try:
        manifest = json.loads(body["manifest.json"].decode("utf-8"))
        listed = {m["name"]: (m["sha256"], m["bytes"]) for m in manifest["members"]}
        signature = base64.b64decode(body["manifest.sig"].strip(), validate=True)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ChainError("the pack's manifest is unreadable") from None
    if manifest.get("format") != FORMAT or set(listed) != set(MEMBERS[:-2]):
        raise ChainError("the manifest does not list the pack's members")
    for name in MEMBERS[:-2]:
        if listed[name] != (_sha256(body[name]), len(body[name])):
            raise ChainError(f"{name} does not match its SHA-256 in the manifest")
    return manifest, signature


def verify_evidence(path: Path, expect: str | None = None) -> dict[str, Any]:
    """Check an evidence pack offline: its bytes, its manifest and signature, and its export
    (with its checkpoint, this client's pin and ``expect``, the vault fingerprint given out of
    band). Raises ``ChainError`` (exit 6) at the first fault."""
    raw = read_bytes_file(path, "evidence pack", limit=LIMIT)
    members = _members(raw)
    if build_zip(members) != raw:
        raise ChainError("the zip was altered outside its members (a header, the directory or a comment)")
    body = dict(members)
    manifest, signature = _manifest(body)
    keys: dict[str, tuple[str, bytes]] = {}
    roles: dict[str, tuple[str, str]] = {}
    with _private_folder() as folder:
        for name in ("events.jsonl", "checkpoint.json"):
            (folder / name).write_bytes(body[name])
            os.chmod(folder / name, 0o600)
        result = auditing_verify(folder / "events.jsonl", folder / "checkpoint.json", keys, roles, expect)
    owner_key = keys.get(str(manifest.get("key")))
    if owner_key is None or owner_key[0] != manifest.get("generated_by"):
        raise ChainError("the manifest is signed with a key its log does not give its signer")
    # Only an active admin or auditor produces packs: the report is not recomputed from the export
    # here, so a pack signed by anyone else (a member writing their own report) is refused.
    if roles.get(owner_key[0]) not in (("admin", "active"), ("auditor", "active")):
        raise ChainError(
            f"the manifest is signed by {owner_key[0]}, who was not an active admin or auditor at the export's head"
        )
    try:
        verify_signature(owner_key[1], _SIGNED + body["manifest.json"], signature)
    except IntegrityError:
        raise ChainError("the manifest's signature does not verify") from None
    if manifest.get("vault_id") != result["vault_id"] or manifest.get("export_head") != {
        "seq": result["last_seq"],
        "hash": result["head"],
    }:
        raise ChainError("the manifest names another vault or head than its export")
    try:
        report = json.loads(body["report.json"].decode("utf-8"))
        consistent = (
            report["vault_id"] == result["vault_id"] and report["verification"]["last_seq"] <= result["last_seq"]
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        consistent = False
    if not consistent:
        raise ChainError("the report is unreadable, or about another vault or a longer log than the export")
    return {
        "source": str(path),
        "vault_id": result["vault_id"],
        "fingerprint": result["fingerprint"],
        "expected": result["expected"],
        "from": manifest["from"],
        "to": manifest["to"],
        "period_events": manifest["period"]["events"],
        "members": len(MEMBERS),
        "signed_by": f"{manifest['generated_by']} ({manifest['key']})",
        "events": result["events"],
        "transactions": result["transactions"],
        "last_seq": result["last_seq"],
        "head": result["head"],
        "anchored_by": result["anchored_by"],
        "findings": [],
    }


def auditing_verify(
    export: Path,
    checkpoint: Path,
    keys: dict[str, tuple[str, bytes]],
    roles: dict[str, tuple[str, str]],
    expect: str | None = None,
) -> dict[str, Any]:
    from govern.services.auditing import verify_export_file

    try:
        return verify_export_file(export, checkpoint=checkpoint, keys=keys, roles=roles, expect=expect)
    except InvalidInput as exc:
        raise ChainError(f"the pack's export or checkpoint is unreadable: {exc}") from None
