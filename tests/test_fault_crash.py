"""Fault campaign, crash injection (issue 10): ``kill -9`` of the installed entry point at
random moments of ``secret set``, ``rotation start``, ``rotation confirm``, ``access approve``
and ``offboard start``, on SQLite and PostgreSQL.

Each trial copies a prepared vault (and this client's pins), runs the command with either a
crashpoint (``GOVERN_TEST_CRASHPOINT``, govern/faults.py) or a timer that SIGKILLs it after a
seeded random delay, then proves: ``audit verify`` exits 0, the change is all there or not at
all, a holder reveals a password that was really set (the old or the new one), and the next
command works. Fast: 2 trials per command on SQLite, 1 on PostgreSQL; full (``make fuzz``):
50 and 10.
"""

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Govern
from faultkit import FULL, GOVERN, SEED, Tally, events_of, limit_memory, query, subprocess_env, verify_chain_of
from pg import Cluster

pytestmark = pytest.mark.e2e

OLD = f"pw-{SEED}-x-old"
IG_OLD = f"pw-{SEED}-ig-old"
NEW = f"pw-{SEED}-x-new"
OPS = ("secret-set", "rotation-start", "rotation-confirm", "access-approve", "offboard-start")
OFFBOARD_POINTS = ("offboard-planned", *(f"offboard-{k}-{n}" for k in ("in-step", "step") for n in range(1, 7)))


@dataclass
class Template:
    backend: str
    url: str  # sqlite: the file; postgres: the template database's URL
    state: Path
    pending: str  # the pending password of ig-acme's rotation
    request: str  # carol's pending request for x-acme
    cluster: Cluster | None = None


def build(g: Govern) -> tuple[str, str]:
    g.init()
    g.enrol("bob")
    g.enrol("carol")
    g.account("x-acme", password=OLD)
    g.account("ig-acme", password=IG_OLD)
    for slug in ("x-acme", "ig-acme"):
        g.ok("access", "grant", slug, "bob", "--reason", "team")
    request = g.ok("access", "request", "x-acme", "--reason", "cover", as_="carol").out.strip()
    g.ok("rotation", "start", "ig-acme")
    pending = g.ok("secret", "show", "ig-acme", "--pending").out.strip()
    return pending, request


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Template:
    folder = tmp_path_factory.mktemp(f"crash-template-{request.param}")
    cluster: Cluster | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'vault' / 'vault.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"crashtpl_{os.getpid()}")
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("GOVERN_KDF", "m=19456,t=2,p=1")
        patch.setenv("GOVERN_CACHE_TTL", "0")
        patch.setenv("GOVERN_STATE_DIR", str(folder / "state"))
        patch.setenv("HOME", str(folder / "home"))
        pending, req = build(Govern(url, patch))
    finally:
        patch.undo()
    return Template(request.param, url, folder / "state", pending, req, cluster)


_copies = iter(range(1_000_000))


def copy_vault(template: Template, folder: Path) -> str:
    shutil.copytree(template.state, folder / "state")
    if template.backend == "sqlite":
        source = Path(template.url.removeprefix("sqlite:///"))
        (folder / "vault").mkdir(mode=0o700)
        for suffix in ("", "-wal"):
            if Path(f"{source}{suffix}").exists():
                shutil.copy2(f"{source}{suffix}", folder / "vault" / f"vault.db{suffix}")
        return f"sqlite:///{folder / 'vault' / 'vault.db'}"
    import psycopg

    assert template.cluster is not None
    name = f"crash_{os.getpid()}_{next(_copies)}"
    source = template.url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={template.cluster.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return template.cluster.url(name)


def command(op: str, template: Template) -> tuple[list[str], str]:
    return {
        "secret-set": (["secret", "set", "x-acme", "--password-stdin"], NEW + "\n"),
        "rotation-start": (["rotation", "start", "x-acme"], ""),
        "rotation-confirm": (["rotation", "confirm", "ig-acme"], ""),
        "access-approve": (["access", "approve", template.request], ""),
        "offboard-start": (["offboard", "start", "bob", "--reason", "left"], ""),
    }[op]


def crash(args: list[str], stdin: str, env: dict[str, str], point: str | None, delay: float) -> int:
    """Run govern and kill it: at ``point`` (its own SIGKILL) or after ``delay`` seconds; its exit code."""
    env = {**env, "GOVERN_USER": "alice", "GOVERN_PASSPHRASE": "alice correct horse battery"}
    if point is not None:
        env["GOVERN_TEST_CRASHPOINT"] = point
    proc = subprocess.Popen(
        [str(GOVERN), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit_memory,  # noqa: PLW1509  (a resource limit only)
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    if point is None:
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=120)


def run_time(template: Template, op: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    """How long the command takes, uncrashed, on a copy of the template (on this machine, now)."""
    folder.mkdir()
    url = copy_vault(template, folder)
    monkeypatch.setenv("GOVERN_STATE_DIR", str(folder / "state"))
    args, stdin = command(op, template)
    started = time.monotonic()
    code = crash(args, stdin, subprocess_env(url, folder / "home", folder / "state"), None, 600.0)
    assert code == 0, f"{op} does not run uncrashed: exit {code}"
    return time.monotonic() - started


def count(url: str, action: str, account: str | None = None) -> int:
    return sum(1 for e in events_of(url) if e["action"] == action and (account is None or e["account"] == account))


def trial(
    template: Template,
    op: str,
    rng: random.Random,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: Tally,
    span: float,
) -> None:
    folder.mkdir()
    url = copy_vault(template, folder)
    monkeypatch.setenv("GOVERN_STATE_DIR", str(folder / "state"))
    g = Govern(url, monkeypatch)
    args, stdin = command(op, template)
    if rng.random() < 0.4:
        point = rng.choice(OFFBOARD_POINTS if op == "offboard-start" and rng.random() < 0.7 else ("before-commit",))
        delay = 0.0
    else:
        # Up to a little past the command's measured run time: kills land before, during and
        # after its commit whatever the machine's load.
        point, delay = None, rng.uniform(0.05, span)
    code = crash(args, stdin, subprocess_env(url, folder / "home", folder / "state"), point, delay)
    where = f"{op} trial {folder.name} ({point or f'kill after {delay:.2f}s'}, exit {code})"
    tally.extra["killed" if code == -9 else f"finished before the kill (exit {code})"] += 1
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    def run(*a: str, who: str = "alice", codes: frozenset[int] | set[int] = frozenset({0}), stdin: str = "") -> str:
        result = g(*a, as_=who, input=stdin)
        tally.exits[str(result.code)] += 1
        tally.tracebacks += "Traceback" in result.err
        expect(result.code in codes, f"govern {' '.join(a)} as {who} -> {result.code} {result.err.strip()[:160]}")
        return result.out.strip()

    verified = g("audit", "verify")
    tally.verify[f"after crash: exit {verified.code}"] += 1
    expect(verified.code == 0, f"audit verify after the crash -> {verified.code}: {verified.err.strip()[:200]}")
    if op == "secret-set":
        applied = count(url, "secret.set", "x-acme") == 2
        expect(run("secret", "show", "x-acme", who="bob") == (NEW if applied else OLD), "bob's reveal")
        run("secret", "set", "x-acme", "--password-stdin", stdin=f"{NEW}-again\n")
        expect(run("secret", "show", "x-acme", who="bob") == f"{NEW}-again", "reveal after the next set")
    elif op == "rotation-start":
        applied = count(url, "rotation.started", "x-acme") == 1
        pending = run("secret", "show", "x-acme", "--pending", codes={0} if applied else {3})
        expect(run("secret", "show", "x-acme", who="bob") == OLD, "bob's reveal during the rotation")
        if not applied:
            run("rotation", "start", "x-acme")
            pending = run("secret", "show", "x-acme", "--pending")
        run("rotation", "confirm", "x-acme")
        expect(bool(pending) and run("secret", "show", "x-acme", who="bob") == pending, "reveal after confirm")
    elif op == "rotation-confirm":
        applied = count(url, "rotation.confirmed", "ig-acme") == 1
        expect(run("secret", "show", "ig-acme", who="bob") == (template.pending if applied else IG_OLD), "reveal")
        run("rotation", "confirm", "ig-acme", codes={3} if applied else {0})
        expect(run("secret", "show", "ig-acme", who="bob") == template.pending, "reveal after the next confirm")
    elif op == "access-approve":
        applied = count(url, "access.approved", "x-acme") == 1
        expect(count(url, "access.granted", "x-acme") == 1 + applied, "an approval without its grant")
        shown = run("secret", "show", "x-acme", who="carol", codes={0} if applied else {4})
        expect(shown == (OLD if applied else ""), "carol's reveal")
        run("access", "approve", template.request, codes={8} if applied else {0})
        expect(run("secret", "show", "x-acme", who="carol") == OLD, "carol's reveal after the next approve")
    else:
        applied = count(url, "offboard.started") == 1
        run("offboard", "start", "bob", "--reason", "left")
        run("secret", "show", "x-acme", who="bob", codes={4, 5})
        expect(run("secret", "show", "x-acme") == OLD, "alice's reveal after offboarding")
        people = dict(query(url, "SELECT handle, status FROM person"))
        expect(people["bob"] == "offboarded", f"bob is {people['bob']}")
        live = query(
            url,
            "SELECT COUNT(*) FROM access_grant g JOIN person p ON p.id = g.person_id"
            " WHERE p.handle = 'bob' AND g.revoked_at IS NULL",
        )
        expect(live[0][0] == 0, "bob still holds grants")
    tally.extra["applied before the crash" if applied else "not applied before the crash"] += 1
    final = g("audit", "verify")
    tally.verify[f"after the next command: exit {final.code}"] += 1
    expect(final.code == 0, f"audit verify at the end -> {final.code}: {final.err.strip()[:200]}")
    try:
        verify_chain_of(url)
    except Exception as exc:
        problems.append(f"chain: {exc}")
    for problem in problems:
        tally.defect(f"{op}: {problem.split(':')[0][:80]}", f"{where}: {problem}")
    if problems:
        tally.lost += 1


@pytest.mark.parametrize("op", OPS)
def test_kill_9_then_next_command_works(
    template: Template, op: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials = (50 if FULL else 2) if template.backend == "sqlite" else (10 if FULL else 1)
    rng = random.Random(f"{SEED}:{template.backend}:{op}")  # noqa: S311  (kill timing, not cryptography)
    tally = Tally(f"crash {op} {template.backend}")
    monkeypatch.setenv("GOVERN_CACHE_TTL", "0")
    span = 1.25 * run_time(template, op, tmp_path / "calibration", monkeypatch)
    tally.extra[f"kills drawn in 0.05-{span:.2f}s"] += 1
    for n in range(trials):
        trial(template, op, rng, tmp_path / f"t{n}", monkeypatch, tally, span)
    figures = tally.report()
    assert not tally.defects, f"seed {SEED}:\n{figures}"
    assert tally.tracebacks == 0, figures
