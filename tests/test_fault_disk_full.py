"""Fault campaign, disk full (issue 10): writes to a SQLite vault whose disk is full fail with
one clear line and a documented exit code (never 1, never a traceback); once space is back
the vault verifies and nothing reported done is lost.

Two ways to fill the disk, both always run where they can: a small tmpfs mounted by the test
(as root, when ``mount`` works) filled to the last byte, and ``RLIMIT_FSIZE`` set in the
subprocess (``SIGXFSZ`` ignored, so writes fail with EFBIG): the second needs no privilege,
so CI never skips the campaign.
"""

import contextlib
import errno
import json
import os
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Govern
from faultkit import FAILURES, SEED, Tally, events_of, run_govern, subprocess_env, verify_chain_of

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def small_tmpfs(folder: Path, megabytes: int) -> Iterator[bool]:
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
            timeout=30,
        )
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False, timeout=30)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        chunk = b"\0" * 65536
        while True:
            try:
                handle.write(chunk)
                handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    for size in (4096, 512, 1):  # the last blocks too
        with contextlib.suppress(OSError), open(folder / f"filler-{size}", "wb") as tail:
            while True:
                tail.write(b"\0" * size)
                tail.flush()
    return filler


def writes() -> list[tuple[list[str], str]]:
    return [
        (["secret", "set", "x-acme", "--password-stdin"], f"pw-{SEED}-full-1\n"),
        (["account", "set", "x-acme", "--team", "full-team-1"], ""),
        (["access", "grant", "x-acme", "carol", "--reason", "full-grant-1"], ""),
        (["account", "add", "full-acct", "--platform", "x", "--handle", "@full"], ""),
        (["secret", "set", "x-acme", "--password-stdin"], f"pw-{SEED}-full-2\n"),
        (["access", "revoke", "x-acme", "bob", "--reason", "full-revoke-1"], ""),
    ]


def campaign(
    name: str,
    g: Govern,
    env: dict[str, str],
    preexec: Callable[[], None] | None,
    free: Callable[[], None],
    before: int,
) -> None:
    """``before``: the number of events in the log before the disk was filled."""
    tally = Tally(name)
    done: list[list[str]] = []
    password = "CANARY-pw-7f3a9c1e-do-not-leak"
    for args, stdin in writes():
        outcome = run_govern(args, env, stdin=stdin, timeout=120, preexec_fn=preexec)
        tally.add(outcome, {0, *FAILURES}, where=name)
        if outcome.code == 0:
            done.append(args)
            if args[:2] == ["secret", "set"]:
                password = stdin.strip()
    tally.extra["reported done while full"] = len(done)
    free()
    verified = g("audit", "verify")
    tally.verify[f"exit {verified.code}"] += 1
    if verified.code != 0:
        tally.defect("audit verify after freeing space", verified.err.strip()[:300])
    verify_chain_of(g.db)
    events = events_of(g.db)[before:]
    marks = json.dumps([[e["action"], e["account"], e["subject"], e["reason"], e["data"]] for e in events])
    for args in done:
        needle = {"account": args[-1], "access": args[-1]}.get(args[0])
        if needle is not None and needle not in marks:
            tally.lost += 1
            tally.defect("lost write", " ".join(args))
    shown = g("secret", "show", "x-acme")
    if shown.out.strip() != password:
        tally.lost += 1
        tally.defect("lost secret", f"reveal -> {shown.code}; expected the last secret reported set")
    after = run_govern(["account", "set", "x-acme", "--team", "after-full"], env, timeout=120)
    tally.add(after, {0}, where=f"{name}, space back")
    figures = tally.report()
    assert not tally.defects, f"seed {SEED}:\n{figures}"


def prepare(g: Govern) -> None:
    g.init()
    g.enrol("bob")
    g.enrol("carol")
    g.account()
    g.ok("access", "grant", "x-acme", "bob", "--reason", "team")


def test_full_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with small_tmpfs(tmp_path / "small", 8) as mounted:
        if not mounted:  # no privilege: the RLIMIT_FSIZE test below still fills a disk for govern
            test_file_size_limit(tmp_path / "fallback", monkeypatch)
            return
        state = tmp_path / "state"
        monkeypatch.setenv("GOVERN_STATE_DIR", str(state))
        g = Govern(f"sqlite:///{tmp_path / 'small' / 'vault' / 'vault.db'}", monkeypatch)
        prepare(g)
        before = len(events_of(g.db))
        filler = fill(tmp_path / "small")

        def free() -> None:
            for path in (tmp_path / "small").glob("filler*"):
                path.unlink()

        assert filler.exists()
        campaign("disk full (tmpfs)", g, subprocess_env(g.db, tmp_path / "home", state), None, free, before)


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path.mkdir(exist_ok=True)
    state = tmp_path / "state"
    monkeypatch.setenv("GOVERN_STATE_DIR", str(state))
    g = Govern(f"sqlite:///{tmp_path / 'vault' / 'vault.db'}", monkeypatch)
    prepare(g)

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: writes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    campaign(
        "disk full (RLIMIT_FSIZE)",
        g,
        subprocess_env(g.db, tmp_path / "home", state),
        limited,
        lambda: None,
        len(events_of(g.db)),
    )
