"""The store: engines for SQLite and PostgreSQL, file modes, schema checks, and
write transactions that append their audit events atomically.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, create_engine

from audit.log import AuditTransaction, Signer
from audit.state import LogState
from govern import interrupts
from govern.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Unavailable
from govern.faults import crashpoint
from govern.migrations import HEAD_REVISION, REVISIONS
from govern.settings import lock_timeout
from govern.timeutil import utcnow
from govern.vaultfile import check_existing_vault, check_new_vault, tighten

# An arbitrary constant: the PostgreSQL advisory lock every writer takes, so audit
# appends (read head, append, seal) are serialised across processes.
_PG_WRITE_LOCK = 0x676F7665726E  # "govern"


class StoreUnavailable(Unavailable):
    """The database cannot be reached or opened."""


def sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _open_sqlite_file(path: Path, *, create: bool, parents: bool) -> None:
    if create and check_new_vault(path, parents=parents):
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise Conflict(f"{path} appeared while the vault was being created: nothing was changed") from None
        except OSError as exc:
            raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
        os.close(fd)
    elif not create:
        check_existing_vault(path)
    tighten(path)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit
        # transactions would begin DEFERRED, which is not what writers need).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout() * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("govern_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def make_engine(url_text: str, *, create: bool = False, parents: bool = False) -> Engine:
    """An engine on a PostgreSQL URL or a SQLite vault file.

    A SQLite path is checked first (govern.vaultfile): an existing path must be a govern
    vault, and with ``create`` a free path gets a new 0600 file (its folder made only with
    ``parents``). Nothing that is not a vault is ever opened, created or chmodded.
    """
    try:
        url = make_url(url_text)
        url.get_backend_name()
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError("port out of range")
    except (ArgumentError, ValueError):
        raise InvalidInput(f"cannot read database URL {redact(url_text)!r}") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://…")
    if backend == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    path = sqlite_path(url)
    if path is not None:
        _open_sqlite_file(path, create=create, parents=parents)
    try:
        engine = create_engine(url, connect_args={"timeout": lock_timeout()} if backend == "sqlite" else {})
    except ModuleNotFoundError as exc:
        raise StoreUnavailable(
            f"the {backend} driver is not installed ({exc.name}): pip install 'govern[postgres]'"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine


def redact(url_text: str) -> str:
    """The URL with any password hidden, for messages and ``doctor``."""
    try:
        return make_url(url_text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unreadable URL>"


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            return None if row is None else str(row[0])
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "unknown error"
        raise StoreUnavailable(f"cannot open the database (retry when it is back): {first}") from None
    except DatabaseError as exc:
        raise IntegrityFailure(f"the database is damaged or not a govern vault: {exc.orig}") from None


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code expects."""
    revision = current_revision(engine)
    if revision is None:
        raise NotFound("no vault in this database: run 'govern init' first (or pass --db)")
    if revision == HEAD_REVISION:
        return
    if revision in REVISIONS:
        raise Conflict(
            f"the vault schema is at revision {revision}, this govern needs {HEAD_REVISION}: run 'govern db upgrade'"
        )
    raise Conflict(f"the vault schema ({revision}) is newer than this govern knows: upgrade govern")


@dataclass
class WriteTx:
    """One write transaction: the session, its audit events and who will sign them."""

    session: Session
    audit: AuditTransaction
    now: datetime
    signer: Signer | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # The state the signed log proves (govern.trust), set before any decision is taken.
    trust: "LogState | None" = None

    def believe(self, state: LogState) -> None:
        """Take decisions from ``state``, which follows this transaction's own events."""
        self.trust = state
        self.audit.not_before(state.last_ts)
        self.now = self.audit.now
        state.begin_own()
        self.audit.listener = state.apply_own

    @property
    def state(self) -> "LogState":
        if self.trust is None:
            raise RuntimeError("a decision was about to be taken without the verified state")
        return self.trust


class Store:
    """A vault's database. Reads and writes go through :meth:`read` and :meth:`write`."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._writer = engine.execution_options(govern_write=True)
        # Reads see one snapshot from start to end (SQLite's WAL gives that to any read
        # transaction; PostgreSQL needs REPEATABLE READ), so a long verification or export
        # never mixes rows committed while it runs.
        self._reader = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if engine.dialect.name == "postgresql"
            else engine
        )

    @classmethod
    def open(cls, url: str) -> "Store":
        engine = make_engine(url)
        try:
            check_schema(engine)
            with engine.connect() as connection:
                if connection.execute(text("SELECT 1 FROM vault")).first() is None:
                    raise NotFound("this database holds no vault yet (an init did not finish): run 'govern init' again")
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def after_commit(self) -> None:
        path = sqlite_path(self.engine.url)
        if path is not None:
            tighten(path)

    def _take_write_lock(self, session: Session) -> None:
        """Wait for the writer lock at most ``GOVERN_LOCK_TIMEOUT`` seconds (exit 9 after that)."""
        try:
            if self.backend == "postgresql":
                session.exec(text(f"SET LOCAL lock_timeout = {int(lock_timeout() * 1000)}"))  # type: ignore[call-overload]
                session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_PG_WRITE_LOCK))  # type: ignore[call-overload]
                session.exec(text("SET LOCAL lock_timeout = 0"))  # type: ignore[call-overload]
            else:
                session.connection()  # BEGIN IMMEDIATE: SQLite's writer lock, within busy_timeout
        except OperationalError as exc:
            message = str(exc.orig).lower()
            if "lock" in message or "busy" in message:
                raise StoreUnavailable(
                    f"another writer has held the vault for {lock_timeout():g} s: retry later"
                    " (GOVERN_LOCK_TIMEOUT sets how long to wait)"
                ) from None
            raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self, actor: str, now: datetime | None = None) -> Iterator[WriteTx]:
        """A write transaction holding the writer lock, committed with its sealed events.

        The events and the change commit together or not at all (fail closed).
        """
        with Session(self._writer, expire_on_commit=False) as session:
            # An interrupt remembered after an earlier commit stops the command here, before
            # anything new begins; during this transaction's work Ctrl-C interrupts as usual.
            interrupts.resume()
            try:
                self._take_write_lock(session)
                moment = now or utcnow()
                audit = AuditTransaction(session, actor, moment)
                tx = WriteTx(session=session, audit=audit, now=audit.now)
                yield tx
                if tx.audit.events:
                    if tx.signer is None:
                        raise RuntimeError("a write transaction with events must be signed")
                    tx.audit.seal(tx.signer)
                session.flush()
                interrupts.defer()
                interrupts.signalpoint("before-commit")
                crashpoint("before-commit")
                session.commit()
            except SAIntegrityError as exc:
                session.rollback()
                interrupts.resume()
                raise Conflict(f"conflicting change: {exc.orig}") from None
            except BaseException:
                session.rollback()
                interrupts.resume()
                raise
        interrupts.signalpoint("after-commit")
        self.after_commit()
