"""End-to-end: the installed ``govern`` entry point in subprocesses, on both backends.

A canary password and TOTP seed are planted; no output of any command may show
them except the reveals that are meant to.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, CANARY_SEED, CANARY_URI, CLOCK_ENV, FAST_KDF, passphrase_of

pytestmark = pytest.mark.e2e

GOVERN = Path(sys.executable).with_name("govern")


class Shell:
    def __init__(self, db_url: str, tmp_path: Path) -> None:
        if db_url.startswith("sqlite:///"):  # an explicit --db needs its folder (or init --parents)
            Path(db_url.removeprefix("sqlite:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path / "home"),
            "GOVERN_DB_URL": db_url,
            "GOVERN_KDF": FAST_KDF,
            **CLOCK_ENV,
            "PYTHONPATH": os.environ["PYTHONPATH"],
            "PYTHON_KEYRING_BACKEND": "memkeyring.FileKeyring",
            "GOVERN_TEST_KEYRING_FILE": str(tmp_path / "keyring.json"),
        }
        self.transcript: list[str] = []

    def run(
        self, *args: str, who: str = "alice", stdin: str = "", code: int = 0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**self.env, "GOVERN_USER": who, "GOVERN_PASSPHRASE": passphrase_of(who), **env}
        result = subprocess.run(
            [str(GOVERN), *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=120, check=False
        )
        assert result.returncode == code, f"govern {' '.join(args)} -> {result.returncode}: {result.stderr}"
        assert "Traceback" not in result.stderr
        self.transcript.append(result.stderr)
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, "--json", **kwargs).stdout)


def test_installed_entry_point_exists() -> None:
    assert GOVERN.exists(), f"{GOVERN} missing: install the package (pip install -e .)"


def test_full_flow_through_the_entry_point(db_url: str, tmp_path: Path) -> None:
    sh = Shell(db_url, tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--recovery-file", str(tmp_path / "rk"))
    code = sh.json("staff", "add", "bob", "--name", "Bob", "--team", "social")["enrolment_code"]
    sh.run("staff", "enroll", "bob", "--code", code, who="bob")
    sh.json("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--owner", "bob", "--max-holders", "2")
    sh.run("secret", "set", "x-acme", "--username", "acme", "--password-stdin", stdin=CANARY_PASSWORD + "\n")
    sh.run("secret", "set", "x-acme", "--totp-uri", "-", stdin=CANARY_URI + "\n")
    sh.run("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "12h")
    # Bob's unlock is cached in the (test) keyring across processes: no passphrase the second time.
    assert sh.run("secret", "show", "x-acme", who="bob").stdout == CANARY_PASSWORD + "\n"
    assert sh.run("secret", "show", "x-acme", who="bob", GOVERN_PASSPHRASE="").stdout == CANARY_PASSWORD + "\n"
    totp = sh.json("totp", "x-acme", who="bob")
    assert len(totp["code"]) == 6
    sh.run("access", "revoke", "x-acme", "bob", "--reason", "left the team")
    sh.run("secret", "show", "x-acme", who="bob", code=4)
    listing = [
        sh.run("staff", "list").stdout,
        sh.run("account", "list").stdout,
        sh.run("account", "show", "x-acme").stdout,
        sh.run("access", "list").stdout,
        sh.run("secret", "history", "x-acme").stdout,
        sh.run("audit", "log").stdout,
        sh.run("audit", "log", "--json").stdout,
        sh.run("doctor", "--json", code=7).stdout,  # the fast test KDF is reported as weaker than the default
        sh.run("whoami").stdout,
    ]
    for text in listing + sh.transcript:
        assert CANARY_PASSWORD not in text
        assert CANARY_SEED not in text
    events = json.loads(listing[6])
    assert [e["action"] for e in events].count("secret.revealed") == 3
    for event in events:
        assert CANARY_PASSWORD not in json.dumps(event)


def test_python_dash_m_and_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "govern", "version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith("govern ")
    bad = subprocess.run([str(GOVERN), "--bogus"], capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("govern: error:")
    assert "Traceback" not in bad.stderr


def test_help_imports_no_heavy_module() -> None:
    """``govern --help`` must not import the database, crypto or keyring stacks."""
    probe = (
        "import sys\n"
        "from govern.cli.main import run\n"
        "for args in (['--help'], ['staff', '--help'], ['secret', 'set', '--help'], ['audit', 'log', '--help']):\n"
        "    assert run(args) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "    {'sqlalchemy', 'sqlmodel', 'cryptography', 'keyring', 'pyotp', 'alembic', 'psycopg'})\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_concurrent_writers_keep_the_chain_whole(db_url: str, tmp_path: Path) -> None:
    """Several processes writing at once: gap-free sequence numbers, every transaction sealed."""
    sh = Shell(db_url, tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    sh.run("whoami")
    env = {**sh.env, "GOVERN_USER": "alice", "GOVERN_PASSPHRASE": passphrase_of("alice")}
    procs = [
        subprocess.Popen(
            [str(GOVERN), "account", "add", f"acct-{i}", "--platform", "x", "--handle", f"@a{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    from sqlalchemy import create_engine
    from sqlmodel import Session, select

    from audit.chain import verify_chain
    from audit.models import AuditSeal
    from audit.stream import SealCursor, stream_events

    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            head = verify_chain(stream_events(session), SealCursor(session))
            seals = session.exec(select(AuditSeal)).all()
    finally:
        engine.dispose()
    assert head.transactions == len(seals) == 1 + 6


def test_governance_through_the_entry_point(db_url: str, tmp_path: Path) -> None:
    """Requests, dual control, caps, policy, reviews, rotation and offboarding, as scripts run them."""
    sh = Shell(db_url, tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    for handle in ("bob", "carol"):
        code = sh.json("staff", "add", handle, "--name", handle.title())["enrolment_code"]
        sh.run("staff", "enroll", handle, "--code", code, who=handle)
    sh.json("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--owner", "bob", "--max-holders", "1")
    sh.run("secret", "set", "x-acme", "--password-stdin", stdin=CANARY_PASSWORD + "\n")
    policy = tmp_path / "policy.md"
    policy.write_text("Only approved staff post as Acme.\n")
    sh.run("policy", "publish", str(policy), "--version", "1")
    refused = sh.run("access", "request", "x-acme", "--reason", "runs X", who="bob", code=4)
    assert "acknowledged" in refused.stderr
    sh.run("policy", "ack", who="bob")
    request_id = sh.run("access", "request", "x-acme", "--reason", "runs X", who="bob").stdout.strip()
    sh.run("access", "approve", request_id, who="bob", code=4)
    sh.run("access", "approve", request_id)
    sh.run("policy", "ack", who="carol")
    sh.run("access", "grant", "x-acme", "carol", "--reason", "cover", code=4)  # over the cap of 1
    sh.run("access", "grant", "x-acme", "carol", "--reason", "launch week cover", "--over-cap")
    sh.run("review", "start", "--name", "Q4")
    sh.run("review", "certify", "x-acme", "carol", who="bob")
    sh.run("review", "close", "--revoke-undecided")
    sh.run("secret", "show", "x-acme", who="bob", code=4)
    sh.run("rotation", "start", "x-acme", who="carol")
    pending = sh.run("secret", "show", "x-acme", "--pending", who="carol").stdout.strip()
    sh.run("rotation", "confirm", "x-acme", who="carol")
    case = sh.json("offboard", "start", "carol", "--reason", "left")
    assert case["status"] == "open"
    sh.run("rotation", "status", "--check", code=7)
    sh.run("audit", "verify")
    report = sh.run("offboard", "report", "carol", "--format", "json").stdout
    export = sh.run("audit", "export", "--format", "jsonl").stdout
    for text in (report, export, *sh.transcript):
        assert CANARY_PASSWORD not in text
        assert pending not in text


def test_rich_table_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal, lists are rich tables; NO_COLOR is honoured (no escape codes)."""
    import pty

    db = tmp_path / "vault.db"
    sh = Shell(f"sqlite:///{db}", tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice")
    env = {**sh.env, "GOVERN_USER": "alice", "NO_COLOR": "1", "COLUMNS": "120"}
    pid, fd = pty.fork()
    if pid == 0:  # the child runs govern on the pseudo-terminal
        os.execve(str(GOVERN), [str(GOVERN), "audit", "log"], env)  # noqa: S606  (the installed entry point)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _pid, status = os.waitpid(pid, 0)
    text = output.decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert "vault.initialised" in text
    assert "audit log" in text, "the rich table's title"
    colour = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]")
    assert not colour.search(text), "NO_COLOR: no colour codes (bold and italic may stay)"
