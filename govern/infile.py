"""One way to read a file a person named: a regular file, bounded, UTF-8 text (universal newlines).

Devices, pipes and folders are refused (``/dev/zero`` would never end, a FIFO would
block for ever); a file above the limit is refused before it is read whole.
"""

import os
import stat
from pathlib import Path

from govern.errors import InvalidInput, NotFound

DEFAULT_LIMIT = 1024 * 1024  # 1 MiB: far above any policy, recovery key, TOTP URI or code list


def read_text_file(path: Path | str, what: str, *, limit: int = DEFAULT_LIMIT) -> str:
    """The text of ``path``; exit 3 if it is missing, exit 2 for anything that is not a small text file."""
    name = str(path)
    try:
        text = read_bytes_file(path, what, limit=limit).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} {name} is not UTF-8 text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() reads text


def read_bytes_file(path: Path | str, what: str, *, limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes (exit 3 if missing, else 2)."""
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"the {what} {name} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the {what} {name}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"the {what} {name} is not a regular file")
        if info.st_size > limit:
            raise InvalidInput(f"the {what} {name} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 65536):
            total += len(chunk)
            if total > limit:
                raise InvalidInput(f"the {what} {name} is larger than {limit} bytes")
            chunks.append(chunk)
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)
