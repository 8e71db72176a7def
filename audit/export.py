"""The canonical JSONL export, and verifying one offline (no database, no passphrase).

Layout: a ``header`` line, then every event, each transaction's ``seal`` right after
its last event, and a ``footer`` with the count and head. The events carry the public
keys (``staff.enrolled``), so the export verifies on its own. The footer carries the
exporter's signature over the header and the footer, with a key the exported log gives
the exporter, so a cut export, or one whose header names another vault, does not verify.
On its own an export proves only that it is internally consistent; a pin of the vault or
a checkpoint taken independently anchors it to the real vault.
"""

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from audit.chain import EventRecord, SealLookup, SealRecord, VerifiedHead, verify_chain
from audit.errors import ChainError
from vault import IntegrityError, verify_signature

EXPORT_FORMAT = "govern-audit-export"
EXPORT_VERSION = 2
_SIGNED_DOMAIN = b"govern-audit-export/v2\n"
_HEADER_SIGNED = ("format", "v", "vault_id", "genesis", "exported_at", "exported_by", "key", "complete", "filters")
_FOOTER_SIGNED = ("events", "last_seq", "head")


def export_message(header: dict[str, Any], footer: dict[str, Any]) -> bytes:
    """What the exporter signs: the header's and the footer's fields, canonically encoded."""
    body = {
        "header": {k: header.get(k) for k in _HEADER_SIGNED},
        "footer": {k: footer.get(k) for k in _FOOTER_SIGNED},
    }
    return _SIGNED_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def jsonl_lines(
    events: Iterable[EventRecord],
    seals: SealLookup,
    header: dict[str, Any],
    *,
    sign: Callable[[bytes], bytes],
    with_seals: bool = True,
) -> Iterator[str]:
    """Lines of the export. Seals are written only for complete (unfiltered) exports."""
    header = {"format": EXPORT_FORMAT, "v": EXPORT_VERSION, **header}
    yield json.dumps({"type": "header", **header}, ensure_ascii=False)
    count = 0
    last: EventRecord | None = None
    for event in events:
        if with_seals and last is not None and event.tx != last.tx:
            yield _seal_line(seals, last)
        yield json.dumps({"type": "event", **asdict(event)}, ensure_ascii=False)
        count += 1
        last = event
    if with_seals and last is not None:
        yield _seal_line(seals, last)
    footer: dict[str, Any] = {
        "events": count,
        "last_seq": None if last is None else last.seq,
        "head": None if last is None else last.hash,
    }
    footer["signature"] = base64.b64encode(sign(export_message(header, footer))).decode("ascii")
    yield json.dumps({"type": "footer", **footer})


def _seal_line(seals: SealLookup, last: EventRecord) -> str:
    seal = seals.get(last.tx)
    if seal is None:
        raise ChainError("transaction has no signed seal", last.seq)
    return json.dumps({"type": "seal", **asdict(seal)}, ensure_ascii=False)


class ExportReader:
    """Streams an export file for :func:`verify_chain`; every malformation is a ChainError."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._line = 0
        self._seals: dict[str, SealRecord] = {}
        self.footer: dict[str, Any] | None = None
        self.events_read = 0
        first = self._next_object()
        if first is None or first.get("type") != "header" or first.get("format") != EXPORT_FORMAT:
            raise ChainError("not a govern audit export (no header line)")
        if first.get("v") != EXPORT_VERSION:
            raise ChainError(f"unsupported export version {first.get('v')!r}")
        self.header = first

    def _next_object(self) -> dict[str, Any] | None:
        for raw in self._stream:
            self._line += 1
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                raise ChainError(f"line {self._line} of the export is not JSON") from None
            if not isinstance(value, dict):
                raise ChainError(f"line {self._line} of the export is not an object")
            return value
        return None

    def events(self) -> Iterator[EventRecord]:
        while (item := self._next_object()) is not None:
            kind = item.pop("type", None)
            try:
                if kind == "event":
                    record = EventRecord(**item)
                    if not isinstance(record.seq, int) or not isinstance(record.data, str):
                        raise TypeError
                    self.events_read += 1
                    yield record
                elif kind == "seal":
                    seal = SealRecord(**item)
                    self._seals[seal.tx] = seal
                elif kind == "footer":
                    self.footer = item
                    return
                else:
                    raise TypeError
            except TypeError:
                raise ChainError(f"line {self._line} of the export is malformed") from None

    def get(self, tx: str, /) -> SealRecord | None:
        return self._seals.pop(tx, None)


def verify_export(
    path: Path, *, anchor: Callable[[int, str], None] | None = None
) -> tuple[dict[str, Any], VerifiedHead]:
    """Verify an export file offline; raise :class:`ChainError` naming the first bad event.

    ``anchor(seq, hash)`` is called for every event, so a caller can compare the export
    with a pin or a checkpoint it trusts.
    """
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ChainError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            reader = ExportReader(handle)
            if not reader.header.get("complete", False):
                raise ChainError("this export is filtered: only a complete export can be verified")

            def events() -> Iterator[EventRecord]:
                for event in reader.events():
                    if anchor is not None:
                        anchor(event.seq, event.hash)
                    yield event

            result = verify_chain(events(), reader)
        except UnicodeDecodeError:
            raise ChainError("the export is not UTF-8 text") from None
        footer = reader.footer
        if footer is None:
            raise ChainError("the export has no footer: it was truncated", result.last_seq + 1)
        if footer.get("events") != result.events or footer.get("head") != (result.head if result.events else None):
            raise ChainError("the footer does not match the events (events removed from the end?)", result.last_seq + 1)
        _check_signed(reader.header, footer, result)
        return reader.header, result


def _check_signed(header: dict[str, Any], footer: dict[str, Any], result: VerifiedHead) -> None:
    state = result.state
    if header.get("vault_id") != state.vault_id or header.get("genesis") != state.genesis:
        raise ChainError("the export's header names another vault than its signed log")
    key = state.keys.get(str(header.get("key")))
    if key is None or key.owner != header.get("exported_by"):
        raise ChainError("the export is signed by a key its log does not give the exporter")
    exporter = state.people.get(key.owner)
    if exporter is None or exporter.role not in ("admin", "auditor"):
        # Only admins and auditors read the whole log; anyone else's export is filtered.
        raise ChainError(f"the export is signed by {key.owner}, who is not an admin or auditor in its log")
    try:
        signature = base64.b64decode(str(footer.get("signature")), validate=True)
        verify_signature(key.ed25519, export_message(header, footer), signature)
    except (ValueError, IntegrityError):
        raise ChainError("the exporter's signature over the header and footer does not verify") from None
