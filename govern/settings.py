"""Where the vault lives and other settings read from the environment.

Light on imports: ``govern --help`` reads nothing here that pulls in heavy modules.
"""

import os
from pathlib import Path

APP_NAME = "govern"
DEFAULT_DB_FILE = "vault.db"
DEFAULT_CACHE_TTL_SECONDS = 15 * 60
DEFAULT_LOCK_TIMEOUT_SECONDS = 30.0
MAX_LOCK_TIMEOUT_SECONDS = 3600.0


def home_dir() -> Path:
    """``GOVERN_HOME``, else the platform's per-user data directory."""
    explicit = os.environ.get("GOVERN_HOME")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def state_dir() -> Path:
    """``GOVERN_STATE_DIR``, else the platform's per-user state directory: this client's pins."""
    explicit = os.environ.get("GOVERN_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def default_db_url() -> str:
    return f"sqlite:///{home_dir() / DEFAULT_DB_FILE}"


def resolve_db_url(option: str | None) -> str:
    """``--db``, else ``GOVERN_DB_URL``, else the SQLite file in the home directory.

    A value without ``://`` is taken as the path of a SQLite file.
    """
    value = option or os.environ.get("GOVERN_DB_URL") or default_db_url()
    if "://" not in value:
        value = f"sqlite:///{Path(value).expanduser().absolute()}"
    return value


def resolve_actor(option: str | None) -> str:
    """``--as``, else ``GOVERN_USER``, else the OS login name."""
    if option:
        return option
    env = os.environ.get("GOVERN_USER")
    if env:
        return env
    import getpass

    return getpass.getuser()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def lock_timeout() -> float:
    """``GOVERN_LOCK_TIMEOUT``: seconds a writer waits for another writer (SQLite and PostgreSQL)."""
    raw = os.environ.get("GOVERN_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_LOCK_TIMEOUT_SECONDS:  # also refuses nan
        from govern.errors import InvalidInput

        limit = f"{MAX_LOCK_TIMEOUT_SECONDS:g}"
        raise InvalidInput(f"GOVERN_LOCK_TIMEOUT must be a number of seconds between 0 and {limit}")
    return value
