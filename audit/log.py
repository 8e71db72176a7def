"""Appending to the chain inside the caller's database transaction.

The caller must hold the store's writer lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL advisory lock) so that reading the head and appending are atomic.
"""

import base64
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session, col, select

from audit.chain import GENESIS_HASH, EventRecord, SealRecord, canonical_json, event_hash
from audit.models import AuditEvent, AuditSeal
from audit.state import MAX_SKEW_S


class Signer(Protocol):
    """Whoever seals a transaction: a handle, a key fingerprint and a signing function."""

    @property
    def handle(self) -> str: ...

    @property
    def key_fingerprint(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


def format_ts(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: the form hashed into events."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditTransaction:
    """The events of one database transaction, chained as they are appended."""

    def __init__(self, session: Session, actor: str, now: datetime) -> None:
        self._session = session
        self.actor = actor
        self.tx = str(uuid.uuid4())
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
        # Events never go back in time (a rule of the log): a client whose clock is behind
        # the last event's writes at that event's time instead, unless that time is further
        # ahead than the rules allow (a contained transaction, issue 19: it must not drag
        # every later event into the future; :meth:`not_before` follows the verified time).
        ahead = format_ts(now + timedelta(seconds=MAX_SKEW_S))
        if last is not None and format_ts(now) < last.ts <= ahead:
            now = datetime.strptime(last.ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        self.now = now
        self.ts = format_ts(now)
        self._next_seq = 1 if last is None else last.seq + 1
        self._prev = GENESIS_HASH if last is None else last.hash
        self._first_seq: int | None = None
        self.events: list[EventRecord] = []
        # Told of each event as it is appended (the verified state follows the transaction).
        self.listener: Callable[[EventRecord], None] | None = None

    def not_before(self, ts: str) -> None:
        """Before the first event: write no earlier than ``ts`` (the verified log's last time)."""
        if self._first_seq is None and self.ts < ts:
            self.now = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            self.ts = ts

    def append(
        self,
        action: str,
        *,
        account: str | None = None,
        subject: str | None = None,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        record = EventRecord(
            seq=self._next_seq,
            tx=self.tx,
            ts=self.ts,
            actor=self.actor,
            action=action,
            account=account,
            subject=subject,
            reason=reason,
            data=canonical_json(data or {}),
            prev=self._prev,
            hash="",
        )
        record = replace(record, hash=event_hash(record.body()))
        self._session.add(AuditEvent(**record.__dict__))
        if self._first_seq is None:
            self._first_seq = record.seq
        self._next_seq += 1
        self._prev = record.hash
        self.events.append(record)
        if self.listener is not None:
            self.listener(record)
        return record

    def seal(self, signer: Signer) -> SealRecord | None:
        """Sign the transaction's head. A transaction with no events has no seal."""
        if self._first_seq is None:
            return None
        unsigned = SealRecord(
            tx=self.tx,
            first_seq=self._first_seq,
            last_seq=self._next_seq - 1,
            head=self._prev,
            signer=signer.handle,
            key=signer.key_fingerprint,
            ts=self.ts,
            signature="",
        )
        signature = base64.b64encode(signer.sign(unsigned.message())).decode("ascii")
        record = replace(unsigned, signature=signature)
        self._session.add(AuditSeal(**record.__dict__))
        return record
