"""Crash injection: kill ``offboard start`` at every step boundary (and at random times);
running it again always reaches the same final state as an uninterrupted run, and the
audit chain verifies.
"""

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import CLOCK_ENV, FAST_KDF, Govern, passphrase_of
from pg import Cluster
from sqlalchemy import create_engine, text
from sqlmodel import Session

from audit.chain import verify_chain
from audit.stream import SealCursor, stream_events

pytestmark = pytest.mark.e2e
GOVERN = Path(sys.executable).with_name("govern")
AUTOMATIC_STEPS = 6  # suspend, cancel-requests, reassign-owner, remove-access x3


def build(g: Govern) -> None:
    g.init()
    g.enrol("bob")
    g.enrol("carol")
    for slug in ("fb-acme", "ig-acme", "x-acme"):
        g.account(slug, password=f"{slug}-password-1")
        g.ok("access", "grant", slug, "bob", "--reason", "team")
    g.ok("access", "grant", "x-acme", "carol", "--reason", "team")
    g.ok("account", "set", "x-acme", "--owner", "bob")
    g.enrol("dave")
    g.ok("access", "request", "x-acme", "--reason", "cover", as_="dave")
    g.ok("access", "revoke", "fb-acme", "bob", "--reason", "moved")  # an account he left earlier
    g.ok("access", "request", "fb-acme", "--reason", "back", as_="bob")


def copy_vault(template: Path, folder: Path) -> str:
    """The template vault and alice's client state (her confirmed pin) in ``folder``: its URL."""
    shutil.copy(template / "vault.db", folder / "vault.db")
    shutil.copytree(template / "state", folder / "state")
    return f"sqlite:///{folder / 'vault.db'}"


def offboard(db_url: str, home: Path, crashpoint: str | None = None, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``offboard start bob`` as alice, on the client whose state is ``home/state``."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GOVERN_STATE_DIR": str(home / "state"),
        "GOVERN_DB_URL": db_url,
        "GOVERN_USER": "alice",
        "GOVERN_PASSPHRASE": passphrase_of("alice"),
        "GOVERN_KDF": FAST_KDF,
        **CLOCK_ENV,
        "GOVERN_CACHE_TTL": "0",
    }
    if crashpoint is not None:
        env["GOVERN_TEST_CRASHPOINT"] = crashpoint
    return subprocess.run(
        [str(GOVERN), "offboard", "start", "bob", "--reason", "left", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def snapshot(db_url: str) -> dict[str, Any]:
    """The final state, without times or ids that depend on when things ran."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:

            def rows(query: str) -> list[tuple[Any, ...]]:
                return sorted(tuple(r) for r in conn.execute(text(query)))

            state = {
                "people": rows("SELECT handle, status, role FROM person"),
                "grants": rows(
                    "SELECT a.slug, p.handle, g.revoked_at IS NOT NULL, COALESCE(g.revoke_reason, '')"
                    " FROM access_grant g JOIN account a ON a.id = g.account_id JOIN person p ON p.id = g.person_id"
                ),
                "wraps": rows(
                    "SELECT a.slug, COALESCE(p.handle, '(recovery)') FROM key_wrap w"
                    " JOIN data_key d ON d.id = w.data_key_id JOIN account a ON a.id = d.account_id"
                    " LEFT JOIN person p ON p.id = w.person_id WHERE d.retired_at IS NULL"
                ),
                "exposures": rows(
                    "SELECT a.slug, p.handle, e.kind, e.cleared_at IS NULL FROM credential_exposure e"
                    " JOIN account a ON a.id = e.account_id JOIN person p ON p.id = e.person_id"
                ),
                "steps": rows("SELECT number, kind, status, automatic FROM offboard_step"),
                "cases": rows("SELECT status FROM offboard_case"),
                "requests": rows("SELECT id, status FROM access_request"),
                "owners": rows(
                    "SELECT a.slug, COALESCE(p.handle, '') FROM account a LEFT JOIN person p ON p.id = a.owner_id"
                ),
                "events": sorted(
                    Counter(
                        (r[0], r[1] or "", r[2] or "")
                        for r in conn.execute(text("SELECT action, account, subject FROM audit_event"))
                    ).items()
                ),
            }
        with Session(engine) as session:
            verify_chain(stream_events(session), SealCursor(session))
    finally:
        engine.dispose()
    return state


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the vault and alice's client state, so every copy starts on a confirmed pin."""
    folder = tmp_path_factory.mktemp("crash-template")
    build_in(f"sqlite:///{folder / 'vault.db'}", folder)
    return folder


def build_in(db_url: str, folder: Path) -> None:
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("HOME", str(folder / "home"))
        patch.setenv("GOVERN_STATE_DIR", str(folder / "state"))
        patch.setenv("GOVERN_KDF", FAST_KDF)
        patch.setenv("GOVERN_CACHE_TTL", "0")
        build(Govern(db_url, patch))
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def reference(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("crash-reference")
    url = copy_vault(template, folder)
    result = offboard(url, folder)
    assert result.returncode == 0, result.stderr
    state = snapshot(url)
    assert ("bob", "offboarded", "member") in state["people"]
    assert not [w for w in state["wraps"] if w[1] == "bob"]
    return state


POINTS = [
    "before-commit",
    "offboard-planned",
    *[f"offboard-in-step-{n}" for n in range(1, AUTOMATIC_STEPS + 1)],
    *[f"offboard-step-{n}" for n in range(1, AUTOMATIC_STEPS + 1)],
]


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_every_boundary_then_resume(
    template: Path, reference: dict[str, Any], tmp_path: Path, point: str
) -> None:
    url = copy_vault(template, tmp_path)
    crashed = offboard(url, tmp_path, crashpoint=point)
    assert crashed.returncode == -9, f"{point} was never reached: {crashed.stderr}"
    resumed = offboard(url, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot(url) == reference


def test_crash_at_random_times_then_resume(template: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(20261127)  # noqa: S311  (kill timing for a test, not cryptography)
    for attempt in range(4):
        folder = tmp_path / f"run-{attempt}"
        folder.mkdir()
        url = copy_vault(template, folder)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(folder),
            "GOVERN_STATE_DIR": str(folder / "state"),
            "GOVERN_DB_URL": url,
            "GOVERN_USER": "alice",
            "GOVERN_PASSPHRASE": passphrase_of("alice"),
            "GOVERN_KDF": FAST_KDF,
            **CLOCK_ENV,
            "GOVERN_CACHE_TTL": "0",
        }
        proc = subprocess.Popen(
            [str(GOVERN), "offboard", "start", "bob", "--reason", "left"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 0.9))
        proc.kill()
        proc.wait(timeout=60)
        resumed = offboard(url, folder)
        assert resumed.returncode == 0, resumed.stderr
        assert snapshot(url) == reference


@pytest.mark.postgres
def test_crash_mid_step_on_postgres(pg_cluster: Cluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database(f"crash_{os.getpid()}")
    build_in(url, tmp_path)
    assert offboard(url, tmp_path, crashpoint="offboard-in-step-4").returncode == -9
    assert offboard(url, tmp_path).returncode == 0
    state = snapshot(url)
    assert ("bob", "offboarded", "member") in state["people"]
    assert not [w for w in state["wraps"] if w[1] == "bob"]
    assert Counter(e[0][0] for e in state["events"])["offboard.started"] == 1
