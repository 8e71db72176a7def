"""The one way govern writes an output file (``--out``, ``--recovery-file``).

DESIGN.md property 8: output files are created new, 0600 whatever the umask, never
through a symbolic link, and a failure never leaves a partial file or damages an
earlier one. Everything goes to a temporary file made in the destination's folder with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (mode 0600, fsynced) and is moved into place only
once complete:

- without ``force`` the temporary file is *hard-linked* to the destination, which fails
  if anything at all (a file, a symbolic link, a folder) appeared there meanwhile, so an
  existing path is refused (exit 8) even if it is planted between the check and the
  write;
- with ``force`` an existing *regular file* is replaced by ``rename(2)``, which swaps the
  directory entry atomically: a reader sees the old file or the new one, never half of
  either, and the old file's mode and owner go with it;
- a symbolic link at the destination is refused, with or without ``force`` (exit 8): it
  is never followed and never replaced, whoever planted it. (Were one planted between
  the check and the rename, rename replaces the link itself, never its target.) A folder
  or a device at the destination is refused too (exit 2);
- on any failure — an exception, an integrity failure (exit 6) while streaming, Ctrl-C —
  the temporary file is removed and the destination is left exactly as it was.
"""

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Protocol

from govern.errors import Conflict, InvalidInput

_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Filesystems without hard links (FAT, some network and FUSE mounts) say one of these.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


class TextSink(Protocol):
    """Where text output goes: an :class:`OutputFile` or ``sys.stdout``."""

    def write(self, text: str, /) -> int: ...


class OutputFile:
    """The temporary file being written; a write error is one clear line (exit 2)."""

    def __init__(self, handle: IO[str], path: Path) -> None:
        self._handle = handle
        self._path = path

    def write(self, text: str, /) -> int:
        try:
            return self._handle.write(text)
        except OSError as exc:
            raise InvalidInput(f"cannot write {self._path}: {exc.strerror or exc}") from None


def _refuse_existing(path: Path, *, force: bool, hint: str) -> None:
    """Raise unless ``path`` is free, or is a regular file and ``force`` is given."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the name
        raise InvalidInput("an output file name cannot contain a NUL byte") from None
    if stat.S_ISLNK(info.st_mode):
        raise Conflict(f"{path} is a symbolic link: govern never writes through one, even with --force")
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"{path} is a folder: give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path} is not a regular file: give a new file name")
    if not force:
        raise Conflict(f"{path} already exists: {hint}")


def _create_temporary(folder: Path, name: str, path: Path) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(16):
        temporary = f".{name[:80]}.{secrets.token_hex(6)}.tmp"  # short: any valid name has room
        try:
            return os.open(folder / temporary, flags, _MODE), temporary
        except FileExistsError:
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    raise InvalidInput(f"cannot write {path}: no free temporary name in {folder}")


def _unlink_quietly(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


def fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _install(temporary: Path, path: Path, *, force: bool, hint: str) -> None:
    """Move the complete temporary file to ``path`` (see the module's rules)."""
    if force:
        _refuse_existing(path, force=True, hint=hint)  # a link or folder planted meanwhile
        os.replace(temporary, path)  # rename(2): never follows a link at ``path``
        return
    try:
        os.link(temporary, path, follow_symlinks=False)
    except FileExistsError:
        _refuse_existing(path, force=False, hint=hint)
        raise Conflict(f"{path} already exists: {hint}") from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: check, then rename (a narrow window, documented).
        _refuse_existing(path, force=False, hint=hint)
        os.rename(temporary, path)
        return
    os.unlink(temporary)


@contextmanager
def output_file(path: Path, *, force: bool = False, hint: str = "use --force to replace it") -> Iterator[OutputFile]:
    """Write ``path`` through a temporary file; it appears only if the block succeeds.

    The destination is checked on entry (so an existing file is refused before any
    work) and again when the file is moved into place.
    """
    _refuse_existing(path, force=force, hint=hint)
    folder = path.parent
    fd, name = _create_temporary(folder, path.name, path)
    temporary = folder / name
    handle: IO[str] | None = None
    try:
        try:
            os.fchmod(fd, _MODE)  # exactly 0600 whatever the umask
            handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(fd)
            raise
        yield OutputFile(handle, path)
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            _install(temporary, path, force=force, hint=hint)
        except OSError as exc:
            raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if handle is not None:
            with suppress(OSError):  # unflushed text of a failed file: it is removed anyway
                handle.close()
        _unlink_quietly(temporary)
        raise
    fsync_folder(folder)


def write_output(path: Path, text: str, *, force: bool = False, hint: str = "use --force to replace it") -> None:
    """Write ``text`` to ``path`` with :func:`output_file`."""
    with output_file(path, force=force, hint=hint) as out:
        out.write(text)


def write_binary_output(
    path: Path, data: bytes, *, force: bool = False, hint: str = "use --force to replace it"
) -> None:
    """Write ``data`` (a zip, say) to ``path`` with every guarantee of :func:`output_file`."""
    _refuse_existing(path, force=force, hint=hint)
    folder = path.parent
    fd, name = _create_temporary(folder, path.name, path)
    temporary = folder / name
    try:
        try:
            os.fchmod(fd, _MODE)  # exactly 0600 whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _install(temporary, path, force=force, hint=hint)
    except OSError as exc:
        _unlink_quietly(temporary)
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _unlink_quietly(temporary)
        raise
    fsync_folder(folder)
