"""``--clip``: copy a revealed value to the clipboard and clear it later, as ``pass`` does.

The value goes to the platform's clipboard tool (wl-copy, xclip, xsel, pbcopy) on its
standard input, never as an argument. A detached process (``python -m govern.clipboard``)
then receives it on *its* standard input, keeps only a SHA-256 digest, sleeps
``GOVERN_CLIP_TIME`` (45 s by default) and clears the clipboard only if it still holds that
value: something copied since is left alone. Its argv and environment hold no secret (its
environment is a short list of display variables, never ``GOVERN_PASSPHRASE``).
"""

import hashlib
import hmac
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from govern.errors import InvalidInput

DEFAULT_CLIP_SECONDS = 45
MAX_CLIP_SECONDS = 3600
_TOOL_TIMEOUT = 10
# What the clearer needs to reach the clipboard, and nothing else.
_CLEARER_ENV = ("PATH", "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "HOME", "LANG", "LC_ALL")


@dataclass(frozen=True)
class Tool:
    name: str
    copy: tuple[str, ...]
    paste: tuple[str, ...]
    clear: tuple[str, ...]


_TOOLS = {
    "wl-copy": Tool("wl-copy", ("wl-copy",), ("wl-paste", "--no-newline"), ("wl-copy", "--clear")),
    "xclip": Tool(
        "xclip",
        ("xclip", "-selection", "clipboard", "-in"),
        ("xclip", "-selection", "clipboard", "-out"),
        ("xclip", "-selection", "clipboard", "-in"),
    ),
    "xsel": Tool(
        "xsel",
        ("xsel", "--clipboard", "--input"),
        ("xsel", "--clipboard", "--output"),
        ("xsel", "--clipboard", "--clear"),
    ),
    "pbcopy": Tool("pbcopy", ("pbcopy",), ("pbpaste",), ("pbcopy",)),
}

NO_CLIPBOARD = (
    "--clip needs a clipboard: a graphical session (WAYLAND_DISPLAY with wl-clipboard, or DISPLAY"
    " with xclip or xsel) or macOS; none was found, so nothing was revealed"
)


def clip_seconds() -> int:
    """``GOVERN_CLIP_TIME``: seconds (``45``) or a duration (``2m``), 1 s to 1 h."""
    raw = os.environ.get("GOVERN_CLIP_TIME", "").strip()
    if not raw:
        return DEFAULT_CLIP_SECONDS
    if raw.isdigit():
        seconds = int(raw)
    else:
        from govern.timeutil import parse_duration

        try:
            seconds = int(parse_duration(raw).total_seconds())
        except InvalidInput:
            seconds = -1
    if not 1 <= seconds <= MAX_CLIP_SECONDS:
        raise InvalidInput(f"GOVERN_CLIP_TIME must be between 1 second and 1 hour, like 45 or 2m (got {raw!r})")
    return seconds


def find_tool() -> Tool:
    """The clipboard tool of this session; :class:`InvalidInput` (exit 2) when there is none."""
    candidates: list[str] = []
    if os.environ.get("WAYLAND_DISPLAY"):
        candidates.append("wl-copy")
    if os.environ.get("DISPLAY"):
        candidates += ["xclip", "xsel"]
    if sys.platform == "darwin":
        candidates.append("pbcopy")
    for name in candidates:
        tool = _TOOLS[name]
        if all(shutil.which(command[0]) for command in (tool.copy, tool.paste)):
            return tool
    raise InvalidInput(NO_CLIPBOARD)


def _run(command: tuple[str, ...], data: bytes) -> bool:
    """Run a clipboard tool with ``data`` on stdin. Its output is not ours (xclip stays behind
    to serve the selection, holding whatever pipes it was given), so it gets none."""
    try:
        done = subprocess.run(  # noqa: S603  (a fixed clipboard tool, the value on stdin)
            list(command),
            input=data,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_TOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _paste(tool: Tool) -> bytes | None:
    try:
        done = subprocess.run(  # noqa: S603  (a fixed clipboard tool)
            list(tool.paste),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def copy(tool: Tool, value: str, seconds: int) -> None:
    """Put ``value`` on the clipboard and start the process that clears it after ``seconds``."""
    data = value.encode("utf-8")
    if not _run(tool.copy, data):
        raise InvalidInput(f"could not copy to the clipboard ({tool.name} failed): check the graphical session")
    env = {name: os.environ[name] for name in _CLEARER_ENV if name in os.environ}
    clearer = subprocess.Popen(  # noqa: S603  (this interpreter, this module; the value on stdin)
        [sys.executable, "-I", "-m", "govern.clipboard", tool.name, str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # survives the command and a Ctrl-C at its terminal
        close_fds=True,
    )
    assert clearer.stdin is not None
    try:
        clearer.stdin.write(data)
        clearer.stdin.close()
    except OSError:
        pass


def clear_later(tool: Tool, digest: bytes, seconds: int) -> bool:
    """Sleep, then clear the clipboard if it still holds the value of ``digest``."""
    import time

    time.sleep(seconds)
    current = _paste(tool)
    if current is None or not hmac.compare_digest(hashlib.sha256(current).digest(), digest):
        return False
    return _run(tool.clear, b"")


def _clearer_main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in _TOOLS or not argv[1].isdigit():
        return 2
    value = sys.stdin.buffer.read(1024 * 1024)
    sys.stdin.close()
    digest = hashlib.sha256(value).digest()
    del value
    return 0 if clear_later(_TOOLS[argv[0]], digest, min(int(argv[1]), MAX_CLIP_SECONDS)) else 1


if __name__ == "__main__":
    sys.exit(_clearer_main(sys.argv[1:]))
