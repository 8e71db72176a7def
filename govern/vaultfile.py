"""What a SQLite vault path is, decided before govern opens, creates or changes anything.

``--db`` and ``GOVERN_HOME`` are typed by people, and a mistyped path must never be
damaged: SQLite would turn a zero-byte file into a database, write a WAL next to any
file, and govern used to tighten modes before looking. Here a path is a vault only if
it is a regular file, starts with the SQLite header and holds govern's tables (checked
on a read-only connection); anything else is refused with a sentence saying what the
path is, and its mode, size and content are left alone. Modes are tightened only on a
file govern made or has just verified as its own vault.
"""

import os
import sqlite3
import stat
from pathlib import Path

from govern.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Unavailable

SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
# Tables every govern schema since the first revision has.
GOVERN_TABLES = frozenset({"alembic_version", "vault", "person", "audit_event", "audit_seal"})


def sidecars(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in SIDECAR_SUFFIXES]


def describe(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InvalidInput(f"cannot use {path}: a folder on its path is a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot use {path} as a vault: {exc.strerror}") from None


class _Untouched(InvalidInput):
    """A path that is not a vault: refused, with a promise that nothing was changed."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}, not a govern vault: nothing was changed")


def check_existing_vault(path: Path) -> None:
    """Refuse ``path`` unless it is a govern vault; read-only, nothing is created or changed."""
    info = _lstat(path)
    if info is None:
        raise NotFound(f"no vault at {path}: run 'govern init' first (or pass --db)")
    _check_regular_vault_file(path, info)


def check_new_vault(path: Path, *, parents: bool) -> bool:
    """For ``init``: True when ``path`` is free (its folder exists, or may be made with
    ``parents``); False when it holds a govern vault (``init`` then decides whether that
    vault is complete). Anything else is refused untouched."""
    info = _lstat(path)
    if info is not None:
        _check_regular_vault_file(path, info)
        return False
    for sidecar in sidecars(path):
        if _lstat(sidecar) is not None:
            raise Conflict(f"{sidecar} exists without its vault {path.name}: move it away first")
    folder = path.parent
    folder_info = _lstat(folder)
    if folder_info is None:
        if not parents:
            raise InvalidInput(f"the folder {folder} does not exist: create it, or pass --parents")
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise InvalidInput(f"cannot create the folder {folder}: {exc.strerror}") from None
    elif not folder.is_dir():
        raise InvalidInput(f"cannot use {path}: {folder} is {describe(folder_info.st_mode)}, not a folder")
    return True


def _check_regular_vault_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _Untouched(path, describe(info.st_mode))
    if info.st_size == 0:
        raise _Untouched(path, "an empty file")
    for sidecar in sidecars(path):
        sidecar_info = _lstat(sidecar)
        if sidecar_info is not None and not stat.S_ISREG(sidecar_info.st_mode):
            what = describe(sidecar_info.st_mode)
            raise InvalidInput(f"{sidecar} is {what}: a vault's journal must be a regular file")
    tables = _tables(path)
    if not tables >= GOVERN_TABLES:
        raise _Untouched(path, "an SQLite database of another program")


# SQLite's own result codes (``sqlite3.Error.sqlite_errorcode``, primary code in the low byte).
_SQLITE_NOTADB = 26
_SQLITE_CORRUPT = 11


def _tables(path: Path) -> set[str]:
    """The table names, read on a read-only connection (it never creates or writes a file).

    The file is read only through SQLite, never with a raw ``open``/``close`` of our own:
    closing any descriptor of a database file drops every POSIX lock this process holds on
    it, including those of connections still open, which is how SQLite files get corrupted.
    """
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise Unavailable(f"cannot open {path}: {exc}") from None
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_NOTADB:
            raise _Untouched(
                path, "not an SQLite database (if it was a vault, it is damaged: restore it from a backup)"
            ) from None
        if code == _SQLITE_CORRUPT or (
            isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        ):
            raise IntegrityFailure(f"the vault file {path} is damaged ({exc}): restore it from a backup") from None
        raise Unavailable(f"cannot read {path} now: {exc}") from None
    finally:
        connection.close()
    return {str(row[0]) for row in rows}


def tighten(path: Path) -> None:
    """Make a verified vault and its journals 0600 (regular files only, links never followed)."""
    for candidate in (path, *sidecars(path)):
        try:
            info = candidate.lstat()
            if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) != 0o600:
                # By path, not through a descriptor: opening and closing a database file would
                # drop this process's SQLite locks on it (see _tables).
                os.chmod(candidate, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot protect {candidate}: {exc.strerror}") from None
