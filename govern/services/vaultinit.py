"""Creating a vault, upgrading its schema, and describing it (whoami, doctor)."""

import errno
import glob
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from govern import validate
from govern.context import Context, Unlocked, active_key, authenticate, person_key, vault_meta
from govern.db import Store, WriteTx, check_schema, current_revision, make_engine, redact, sqlite_path
from govern.errors import Conflict, InvalidInput, NotFound
from govern.faults import crashpoint
from govern.migrations import HEAD_REVISION
from govern.models import Account, Person, PersonKey, VaultMeta
from govern.outfile import fsync_folder
from govern.timeutil import format_time
from govern.unlock import cache_ttl_seconds, keyring_backend
from govern.vaultfile import check_new_vault, sidecars
from vault import DEFAULT_PARAMS, KdfParams, PersonKeys, RecoveryKey, SealedKeyBlob, WeakParametersError


def creation_kdf_params() -> KdfParams:
    """Argon2id parameters for new key blobs: defaults, or ``GOVERN_KDF`` (never below the floor)."""
    raw = os.environ.get("GOVERN_KDF")
    if not raw:
        return DEFAULT_PARAMS
    try:
        return KdfParams.parse(raw)
    except WeakParametersError as exc:
        raise InvalidInput(f"GOVERN_KDF: {exc}") from None


def public_keys_event(keys: PersonKeys, params: KdfParams) -> dict[str, Any]:
    import base64

    return {
        "public_keys": {
            "fingerprint": keys.public.fingerprint,
            "x25519": base64.b64encode(keys.public.x25519).decode("ascii"),
            "ed25519": base64.b64encode(keys.public.ed25519).decode("ascii"),
        },
        "kdf": params.to_dict(),
    }


@dataclass
class InitResult:
    vault_id: str
    org: str
    admin: str
    fingerprint: str  # the vault fingerprint (audit.fingerprint): read it out to every client
    key_fingerprint: str  # the first admin's key
    recovery_fingerprint: str
    recovery_key: str | None
    recovery_file: str | None
    db: str


def _write_private_file(path: Path, content: str) -> None:
    """Create ``path`` 0600 whatever the umask; refuse to overwrite anything (govern.outfile)."""
    from govern.outfile import write_output

    write_output(path, content, hint="choose a new --recovery-file")


def _check_recovery_file(path: Path, vault_path: Path | None) -> Path:
    """The place for the recovery key: new, in an existing folder (checked before anything is made).

    One file may already be there: the recovery key of an ``init`` that was killed before
    its vault was placed (the key is written first, so that a placed vault always has
    it). It is recognised by its fingerprint in that dead ``init``'s staging file and
    removed, since it protects no vault.
    """
    path = path.expanduser().absolute()
    try:
        if os.path.lexists(path):
            if vault_path is None or not _orphaned_recovery(path, vault_path):
                raise Conflict(f"{path} already exists; choose a new --recovery-file")
            path.unlink()
        if not path.parent.is_dir():
            raise InvalidInput(f"the folder of {path} does not exist")
    except OSError as exc:
        raise InvalidInput(f"cannot use {path} as the recovery file: {exc.strerror}") from None
    return path


def _orphaned_recovery(path: Path, vault_path: Path) -> bool:
    """Whether ``path`` holds the recovery key of a dead ``init`` whose vault was never placed."""
    import sqlite3

    from govern.infile import read_text_file

    if os.path.lexists(vault_path):
        return False
    try:
        fingerprint = RecoveryKey.load(read_text_file(path, "recovery file", limit=4096).strip()).fingerprint
    except Exception:
        return False
    for staging in _dead_stagings(vault_path):
        try:
            connection = sqlite3.connect(f"{staging.absolute().as_uri()}?mode=ro", uri=True)
            try:
                row = connection.execute("SELECT recovery_fingerprint FROM vault").fetchone()
            finally:
                connection.close()
        except sqlite3.Error:
            continue
        if row is not None and row[0] == fingerprint:
            return True
    return False


def init_vault(
    ctx: Context,
    *,
    org: str,
    admin: str,
    name: str,
    email: str | None,
    recovery_file: Path | None,
    parents: bool = False,
) -> InitResult:
    """Create the schema, the first admin with their keys, and the recovery key.

    Atomic: a crash at any point leaves no vault (and no recovery file) or a complete one.
    A SQLite vault is built in a hidden file beside its path and hard-linked into place
    only once complete; on PostgreSQL, a schema left without its first event by a crash
    is an unfinished vault that the next ``init`` completes.
    """
    org, admin, name = validate.text(org, "organisation name"), validate.handle(admin), validate.text(name, "name")
    email = validate.email(email) if email else None
    params = creation_kdf_params()
    from sqlalchemy.engine import make_url

    path = sqlite_path(make_url(ctx.db_url)) if "://" in ctx.db_url else None
    if recovery_file is not None:
        recovery_file = _check_recovery_file(recovery_file, path)
    staging: Path | None = None
    if path is not None and check_new_vault(path, parents=parents):
        staging = _staging_path(path)
    build_url = ctx.db_url if staging is None else f"sqlite:///{staging}"
    wrote_recovery = placed = False
    engine = make_engine(build_url, create=True)
    try:
        if current_revision(engine) is not None and not _unfinished(engine):
            raise Conflict(f"a vault already exists at {redact(ctx.db_url)}")
        passphrase = ctx.passphrase.get(f"New passphrase for {admin}", new=True)
        from govern.migrations.runner import upgrade

        upgrade(engine)
        crashpoint("init-schema")
        check_schema(engine)
        store = Store(engine, build_url)
        keys = PersonKeys.generate()
        blob, _kek = keys.seal(passphrase, params)
        recovery = RecoveryKey.generate()
        vault_id = str(uuid.uuid4())
        with store.write(admin, ctx.now()) as tx:
            _record_first_admin(
                tx,
                vault_id=vault_id,
                org=org,
                admin=admin,
                name=name,
                email=email,
                keys=keys,
                blob=blob,
                params=params,
                recovery=recovery,
            )
            if recovery_file is not None and staging is None:
                # In place (PostgreSQL): the key is on disk before the vault's first commit.
                wrote_recovery = _write_recovery(recovery_file, recovery)
        crashpoint("init-genesis")
        if recovery_file is not None and staging is not None:
            # Staged (SQLite): after the staging commit, which proves an orphan, before placing.
            wrote_recovery = _write_recovery(recovery_file, recovery)
            crashpoint("init-recovery-written")
        engine.dispose()
        if staging is not None and path is not None:
            _place(staging, path)
        placed = True
        crashpoint("init-placed")
        vault_fp = _pin_new_vault(ctx.db_url, vault_id, keys)
    except BaseException:
        engine.dispose()
        if not placed:
            if wrote_recovery and recovery_file is not None:
                recovery_file.unlink(missing_ok=True)
            if staging is not None:
                _discard(staging)
        raise
    return InitResult(
        vault_id=vault_id,
        org=org,
        admin=admin,
        fingerprint=vault_fp,
        key_fingerprint=keys.public.fingerprint,
        recovery_fingerprint=recovery.fingerprint,
        recovery_key=None if recovery_file is not None else recovery.export(),
        recovery_file=None if recovery_file is None else str(recovery_file),
        db=redact(ctx.db_url),
    )


def _write_recovery(path: Path, recovery: RecoveryKey) -> bool:
    _write_private_file(path, recovery.export() + "\n")
    return True


def _pin_new_vault(db_url: str, vault_id: str, keys: PersonKeys) -> str:
    """This client made the vault: it pins the genesis it just signed, confirmed; returns its fingerprint."""
    from govern.trust import confirm, fingerprint_of, remember_database, verify_from_pin

    remember_database(db_url, vault_id)
    store = Store.open(db_url)
    try:
        with store.read() as session:
            state = verify_from_pin(session, db_url, keys=keys, fresh=True)
    finally:
        store.engine.dispose()
    confirm(state, db_url, keys, "init")
    return fingerprint_of(state)


def _unfinished(engine: Engine) -> bool:
    """A schema with no vault, no person and no event: an ``init`` that crashed before its first commit."""
    from sqlalchemy import text

    with engine.connect() as connection:
        counts = [
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 (fixed names)
            for table in ("vault", "person", "audit_event", "audit_seal")
        ]
    return not any(counts)


_STAGING_MARK = ".init-"


def _staging_path(path: Path) -> Path:
    """A hidden file beside the vault for building it; leftovers of dead ``init`` runs are removed."""
    for leftover in _dead_stagings(path):
        _discard(leftover)
    staging = path.parent / f".{path.name}{_STAGING_MARK}{os.getpid()}"
    _discard(staging)
    return staging


def _dead_stagings(path: Path) -> list[Path]:
    prefix = f".{path.name}{_STAGING_MARK}"
    found = []
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid_text = candidate.name[len(prefix) :]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            found.append(candidate)
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier process that had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _discard(staging: Path) -> None:
    for candidate in (staging, *sidecars(staging)):
        try:
            if stat.S_ISREG(candidate.lstat().st_mode):
                candidate.unlink()
        except FileNotFoundError:
            continue


_APPEARED = "a file appeared at {path} while the vault was being created; nothing was changed"


def _place(staging: Path, path: Path) -> None:
    """Move the complete vault into place without ever replacing a file that appeared meanwhile."""
    import sqlite3

    connection = sqlite3.connect(str(staging))
    try:
        mode = connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    finally:
        connection.close()
    if str(mode).lower() != "delete" or any(os.path.lexists(sidecar) for sidecar in sidecars(staging)):
        raise RuntimeError("the new vault could not be checkpointed before it was moved into place")
    try:
        os.link(staging, path)
    except FileExistsError:
        raise Conflict(_APPEARED.format(path=path)) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
        # No hard links on this file system: check, then rename (a narrow window).
        if os.path.lexists(path):
            raise Conflict(_APPEARED.format(path=path)) from None
        os.rename(staging, path)
        fsync_folder(path.parent)
        return
    fsync_folder(path.parent)
    staging.unlink()


def _record_first_admin(
    tx: WriteTx,
    *,
    vault_id: str,
    org: str,
    admin: str,
    name: str,
    email: str | None,
    keys: PersonKeys,
    blob: bytes,
    params: KdfParams,
    recovery: RecoveryKey,
) -> None:
    import base64

    session, now = tx.session, tx.now
    session.add(
        VaultMeta(
            id=vault_id,
            org=org,
            created_at=now,
            recovery_public=recovery.public,
            recovery_fingerprint=recovery.fingerprint,
        )
    )
    person = Person(
        handle=admin, name=name, email=email, role="admin", status="active", created_at=now, created_by=admin
    )
    session.add(person)
    session.flush()
    assert person.id is not None
    key_row = PersonKey(
        person_id=person.id,
        fingerprint=keys.public.fingerprint,
        x25519_public=keys.public.x25519,
        ed25519_public=keys.public.ed25519,
        sealed_private=blob,
        created_at=now,
    )
    session.add(key_row)
    recovery_key = {
        "fingerprint": recovery.fingerprint,
        "x25519": base64.b64encode(recovery.public).decode("ascii"),
        "ed25519": base64.b64encode(recovery.signing_public).decode("ascii"),
    }
    tx.audit.append("vault.initialised", data={"vault_id": vault_id, "org": org, "recovery_key": recovery_key})
    tx.audit.append("staff.added", subject=admin, data={"name": name, "email": email, "team": None, "role": "admin"})
    tx.audit.append("staff.enrolled", subject=admin, data=public_keys_event(keys, params))
    tx.signer = Unlocked(person, key_row, keys)


def upgrade_schema(db_url: str) -> tuple[str | None, str]:
    """Apply pending migrations; return (revision before, revision after)."""
    engine = make_engine(db_url)
    try:
        before = current_revision(engine)
        if before is None:
            raise NotFound("no vault in this database: run 'govern init' to create one")
        from govern.migrations.runner import upgrade

        upgrade(engine)
        return before, HEAD_REVISION
    finally:
        engine.dispose()


def whoami(ctx: Context) -> dict[str, Any]:
    with ctx.store.read() as session:
        person = authenticate(session, ctx.actor)
        key = active_key(session, person)
        meta = vault_meta(session)
        return {
            "handle": person.handle,
            "name": person.name,
            "email": person.email,
            "team": person.team,
            "role": person.role,
            "status": person.status,
            "key_fingerprint": key.fingerprint,
            "org": meta.org,
            "vault_id": meta.id,
            "fingerprint": _fingerprint(session, ctx.db_url),
        }


def _fingerprint(session: Session, db_url: str) -> str:
    """The vault fingerprint, from the log verified from this client's pin (not saved: a read)."""
    from govern.trust import fingerprint_of, verify_from_pin

    return fingerprint_of(verify_from_pin(session, db_url, save=False))


def _mode(path: Path) -> str | None:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}" if path.exists() else None


def doctor(ctx: Context) -> dict[str, Any]:
    """Facts about the installation and vault, and the problems found."""
    engine = make_engine(ctx.db_url)
    try:
        return _diagnose(ctx, engine)
    finally:
        engine.dispose()


def _diagnose(ctx: Context, engine: Engine) -> dict[str, Any]:
    problems: list[str] = []
    report: dict[str, Any] = {"db": redact(ctx.db_url)}
    report["backend"] = engine.dialect.name
    revision = current_revision(engine)
    report["schema"] = {"current": revision, "expected": HEAD_REVISION}
    if revision != HEAD_REVISION:
        problems.append(f"schema is at {revision}, expected {HEAD_REVISION}: run 'govern db upgrade'")
    path = sqlite_path(engine.url)
    if path is not None:
        files = {str(p): _mode(p) for p in (path.parent, path, Path(f"{path}-wal"), Path(f"{path}-shm"))}
        report["files"] = {name: mode for name, mode in files.items() if mode is not None}
        if _mode(path.parent) != "0700":
            problems.append(f"vault folder {path.parent} is {_mode(path.parent)}, expected 0700")
        for name, mode in report["files"].items():
            if name != str(path.parent) and mode != "0600":
                problems.append(f"{name} is {mode}, expected 0600")
    backend, backend_name, state = keyring_backend()
    del backend
    report["keyring"] = {
        "backend": backend_name,
        "state": state.value,
        "cache_ttl_seconds": cache_ttl_seconds(),
    }
    report["kdf_for_new_keys"] = str(creation_kdf_params())
    if revision == HEAD_REVISION:
        store = Store(engine, ctx.db_url)
        with store.read() as session:
            meta = vault_meta(session)
            report["org"] = meta.org
            report["vault_id"] = meta.id
            report["recovery_fingerprint"] = meta.recovery_fingerprint
            report["created_at"] = format_time(meta.created_at)
            report["people"] = len(session.exec(select(Person)).all())
            report["accounts"] = len(session.exec(select(Account)).all())
            report["trust"] = _trust_report(session, ctx.db_url, problems)
            me = session.exec(select(Person).where(Person.handle == ctx.actor)).first()
            key = None if me is None else person_key(session, me)
            if key is not None:
                params = SealedKeyBlob.parse(key.sealed_private).params
                report["your_kdf"] = str(params)
                if params.memory_kib < DEFAULT_PARAMS.memory_kib or params.iterations < DEFAULT_PARAMS.iterations:
                    problems.append(
                        f"your key blob uses Argon2id {params}, weaker than the default {DEFAULT_PARAMS}:"
                        " run 'govern passwd' to re-seal it with the defaults"
                    )
    report["problems"] = problems
    return report


def _trust_report(session: Session, db_url: str, problems: list[str]) -> dict[str, Any]:
    """This client's pin of the vault, and whether the rows agree with the signed log."""
    from govern.errors import GovernError
    from govern.trust import fingerprint_of, load_pin, unexplained_rows, verify_from_pin

    meta = vault_meta(session)
    pinned = load_pin(meta.id)
    report: dict[str, Any] = {"pinned_seq": None if pinned is None else pinned.seq}
    try:
        state = verify_from_pin(session, db_url, save=False)
    except GovernError as error:
        problems.append(f"the signed log does not verify against this client's pin: {error}")
        report["verified"] = False
        return report
    findings = unexplained_rows(session, state)
    report.update(
        {
            "verified": True,
            "log_seq": state.seq,
            "fingerprint": fingerprint_of(state),
            "unexplained_rows": len(findings),
        }
    )
    if findings:
        problems.append(f"{len(findings)} row(s) the signed log does not explain, first: {findings[0]}")
    return report
