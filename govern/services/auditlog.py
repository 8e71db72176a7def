"""Reading the audit log (verification, export and history queries build on this)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from audit.models import AuditEvent
from govern import validate
from govern.context import Context, reading

_BATCH = 2000


def event_view(row: AuditEvent) -> dict[str, Any]:
    import json

    return {
        "seq": row.seq,
        "ts": row.ts,
        "tx": row.tx,
        "actor": row.actor,
        "action": row.action,
        "account": row.account,
        "subject": row.subject,
        "reason": row.reason,
        "data": json.loads(row.data),
        "hash": row.hash,
    }


def query_events(
    ctx: Context,
    *,
    account: str | None = None,
    staff: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream matching events in sequence order, a batch at a time."""
    if account is not None:
        validate.slug(account)
    if staff is not None:
        validate.handle(staff)
    from audit.log import format_ts

    with reading(ctx) as (session, _me):
        after = 0
        while True:
            query = select(AuditEvent).where(AuditEvent.seq > after)
            if account is not None:
                query = query.where(AuditEvent.account == account)
            if staff is not None:
                query = query.where((AuditEvent.actor == staff) | (AuditEvent.subject == staff))
            if action is not None:
                query = query.where(col(AuditEvent.action).startswith(action))
            if since is not None:
                query = query.where(AuditEvent.ts >= format_ts(since))
            if until is not None:
                query = query.where(AuditEvent.ts < format_ts(until))
            rows = session.exec(query.order_by(col(AuditEvent.seq)).limit(_BATCH)).all()
            if not rows:
                return
            for row in rows:
                yield event_view(row)
            after = rows[-1].seq
