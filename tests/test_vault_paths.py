"""Issue 14: govern never touches what is not a vault; environmental failures get their own codes.

A ``--db`` or ``GOVERN_HOME`` that names a folder, a text file, an empty file, a FIFO, a
device node or another program's SQLite file is refused before anything is opened,
created or chmodded: its mode, size and content stay as they were, and no journal
appears beside it. ``init`` is atomic under ``kill -9``; Ctrl-C after a commit does not
turn a saved change into a failure; a writer waits for the lock a bounded time.
"""

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, passphrase_of
from faultkit import GOVERN, Outcome, run_govern, subprocess_env
from pg import Cluster

from govern.vaultfile import SIDECAR_SUFFIXES

INIT = ("init", "--org", "Acme", "--admin", "alice", "--name", "Alice Admin")


def _directory(path: Path) -> None:
    path.mkdir(mode=0o755)
    (path / "keep.txt").write_text("mine\n")


def _text_file(path: Path) -> None:
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o644)


def _null_device(path: Path) -> None:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is


def _foreign_sqlite(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.execute("INSERT INTO notes VALUES ('a browser history, say')")
    connection.commit()
    connection.close()


def _symlink_to_text(path: Path) -> None:
    target = path.with_name("target.txt")
    target.write_text("not a vault\n")
    target.chmod(0o644)
    path.symlink_to(target)


KINDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "folder": (_directory, "is a folder"),
    "text-file": (_text_file, "is not an SQLite database"),
    "empty-file": (_empty_file, "is an empty file"),
    "fifo": (_fifo, "is a FIFO"),
    "null-device": (_null_device, "is a character device"),
    "foreign-sqlite": (_foreign_sqlite, "is an SQLite database of another program"),
    "symlink": (_symlink_to_text, "is a symbolic link"),
}


def _fingerprint(path: Path) -> tuple[int, int, str, list[str]]:
    """Mode, size, content digest of ``path`` (itself, not a link's target) and what lies beside it."""
    info = path.lstat()
    digest = ""
    if stat.S_ISREG(info.st_mode):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISDIR(info.st_mode):
        digest = ",".join(sorted(p.name for p in path.iterdir()))
    beside = sorted(p.name for p in path.parent.iterdir())
    return stat.S_IMODE(info.st_mode), info.st_size, digest, beside


def _make(kind: str, folder: Path) -> Path:
    folder.mkdir(mode=0o755, exist_ok=True)
    path = folder / "vault.db"
    KINDS[kind][0](path)
    if not path.is_symlink() and kind != "folder":
        os.chmod(path, 0o644)
    return path


@pytest.mark.parametrize("command", [("whoami",), INIT, ("audit", "verify")], ids=["whoami", "init", "verify"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_db_path_that_is_not_a_vault_is_refused_untouched(kind: str, command: tuple[str, ...], tmp_path: Path) -> None:
    path = _make(kind, tmp_path / "place")
    before = _fingerprint(path)
    env = subprocess_env(f"sqlite:///{path}", tmp_path)
    outcome = run_govern(["--db", str(path), *command], env, timeout=60)
    assert outcome.code == 2, outcome.describe()
    assert outcome.problems() == []
    assert KINDS[kind][1] in outcome.err, outcome.err
    assert "nothing was changed" in outcome.err
    assert _fingerprint(path) == before
    for suffix in SIDECAR_SUFFIXES:
        assert not os.path.lexists(f"{path}{suffix}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_govern_home_holding_something_else_is_refused_untouched(kind: str, tmp_path: Path) -> None:
    home = tmp_path / "govern-home"
    path = _make(kind, home)
    before, home_mode = _fingerprint(path), stat.S_IMODE(home.stat().st_mode)
    env = subprocess_env("", tmp_path)
    del env["GOVERN_DB_URL"]
    for command in (("whoami",), INIT):
        outcome = run_govern(command, env)
        assert outcome.code == 2, outcome.describe()
        assert outcome.problems() == []
    assert _fingerprint(path) == before
    assert stat.S_IMODE(home.stat().st_mode) == home_mode


def test_govern_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "govern-home"
    home.write_text("oops\n")
    home.chmod(0o644)
    env = subprocess_env("", tmp_path)
    del env["GOVERN_DB_URL"]
    for command in (("whoami",), INIT):
        outcome = run_govern(command, env)
        assert outcome.code == 2, outcome.describe()
        assert outcome.problems() == []
    assert home.read_text() == "oops\n"
    assert stat.S_IMODE(home.stat().st_mode) == 0o644


def test_missing_db_folder_needs_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "vault.db"
    env = subprocess_env(f"sqlite:///{path}", tmp_path)
    refused = run_govern(["--db", str(path), *INIT], env)
    assert refused.code == 2, refused.describe()
    assert "--parents" in refused.err
    assert not (tmp_path / "a").exists()
    made = run_govern(["--db", str(path), *INIT, "--parents"], env)
    assert made.code == 0, made.describe()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_home_is_made_when_missing(tmp_path: Path) -> None:
    env = subprocess_env("", tmp_path)
    del env["GOVERN_DB_URL"]
    made = run_govern(INIT, env)
    assert made.code == 0, made.describe()
    assert (tmp_path / "govern-home" / "vault.db").is_file()


def _vault(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "vault" / "vault.db"
    path.parent.mkdir(mode=0o700)
    env = subprocess_env(f"sqlite:///{path}", tmp_path)
    assert run_govern(INIT, env).code == 0
    return path, env


def test_truncated_vault_is_an_integrity_failure(tmp_path: Path) -> None:
    path, env = _vault(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    outcome = run_govern(["whoami"], env)
    assert outcome.code == 6, outcome.describe()
    assert "damaged" in outcome.err
    assert "backup" in outcome.err
    assert outcome.problems() == []


def test_vault_with_a_damaged_page_is_an_integrity_failure(tmp_path: Path) -> None:
    path, env = _vault(tmp_path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page
    path.write_bytes(bytes(data))
    outcome = run_govern(["whoami"], env)
    assert outcome.code == 6, outcome.describe()
    assert outcome.problems() == []


def test_vault_with_a_permissive_mode_is_tightened(tmp_path: Path) -> None:
    path, env = _vault(tmp_path)
    path.chmod(0o644)
    assert run_govern(["whoami"], env).code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- init is atomic -------------------------------------------------------------------------


def _state_after_crash(path: Path, recovery: Path, env: dict[str, str]) -> str:
    """ "none" (no vault; a recovery file only as the orphan the next init recognises) or "complete"."""
    if not path.exists():
        assert not [p for p in path.parent.iterdir() if p.name.startswith("vault.db")], "leftovers at the vault path"
        return "none"
    whoami = run_govern(["whoami", "--json"], env)
    assert whoami.code == 0, whoami.describe()
    assert run_govern(["audit", "verify"], env).code == 0
    assert recovery.read_text().startswith("GOVERN-RECOVERY-1-")
    return "complete"


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ("init-schema", "none"),
        ("before-commit", "none"),
        ("init-genesis", "none"),
        ("init-recovery-written", "none"),
        ("init-placed", "complete"),
    ],
)
def test_init_killed_at_any_point_leaves_no_vault_or_a_complete_one(point: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "vault" / "vault.db"
    path.parent.mkdir(mode=0o700)
    recovery = tmp_path / "recovery.txt"
    env = subprocess_env(f"sqlite:///{path}", tmp_path)
    args = [*INIT, "--recovery-file", str(recovery)]
    crashed = run_govern(args, {**env, "GOVERN_TEST_CRASHPOINT": point})
    assert crashed.code == -signal.SIGKILL, crashed.describe()
    assert _state_after_crash(path, recovery, env) == expected
    if expected == "none":
        # The same command again: an orphaned recovery key (written before the vault is placed, so a
        # placed vault always has one) is recognised by its fingerprint and replaced.
        again = run_govern(args, env)
        assert again.code == 0, again.describe()
        assert _state_after_crash(path, recovery, env) == "complete"
        assert not [p.name for p in path.parent.iterdir() if ".init-" in p.name], "the dead init's staging file stays"


def test_init_killed_at_random_moments(tmp_path: Path) -> None:
    import random

    rng = random.Random(14)  # noqa: S311 (moments to kill at, not secrets)
    outcomes = {"none": 0, "complete": 0}
    for trial in range(6):
        folder = tmp_path / f"trial-{trial}"
        path = folder / "vault" / "vault.db"
        path.parent.mkdir(parents=True, mode=0o700)
        recovery = folder / "recovery.txt"
        env = subprocess_env(f"sqlite:///{path}", folder)
        process = subprocess.Popen(
            [str(GOVERN), *INIT, "--recovery-file", str(recovery)],
            env={**env, "GOVERN_USER": "alice", "GOVERN_PASSPHRASE": passphrase_of("alice")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 2.5))
        process.kill()
        process.wait()
        state = _state_after_crash(path, recovery, env)
        outcomes[state] += 1
        if state == "none":
            again = run_govern([*INIT, "--recovery-file", str(recovery)], env)
            assert again.code == 0, again.describe()
            assert _state_after_crash(path, recovery, env) == "complete"
    assert sum(outcomes.values()) == 6


def test_init_keeps_a_recovery_file_that_is_not_its_own_orphan(tmp_path: Path) -> None:
    path = tmp_path / "vault" / "vault.db"
    path.parent.mkdir(mode=0o700)
    recovery = tmp_path / "recovery.txt"
    recovery.write_text("GOVERN-RECOVERY-1-of-another-vault\n")
    env = subprocess_env(f"sqlite:///{path}", tmp_path)
    crashed = run_govern(
        [*INIT, "--recovery-file", str(tmp_path / "other.txt")], {**env, "GOVERN_TEST_CRASHPOINT": "init-genesis"}
    )
    assert crashed.code == -signal.SIGKILL
    refused = run_govern([*INIT, "--recovery-file", str(recovery)], env)
    assert refused.code == 8, refused.describe()
    assert recovery.read_text() == "GOVERN-RECOVERY-1-of-another-vault\n"


@pytest.mark.postgres
def test_init_on_postgres_completes_a_schema_left_by_a_crash(pg_cluster: Cluster, tmp_path: Path) -> None:
    pg_url = pg_cluster.create_database(f"govern_init_crash_{os.getpid()}")
    env = subprocess_env(pg_url, tmp_path)
    crashed = run_govern(INIT, {**env, "GOVERN_TEST_CRASHPOINT": "init-schema"})
    assert crashed.code == -signal.SIGKILL
    unfinished = run_govern(["whoami"], env)
    assert unfinished.code in (3, 6), unfinished.describe()  # no vault yet, never "unknown person" for ever
    again = run_govern(INIT, env)
    assert again.code == 0, again.describe()
    assert run_govern(["audit", "verify"], env).code == 0
    assert run_govern(INIT, env).code == 8  # and now it is a vault: init refuses


# -- Ctrl-C after a commit --------------------------------------------------------------------


def _set_secret(env: dict[str, str], point: str) -> Outcome:
    return run_govern(
        ["secret", "set", "x-acme", "--password-stdin"],
        {**env, "GOVERN_TEST_SIGINTPOINT": point},
        stdin="a-new-Password-42!\n",
    )


def _with_account(tmp_path: Path) -> dict[str, str]:
    _path, env = _vault(tmp_path)
    assert run_govern(["account", "add", "x-acme", "--platform", "x", "--handle", "@acme"], env).code == 0
    assert run_govern(["secret", "set", "x-acme", "--password-stdin"], env, stdin=f"{CANARY_PASSWORD}\n").code == 0
    return env


def _revealed(env: dict[str, str]) -> str:
    shown = run_govern(["secret", "show", "x-acme", "--field", "password"], env)
    assert shown.code == 0, shown.describe()
    return shown.out.strip()


def test_ctrl_c_after_commit_still_exits_0(tmp_path: Path) -> None:
    env = _with_account(tmp_path)
    outcome = _set_secret(env, "after-commit")
    assert outcome.code == 0, outcome.describe()
    assert "interrupted" not in outcome.err
    assert _revealed(env) == "a-new-Password-42!"


def test_ctrl_c_during_commit_is_deferred_and_the_change_kept(tmp_path: Path) -> None:
    env = _with_account(tmp_path)
    outcome = _set_secret(env, "before-commit")
    assert outcome.code == 0, outcome.describe()
    assert _revealed(env) == "a-new-Password-42!"


def test_ctrl_c_after_a_commit_stops_before_the_next_transaction() -> None:
    from govern import interrupts

    interrupts.defer()
    os.kill(os.getpid(), signal.SIGINT)  # remembered, not raised
    with pytest.raises(KeyboardInterrupt):
        interrupts.resume()
    interrupts.reset()


# -- the writer lock is waited for a bounded time --------------------------------------------


def test_sqlite_writer_waits_a_bounded_time_for_a_held_lock(tmp_path: Path) -> None:
    env = _with_account(tmp_path)
    path = Path(env["GOVERN_DB_URL"].removeprefix("sqlite:///"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        outcome = run_govern(
            ["account", "set", "x-acme", "--handle", "@acme2"], {**env, "GOVERN_LOCK_TIMEOUT": "1"}, timeout=30
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert outcome.code == 9, outcome.describe()
    assert "GOVERN_LOCK_TIMEOUT" in outcome.err
    assert outcome.seconds < 20
    assert run_govern(["account", "set", "x-acme", "--handle", "@acme2"], env).code == 0


@pytest.mark.postgres
def test_postgres_writer_waits_a_bounded_time_for_a_held_lock(pg_cluster: Cluster, tmp_path: Path) -> None:
    import psycopg

    pg_url = pg_cluster.create_database(f"govern_lock_{os.getpid()}")
    from govern.db import _PG_WRITE_LOCK

    env = subprocess_env(pg_url, tmp_path)
    assert run_govern(INIT, env).code == 0
    assert run_govern(["account", "add", "x-acme", "--platform", "x", "--handle", "@acme"], env).code == 0
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_PG_WRITE_LOCK,))
        outcome = run_govern(
            ["account", "set", "x-acme", "--handle", "@acme2"], {**env, "GOVERN_LOCK_TIMEOUT": "1"}, timeout=60
        )
        holder.execute("SELECT pg_advisory_unlock(%s)", (_PG_WRITE_LOCK,))
    assert outcome.code == 9, outcome.describe()
    assert "GOVERN_LOCK_TIMEOUT" in outcome.err
    assert run_govern(["account", "set", "x-acme", "--handle", "@acme2"], env).code == 0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon", "99999"])
def test_lock_timeout_out_of_range_is_a_usage_error(value: str, tmp_path: Path) -> None:
    _path, env = _vault(tmp_path)
    outcome = run_govern(["whoami"], {**env, "GOVERN_LOCK_TIMEOUT": value})
    assert outcome.code == 2, outcome.describe()
