"""Passphrases and the keyring cache of unlocked keys.

A passphrase comes from ``--passphrase-stdin``, ``GOVERN_PASSPHRASE_FILE``,
``GOVERN_PASSPHRASE`` or an interactive prompt, never from a command-line
argument. After an unlock, the Argon2id-derived key may be cached in the OS
keyring for a bounded time (default 15 minutes, ``GOVERN_CACHE_TTL``; ``0``
disables). With no keyring backend the passphrase is asked each time; plaintext
and null backends are refused unless ``GOVERN_ALLOW_INSECURE_KEYRING=1``.
"""

import base64
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from govern import validate
from govern.errors import InvalidInput
from govern.settings import DEFAULT_CACHE_TTL_SECONDS, env_flag

KEYRING_SERVICE = "govern"


class StdinBroker:
    """Hands out standard input once: to a passphrase, a password or a TOTP URI."""

    def __init__(self) -> None:
        self._taken_by: str | None = None

    def take(self, purpose: str) -> str:
        if self._taken_by is not None:
            raise InvalidInput(
                f"standard input is already used for the {self._taken_by}; pass the {purpose}"
                " another way (GOVERN_PASSPHRASE_FILE for the passphrase)"
            )
        self._taken_by = purpose
        line = sys.stdin.readline()
        if not line:
            raise InvalidInput(f"expected the {purpose} on standard input, got nothing")
        return line.rstrip("\r\n")


NO_TERMINAL = (
    "a passphrase is needed and there is no terminal to ask it at: use --passphrase-stdin,"
    " GOVERN_PASSPHRASE_FILE or GOVERN_PASSPHRASE"
)


def terminal_available() -> bool:
    """Whether a hidden prompt can reach a person: the controlling terminal (``/dev/tty``),
    as ssh, sudo and gpg use, even when standard input is a pipe."""
    if os.name != "posix":
        return sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def read_hidden(prompt: str) -> str:
    """Ask at a hidden prompt on the terminal; :class:`InvalidInput` (exit 2) without one.

    Never falls back to reading standard input with echo (``getpass``'s warning path).
    """
    import getpass

    if not terminal_available():
        raise InvalidInput(NO_TERMINAL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            # With no stream, getpass writes the prompt to /dev/tty and reads it from there.
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise InvalidInput(NO_TERMINAL) from None


@dataclass
class PassphraseSource:
    """Where this command's passphrase comes from, in order of precedence."""

    stdin: StdinBroker
    from_stdin: bool = False
    interactive: bool = False
    _before_prompt: Callable[[], None] | None = None
    _prompted: bool = False

    def say_before_prompt(self, say: Callable[[], None]) -> None:
        """Have ``say`` run just before this command's first prompt, if one follows (once)."""
        if not self._prompted:
            self._before_prompt = say

    def describe(self) -> str:
        if self.from_stdin:
            return "standard input"
        if os.environ.get("GOVERN_PASSPHRASE_FILE"):
            return "GOVERN_PASSPHRASE_FILE"
        if os.environ.get("GOVERN_PASSPHRASE") is not None:
            return "GOVERN_PASSPHRASE"
        return "prompt"

    def get(self, prompt: str, *, new: bool = False) -> str:
        """Return the passphrase; ``new`` asks twice at a prompt and checks strength."""
        value: str | None = None
        if self.from_stdin:
            value = self.stdin.take("passphrase")
        elif path := os.environ.get("GOVERN_PASSPHRASE_FILE"):
            from govern.errors import GovernError
            from govern.infile import read_text_file

            try:
                value = read_text_file(path, "passphrase file", limit=64 * 1024).splitlines()[0]
            except (GovernError, IndexError):
                raise InvalidInput(
                    "GOVERN_PASSPHRASE_FILE cannot be read, is not a small text file, or is empty"
                ) from None
        elif (env := os.environ.get("GOVERN_PASSPHRASE")) is not None:
            value = env
        elif self.interactive:
            said, self._before_prompt, self._prompted = self._before_prompt, None, True
            if said is not None:
                said()
            value = read_hidden(f"{prompt}: ")
            if new and read_hidden("Repeat it: ") != value:
                raise InvalidInput("the two passphrases differ")
        else:
            raise InvalidInput(NO_TERMINAL)
        if new:
            validate.passphrase(value)
        elif not value:
            raise InvalidInput("the passphrase is empty")
        return value

    def get_new(self, prompt: str, *, from_stdin: bool) -> str:
        """A new passphrase (``govern passwd``): standard input, or a hidden prompt asked twice.

        Never ``GOVERN_PASSPHRASE``/``GOVERN_PASSPHRASE_FILE``: they hold the current one.
        """
        if from_stdin:
            value = self.stdin.take("new passphrase")
        else:
            value = read_hidden(f"{prompt}: ")
            if read_hidden("Repeat it: ") != value:
                raise InvalidInput("the two passphrases differ")
        return validate.passphrase(value)


class KeyringState(Enum):
    USABLE = "usable"
    ABSENT = "absent"
    REFUSED = "refused (insecure backend)"
    INSECURE_ALLOWED = "insecure backend allowed by GOVERN_ALLOW_INSECURE_KEYRING"


_INSECURE_NAMES = ("Plaintext", "Null", "Uncrypted", "Unencrypted")


def keyring_backend() -> tuple[Any, str, KeyringState]:
    """The active keyring backend, its name, and whether govern will use it."""
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    backends = getattr(backend, "backends", None)
    if isinstance(backend, fail.Keyring) or backends == []:
        return backend, name, KeyringState.ABSENT
    module = type(backend).__module__
    insecure = module.startswith(("keyring.backends.null", "keyrings.alt")) or any(
        word in type(backend).__name__ for word in _INSECURE_NAMES
    )
    if insecure:
        state = KeyringState.INSECURE_ALLOWED if env_flag("GOVERN_ALLOW_INSECURE_KEYRING") else KeyringState.REFUSED
        return backend, name, state
    return backend, name, KeyringState.USABLE


def cache_ttl_seconds() -> int:
    raw = os.environ.get("GOVERN_CACHE_TTL")
    if raw is None or raw.strip() == "":
        return DEFAULT_CACHE_TTL_SECONDS
    if raw.strip() == "0":
        return 0
    from govern.timeutil import parse_duration

    ttl = int(parse_duration(raw).total_seconds())
    return min(ttl, 24 * 3600)


class UnlockCache:
    """Caches a derived key in the OS keyring until an expiry time.

    ``unavailable`` says why nothing can be cached; the caller shows it only when a
    prompt follows (a cron run with a passphrase file is told nothing).
    """

    def __init__(self, vault_id: str, fingerprint: str, notice: Callable[[str], None]) -> None:
        self._username = f"unlock:{vault_id}:{fingerprint}"
        self._notice = notice
        self._backend: Any = None
        self.unavailable: str | None = None
        self.ttl = cache_ttl_seconds()
        if self.ttl == 0:
            return
        backend, name, state = keyring_backend()
        if state is KeyringState.ABSENT:
            self.unavailable = "no OS keyring is available, so the passphrase will be asked each time"
        elif state is KeyringState.REFUSED:
            self.unavailable = (
                f"the keyring backend {name} stores secrets unprotected; not caching"
                " (GOVERN_ALLOW_INSECURE_KEYRING=1 allows it)"
            )
        else:
            self._backend = backend

    def get(self, now: float | None = None) -> bytes | None:
        if self._backend is None:
            return None
        try:
            raw = self._backend.get_password(KEYRING_SERVICE, self._username)
        except Exception:
            return None
        if not raw:
            return None
        try:
            entry = json.loads(raw)
            expires = float(entry["expires"])
            key = base64.b64decode(entry["key"], validate=True)
        except (ValueError, KeyError, TypeError):
            self.clear()
            return None
        if (now if now is not None else time.time()) >= expires or len(key) != 32:
            self.clear()
            return None
        return key

    def put(self, key: bytes, now: float | None = None) -> None:
        if self._backend is None:
            return
        expires = (now if now is not None else time.time()) + self.ttl
        entry = json.dumps({"key": base64.b64encode(key).decode("ascii"), "expires": int(expires)})
        try:
            self._backend.set_password(KEYRING_SERVICE, self._username, entry)
        except Exception:
            self._notice("could not cache the unlock in the keyring; the passphrase will be asked next time")

    def clear(self) -> None:
        if self._backend is None:
            return
        # Nothing cached is the state we want, however the backend fails.
        with contextlib.suppress(Exception):
            self._backend.delete_password(KEYRING_SERVICE, self._username)

    def forget(self) -> bool:
        """Delete the cached unlock whatever ``GOVERN_CACHE_TTL`` says now; True if one was there."""
        backend = self._backend
        if backend is None:
            candidate, _name, state = keyring_backend()
            if state not in (KeyringState.USABLE, KeyringState.INSECURE_ALLOWED):
                return False
            backend = candidate
        try:
            present = backend.get_password(KEYRING_SERVICE, self._username) is not None
        except Exception:
            present = False
        with contextlib.suppress(Exception):
            backend.delete_password(KEYRING_SERVICE, self._username)
        return present
