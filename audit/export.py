"""The canonical JSONL export, and verifying one offline (no database, no passphrase).

Layout: a ``header`` line, then every event, each transaction's ``seal`` right after
its last event, and a ``footer`` with the count and head. The events carry the public
keys (``staff.enrolled``), so the export verifies on its own.
"""

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from audit.chain import EventRecord, SealLookup, SealRecord, VerifiedHead, verify_chain
from audit.errors import ChainError

EXPORT_FORMAT = "govern-audit-export"
EXPORT_VERSION = 1


def jsonl_lines(
    events: Iterable[EventRecord], seals: SealLookup, header: dict[str, Any], *, with_seals: bool = True
) -> Iterator[str]:
    """Lines of the export. Seals are written only for complete (unfiltered) exports."""
    yield json.dumps({"type": "header", "format": EXPORT_FORMAT, "v": EXPORT_VERSION, **header}, ensure_ascii=False)
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
    yield json.dumps(
        {
            "type": "footer",
            "events": count,
            "last_seq": None if last is None else last.seq,
            "head": None if last is None else last.hash,
        }
    )


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


def verify_export(path: Path) -> tuple[dict[str, Any], VerifiedHead]:
    """Verify an export file offline; raise :class:`ChainError` naming the first bad event."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ChainError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            reader = ExportReader(handle)
            if not reader.header.get("complete", False):
                raise ChainError("this export is filtered: only a complete export can be verified")
            result = verify_chain(reader.events(), reader)
        except UnicodeDecodeError:
            raise ChainError("the export is not UTF-8 text") from None
        footer = reader.footer
        if footer is None:
            raise ChainError("the export has no footer: it was truncated", result.last_seq + 1)
        if footer.get("events") != result.events or footer.get("head") != (result.head if result.events else None):
            raise ChainError("the footer does not match the events (events removed from the end?)", result.last_seq + 1)
        return reader.header, result
