"""File modes: the vault folder is 0700 and its files 0600 whatever the umask."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Govern


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_modes_under_a_permissive_umask(sqlite_govern: Govern, tmp_path: Path, open_umask: None) -> None:
    recovery = tmp_path / "recovery.txt"
    Path(sqlite_govern.db.removeprefix("sqlite:///")).parent.rmdir()  # govern makes it, with --parents
    sqlite_govern.ok(
        "init",
        "--org",
        "Acme",
        "--admin",
        "alice",
        "--name",
        "Alice",
        "--recovery-file",
        str(recovery),
        "--parents",
        as_="alice",
    )
    sqlite_govern.enrol("bob")
    sqlite_govern.account()
    db = Path(sqlite_govern.db.removeprefix("sqlite:///"))
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600
    assert mode(recovery) == 0o600
    assert recovery.read_text().startswith("GOVERN-RECOVERY-1-")
    # The WAL and SHM files exist while a connection is open; SQLite gives them the
    # database file's mode, which is what keeps them 0600 under any umask.
    import sqlite3

    reader = sqlite3.connect(db)
    try:
        reader.execute("SELECT COUNT(*) FROM person").fetchone()
        for suffix in ("-wal", "-shm"):
            side = Path(f"{db}{suffix}")
            assert side.exists(), suffix
            assert mode(side) == 0o600, suffix
        report = sqlite_govern("doctor", "--json").json()
        assert not [p for p in report["problems"] if "expected 06" in p or "expected 07" in p]
        assert {Path(name).name for name in report["files"]} >= {"vault.db-wal", "vault.db-shm"}
    finally:
        reader.close()


def test_doctor_flags_loose_modes(sqlite_govern: Govern) -> None:
    sqlite_govern.init()
    db = Path(sqlite_govern.db.removeprefix("sqlite:///"))
    os.chmod(db.parent, 0o755)  # noqa: S103  (the loose mode doctor must flag)
    result = sqlite_govern("doctor", "--json")
    assert result.code == 7
    assert any("expected 0700" in p for p in result.json()["problems"])


def test_recovery_file_is_never_overwritten(sqlite_govern: Govern, tmp_path: Path) -> None:
    existing = tmp_path / "recovery.txt"
    existing.write_text("keep me")
    result = sqlite_govern("init", "--org", "A", "--admin", "alice", "--name", "A", "--recovery-file", str(existing))
    assert result.code == 8
    assert existing.read_text() == "keep me"
    assert not Path(sqlite_govern.db.removeprefix("sqlite:///")).exists(), "nothing half-written"


def test_failed_init_leaves_nothing(sqlite_govern: Govern) -> None:
    result = sqlite_govern("init", "--org", "A", "--admin", "alice", "--name", "A", passphrase="short")
    assert result.code == 2
    assert not Path(sqlite_govern.db.removeprefix("sqlite:///")).exists()
