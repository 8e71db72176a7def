"""Shared fixtures: an isolated environment, fast KDF, in-memory keyring, both backends."""

import io
import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import keyring
import pytest
from memkeyring import MemoryKeyring
from pg import Cluster, cluster

from govern.timeutil import CLOCK_SHIFT_ENV, utcnow

TESTS = Path(__file__).parent
# The floor of govern's Argon2id parameters: fast enough for tests, still valid.
# Product defaults (m=64 MiB, t=3, p=4) are never lowered; this only sets new blobs.
FAST_KDF = "m=19456,t=2,p=1"
CANARY_PASSWORD = "CANARY-pw-7f3a9c1e-do-not-leak"
CANARY_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CANARY_URI = f"otpauth://totp/Acme:social?secret={CANARY_SEED}&issuer=Acme"


# ``make test-future`` moves every process's clock (this one and each subprocess's) a year ahead.
CLOCK_ENV = {CLOCK_SHIFT_ENV: os.environ[CLOCK_SHIFT_ENV]} if os.environ.get(CLOCK_SHIFT_ENV) else {}


def passphrase_of(handle: str) -> str:
    return f"{handle} correct horse battery"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test touches the user's home, vault or keyring."""
    for name in list(os.environ):
        if (name.startswith("GOVERN_") and name != CLOCK_SHIFT_ENV) or name in ("NO_COLOR",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("GOVERN_HOME", str(tmp_path / "govern-home"))
    monkeypatch.setenv("GOVERN_KDF", FAST_KDF)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "memkeyring.MemoryKeyring")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    MemoryKeyring.entries.clear()
    keyring.set_keyring(MemoryKeyring())
    # In-process runs never prompt on the terminal pytest may have (tests/test_prompt_tty.py
    # drives a real one through the installed entry point).
    monkeypatch.setattr("govern.unlock.terminal_available", lambda: False)
    yield
    MemoryKeyring.entries.clear()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with cluster() as server:
        yield server


_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault' / 'vault.db'}"
    server: Cluster = request.getfixturevalue("pg_cluster")
    return server.create_database(f"govern_{os.getpid()}_{next(_db_counter)}")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        import json

        return json.loads(self.out)


_DEFAULT = object()


class Govern:
    """Runs the real CLI (``govern.cli.main.run``) in-process, with its error handling."""

    def __init__(self, db: str, monkeypatch: pytest.MonkeyPatch, *, make_folder: bool = True) -> None:
        self.db = db
        if make_folder and db.startswith("sqlite:///"):
            # An explicit --db needs its folder to exist (govern makes folders only with --parents).
            Path(db.removeprefix("sqlite:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._monkeypatch = monkeypatch
        self.offset = timedelta(0)

    def later(self, delta: timedelta) -> None:
        """Move this runner's clock forward (the injected clock every command reads)."""
        self.offset += delta

    def __call__(
        self,
        *args: str,
        as_: str | None = "alice",
        passphrase: Any = _DEFAULT,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        from govern.cli.main import run

        out, err = io.StringIO(), io.StringIO()
        with self._monkeypatch.context() as patch:
            patch.setenv("GOVERN_DB_URL", self.db)
            if as_ is not None:
                patch.setenv("GOVERN_USER", as_)
            secret = passphrase_of(as_ or "alice") if passphrase is _DEFAULT else passphrase
            if secret is None:
                patch.delenv("GOVERN_PASSPHRASE", raising=False)
            else:
                patch.setenv("GOVERN_PASSPHRASE", secret)
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            if self.offset:
                offset = self.offset
                patch.setattr("govern.context.utcnow", lambda: utcnow() + offset)
                patch.setattr("govern.timeutil.utcnow", lambda: utcnow() + offset)  # the verifier's clock
            patch.setattr(sys, "stdin", io.StringIO(input or ""))
            patch.setattr(sys, "stdout", out)
            patch.setattr(sys, "stderr", err)
            code = run(list(args))
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.code == 0, f"govern {' '.join(args)} -> {result.code}: {result.err}"
        return result

    def init(self, admin: str = "alice") -> Result:
        return self.ok("init", "--org", "Acme", "--admin", admin, "--name", "Alice Admin", as_=admin)

    def enrol(self, handle: str, role: str = "member", *, by: str = "alice") -> None:
        code = self.ok("staff", "add", handle, "--name", handle.title(), "--role", role, "--json", as_=by).json()[
            "enrolment_code"
        ]
        self.ok("staff", "enroll", handle, "--code", code, as_=handle)

    def account(self, slug: str = "x-acme", *, password: str = CANARY_PASSWORD) -> None:
        self.ok("account", "add", slug, "--platform", "x", "--handle", "@acme")
        self.ok("secret", "set", slug, "--username", "acme-social", "--password-stdin", input=password + "\n")


@pytest.fixture
def govern(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Govern:
    """The CLI against a fresh database (not yet initialised), on each backend."""
    return Govern(db_url, monkeypatch)


@pytest.fixture
def vault(govern: Govern, request: pytest.FixtureRequest) -> Iterator[Govern]:
    """An initialised vault: admin alice, member bob, account x-acme with a canary password.

    Afterwards, unless the test tampers with the database on purpose, the whole log must
    verify and explain every row of the tables: each scenario doubles as a projection test.
    """
    govern.init()
    govern.enrol("bob")
    govern.account()
    yield govern
    if request.node.get_closest_marker("tampers") is None:
        verified = govern("audit", "verify", as_="alice")
        assert verified.code == 0, f"the log does not explain the tables after this test:\n{verified.err}"


@pytest.fixture
def sqlite_govern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Govern:
    """The CLI against a fresh SQLite file only (for tests that read the file's bytes)."""
    return Govern(f"sqlite:///{tmp_path / 'vault' / 'vault.db'}", monkeypatch)
