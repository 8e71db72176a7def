"""Streaming the log out of the database: constant memory whatever its length."""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from audit.chain import EventRecord, SealRecord

_EVENT_COLUMNS = "seq, tx, ts, actor, action, account, subject, reason, data, prev, hash"
_SEAL_COLUMNS = "tx, first_seq, last_seq, head, signer, key, ts, signature"


def stream_events(
    session: Session, *, batch: int = 20000, after: int = 0, where: str = "", params: dict[str, Any] | None = None
) -> Iterator[EventRecord]:
    """Every event (matching ``where``, an SQL condition on audit_event) in sequence order."""
    if not where:
        yield from _stream_all(session, batch=batch, after=after)
        return
    connection = session.connection()
    condition = f" AND ({where})" if where else ""
    query = text(
        f"SELECT {_EVENT_COLUMNS} FROM audit_event WHERE seq > :after{condition} ORDER BY seq LIMIT :batch"  # noqa: S608
    )
    while True:
        rows = connection.execute(query, {**(params or {}), "after": after, "batch": batch}).all()
        if not rows:
            return
        for row in rows:
            yield EventRecord(*row)
        after = rows[-1][0]


def _stream_all(session: Session, *, batch: int, after: int) -> Iterator[EventRecord]:
    """The verification hot path: the driver's own cursor, plain tuples, no SQL compilation."""
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    query = f"SELECT {_EVENT_COLUMNS} FROM audit_event WHERE seq > {mark} ORDER BY seq LIMIT {mark}"  # noqa: S608
    cursor = raw.cursor()
    try:
        while True:
            cursor.execute(query, (after, batch))
            rows = cursor.fetchall()
            if not rows:
                return
            for row in rows:
                yield EventRecord(*row)
            after = rows[-1][0]
    finally:
        cursor.close()


class SealCursor:
    """Looks up transaction seals while the events stream, reading seals in the same order."""

    def __init__(self, session: Session, batch: int = 5000, after: int = 0) -> None:
        self._connection = session.connection()
        self._batch = batch
        self._after = after
        self._buffer: dict[str, SealRecord] = {}
        self._exhausted = False

    def _fill(self) -> None:
        rows = self._connection.execute(
            text(
                f"SELECT {_SEAL_COLUMNS} FROM audit_seal WHERE first_seq > :after"  # noqa: S608
                " ORDER BY first_seq LIMIT :batch"
            ),
            {"after": self._after, "batch": self._batch},
        ).all()
        if not rows:
            self._exhausted = True
            return
        for row in rows:
            seal = SealRecord(*row)
            self._buffer[seal.tx] = seal
        self._after = rows[-1][1]

    def get(self, tx: str, /) -> SealRecord | None:
        while tx not in self._buffer and not self._exhausted:
            self._fill()
        found = self._buffer.pop(tx, None)
        if found is None:
            row = self._connection.execute(
                text(f"SELECT {_SEAL_COLUMNS} FROM audit_seal WHERE tx = :tx"),  # noqa: S608  (fixed columns)
                {"tx": tx},
            ).first()
            found = None if row is None else SealRecord(*row)
        return found


def head(session: Session) -> EventRecord | None:
    row = (
        session.connection()
        .execute(text(f"SELECT {_EVENT_COLUMNS} FROM audit_event ORDER BY seq DESC LIMIT 1"))  # noqa: S608
        .first()
    )
    return None if row is None else EventRecord(*row)
