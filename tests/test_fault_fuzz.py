"""Fault campaign, CLI fuzzer (issue 10): seeded random and mutated command lines against a
vault on SQLite and PostgreSQL, in-process through ``govern.cli.main.run`` (fast) and a
sample through the installed entry point in subprocesses.

Inputs: huge strings, unicode, control characters, empty values, negative and enormous
durations and dates, folders and devices as paths, malformed ``--db`` URLs, and a zero-byte,
truncated or folder ``vault.db``. For every invocation: no traceback, no exit 1, no hang
(per-invocation timeout), and a failed command leaves the vault exactly as it was (a digest
of every table, the audit log included). Fast: 300 in-process + a few subprocesses; full
(``make fuzz``): 5,000+ in-process and 200 subprocesses. Paths all live in the test's own
folder (the working directory): never a system file, even though govern now refuses any path
that is not its vault before touching it (``--db sqlite:////`` once made ``/`` mode 0600: see
test_a_db_path_that_is_not_a_vault_keeps_its_mode and tests/test_vault_paths.py).
"""

import os
import random
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from conftest import Govern
from faultkit import FULL, SEED, Digest, Outcome, Tally, run_govern, subprocess_env
from sqlhelp import sql

pytestmark = pytest.mark.e2e

IN_PROCESS = {"sqlite": 5000 if FULL else 200, "postgres": 1500 if FULL else 100}
SUBPROCESSES = {"sqlite": 150 if FULL else 4, "postgres": 50 if FULL else 2}
TIMEOUT = 30.0  # seconds per invocation; the slowest honest command takes well under 2


class Hang(BaseException):
    """Raised by the timer in a hung in-process invocation (not an Exception: govern must not catch it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Sandbox:
    """Files to hand govern as paths, all under the test's folder."""

    def __init__(self, root: Path, vault_file: Path | None) -> None:
        self.root = root
        root.mkdir()
        (root / "policy.md").write_text("Only approved staff post as Acme.\n")
        (root / "empty.txt").write_bytes(b"")
        (root / "codes.txt").write_text("code-1\ncode-2\n")
        (root / "totp.txt").write_text("otpauth://totp/Acme:x?secret=JBSWY3DPEHPK3PXP&issuer=Acme\n")
        (root / "binary.bin").write_bytes(bytes(range(256)) * 64)
        (root / "big.txt").write_text("A" * 3_000_000)
        (root / "folder").mkdir()
        (root / "folder.db").mkdir()
        (root / "zero-byte.db").write_bytes(b"")
        (root / "garbage.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
        if vault_file is not None:
            data = vault_file.read_bytes()
            (root / "truncated.db").write_bytes(data[: len(data) // 2])
            (root / "header-only.db").write_bytes(data[:100])
        else:
            (root / "truncated.db").write_bytes(b"SQLite format 3\x00" + b"\x10\x00\x01\x01" + b"\x00" * 80)
            (root / "header-only.db").write_bytes(b"SQLite format 3\x00")
        self.devices: list[str] = []
        self.readable_devices: list[str] = []
        try:  # our own device nodes: /dev/zero and /dev/null's numbers, never the system's files
            os.mknod(root / "dev-zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
            os.mknod(root / "dev-null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
            self.devices = [str(root / "dev-zero"), str(root / "dev-null")]
            self.readable_devices = list(self.devices)
        except OSError:  # not root: the system's devices, only ever read (never as --db or --out)
            self.readable_devices = ["/dev/null", "/dev/zero"]
        os.mkfifo(root / "fifo")  # only in subprocesses: opening it to read blocks

    def paths(self) -> list[str]:
        names = ["policy.md", "empty.txt", "codes.txt", "totp.txt", "binary.bin", "big.txt", "folder", "folder/"]
        names += ["missing.txt", "missing/dir/file", "folder/new.out", "x" * 300, "ü-ñ-☃.out", " ", "-", "--"]
        return [str(self.root / n) if n not in (" ", "-", "--") else n for n in names] + self.devices


def risky(args: list[str], sandbox: Sandbox) -> bool:
    """Arguments that may block or eat memory when read: only ever run in a limited subprocess."""
    marks = [*sandbox.readable_devices, str(sandbox.root / "fifo")]
    return any(mark in arg for arg in args for mark in marks)


class Fuzzer:
    def __init__(self, rng: random.Random, sandbox: Sandbox) -> None:
        self.rng = rng
        self.sandbox = sandbox

    def text(self) -> str:
        r = self.rng
        return r.choice(
            [
                "",
                " ",
                "ok reason",
                "x" * r.choice([64, 65, 256, 1001, 70_000]),
                "\u00fcn\u00efc\u00f6d\u00e9 \u2603 \U0001d518 \u4e2d\u6587 \u05e2\u05d1\u05e8\u05d9\u05ea",
                "\u202etxt.exe",
                "a\x1b[2K\x1b[1Gb",
                "line1\nline2",
                "tab\there",
                "need it [/link] for ticket",
                "[link=https://evil.example]x[/link][conceal]y[/conceal]",
                "<script>alert(1)</script>",
                "'; DROP TABLE person; --",
                "%s%n%x",
                r.choice(["\ud800x", "\udcff"]),
                "-" + "x" * r.randint(1, 5),
                "".join(chr(r.randint(1, 0x2FFFF)) for _ in range(r.randint(1, 40))),
            ]
        )

    def slug(self) -> str:
        return self.rng.choice(["x-acme", "x-acme", "nope", "X-ACME", "a", "-x", "x" * 64, self.text()])

    def handle(self) -> str:
        return self.rng.choice(["bob", "bob", "carol", "nobody", "ALICE", self.text()])

    def duration(self) -> str:
        r = self.rng
        return r.choice(
            ["30d", "12h", "0d", "0", "-5d", "-1s", "1d1d", "90", "d", "", "1e9d", "P1D", "nan", "inf",
             "9" * r.choice([5, 12, 30, 400]) + r.choice(["d", "h", "s", "w", "m", "y"]), "365000000d", self.text()]
        )  # fmt: skip

    def time(self) -> str:
        r = self.rng
        return r.choice(
            ["2026-03-03T09:00:00Z", "2026-03-03", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01",
             "-0001-01-01", "2026-13-45T25:61:61Z", "2026-02-30", "1970-01-01T00:00:00+25:00", "now", "",
             "2026-03-03T09:00:00.999999999999Z", "9" * 40, "2026-03-03T09:00:00-23:59", self.text()]
        )  # fmt: skip

    def number(self) -> str:
        return self.rng.choice(["1", "0", "-1", "3", "2147483648", "9" * 50, "1.5", "0x10", "", "NaN", self.text()])

    def path(self) -> str:
        return self.rng.choice(self.sandbox.paths())

    def readable(self) -> str:
        return self.rng.choice([*self.sandbox.paths(), *self.sandbox.readable_devices, str(self.sandbox.root / "fifo")])

    def db(self) -> str:
        root = self.sandbox.root
        return self.rng.choice(
            [
                f"sqlite:///{root / 'zero-byte.db'}",
                f"sqlite:///{root / 'truncated.db'}",
                f"sqlite:///{root / 'header-only.db'}",
                f"sqlite:///{root / 'garbage.db'}",
                f"sqlite:///{root / 'folder.db'}",
                str(root / "folder.db"),
                str(root / "truncated.db"),
                str(root / "missing" / "vault.db"),
                f"sqlite:///{root / 'new-vault.db'}",
                "sqlite://",
                "sqlite:///:memory:",
                "://",
                "postgresql://",
                "postgresql://u:p@127.0.0.1:1/nodb?connect_timeout=2",
                "postgresql+psycopg://u@[::1:bad/x",
                "postgresql://u@127.0.0.1:99999/x",
                "mysql://a/b",
                "http://example.invalid/x",
                "sqlite:///" + "x" * 5000,
                *([f"sqlite:///{d}" for d in self.sandbox.devices]),
            ]
        )

    def command(self) -> tuple[list[str], str]:
        """One command line (global options included) and its standard input."""
        r = self.rng
        t, s, h, d, tm, n, p, rd = (
            self.text,
            self.slug,
            self.handle,
            self.duration,
            self.time,
            self.number,
            self.path,
            self.readable,
        )
        table: list[Callable[[], list[str]]] = [
            lambda: ["secret", "set", s(), "--password-stdin"],
            lambda: ["secret", "set", s(), "--username", t()],
            lambda: ["secret", "set", s(), "--totp-uri", r.choice(["-", "@" + rd(), "@", t()])],
            lambda: ["secret", "set", s(), "--recovery-codes-file", rd()],
            lambda: ["secret", "show", s(), "--field", r.choice(["password", "username", "totp-uri", t()])],
            lambda: ["secret", "show", s(), "--version", n()],
            lambda: ["secret", "history", s()],
            lambda: ["access", "grant", s(), h(), "--reason", t(), "--for", d()],
            lambda: ["access", "grant", s(), h(), "--reason", t()],
            lambda: ["access", "revoke", s(), h(), "--reason", t()],
            lambda: ["access", "request", s(), "--reason", t(), "--for", d()],
            lambda: ["access", r.choice(["approve", "deny"]), n(), "--reason", t()],
            lambda: ["access", "list"],
            lambda: ["access", "requests"],
            lambda: ["access", "record", s(), h(), "--reason", t()],
            lambda: ["account", "add", t(), "--platform", r.choice(["x", "other", t()]), "--handle", t()],
            lambda: ["account", "set", s(), "--team", t()],
            lambda: ["account", "set", s(), "--rotate-every", d(), "--max-holders", n()],
            lambda: ["account", "set", s(), "--owner", h(), "--handle", t()],
            lambda: ["account", "show", s()],
            lambda: ["staff", "add", t(), "--name", t(), "--role", r.choice(["member", "auditor", t()])],
            lambda: ["staff", "show", h()],
            lambda: ["staff", "enroll", h(), "--code", t()],
            lambda: ["staff", "invite", h()],
            lambda: ["rotation", r.choice(["start", "confirm", "abort"]), s()],
            lambda: ["rotation", "status", *r.choice([[], ["--check"]])],
            lambda: ["policy", "publish", rd(), "--version", t()],
            lambda: ["policy", "show", "--version", t()],
            lambda: ["review", "start", "--name", t()],
            lambda: ["review", "certify", s(), h()],
            lambda: ["offboard", "start", h(), "--reason", t(), "--effective", tm(), "--deadline", d(), "--dry-run"],
            lambda: ["offboard", "start", r.choice(["nobody", t()]), "--reason", t(), "--deadline", d()],
            lambda: ["offboard", "status"],
            lambda: ["offboard", "report", h(), "--out", p()],
            lambda: ["audit", "log", "--since", tm(), "--until", tm()],
            lambda: ["audit", "log", "--account", s(), "--staff", h(), "--action", t()],
            lambda: ["audit", "who-had", s(), "--at", tm()],
            lambda: ["audit", "history", s()],
            lambda: ["audit", "export", "--format", r.choice(["jsonl", "csv", "ocsf", t()]), "--out", p()],
            lambda: ["audit", "export", "--format", "csv", "--since", tm()],
            lambda: ["audit", "report", "--out", p()],
            lambda: ["audit", "checkpoint", "--out", p()],
            lambda: ["audit", "verify"],
            lambda: ["init", "--org", t(), "--admin", h(), "--name", t(), "--recovery-file", p()],
            lambda: ["whoami"],
            lambda: ["doctor"],
            lambda: ["pin", "show"],
            lambda: ["totp", s()],
            lambda: ["sweep"],
            lambda: ["db", "upgrade"],
            lambda: [t()],
            lambda: [t(), t(), t()],
        ]
        args = r.choice(table)()
        if r.random() < 0.15:
            args.insert(r.randrange(len(args) + 1), r.choice(["--json", "--bogus", "--help", "-h", "--", "--for"]))
        if r.random() < 0.1 and len(args) > 1:
            del args[r.randrange(len(args))]
        if r.random() < 0.1:
            args = [t(), *args[1:]] if r.random() < 0.5 else args[::-1]
        if r.random() < 0.2:
            args = ["--db", self.db(), *args]
        if r.random() < 0.1:
            args = ["--as", h(), *args]
        if r.random() < 0.05:
            args = ["--passphrase-stdin", *args]
        stdin = r.choice(["", "pw-fuzz-1\n", "\n", "x" * 100_000 + "\n", t() + "\n", "\x00\x01\x02\n"])
        return args, stdin


def outcome_of(args: list[str], code: int | None, out: str, err: str) -> Outcome:
    return Outcome(tuple(args), code, out, err)


def test_cli_fuzzer(govern: Govern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = "sqlite" if govern.db.startswith("sqlite") else "postgres"
    govern.init()
    govern.enrol("bob")
    govern.enrol("carol")
    govern.account()
    govern.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    vault_file = Path(govern.db.removeprefix("sqlite:///")) if backend == "sqlite" else None
    sandbox = Sandbox(tmp_path / "sandbox", vault_file)
    monkeypatch.chdir(sandbox.root)  # relative paths and odd --db values land here, nowhere else
    monkeypatch.setenv("GOVERN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GOVERN_CACHE_TTL", "0")
    rng = random.Random(f"{SEED}:{backend}")  # noqa: S311  (test inputs, not cryptography)
    fuzzer = Fuzzer(rng, sandbox)
    tally = Tally(f"fuzz {backend}")
    digest = Digest(govern.db)
    baseline = digest()
    env = subprocess_env(govern.db, tmp_path / "home", tmp_path / "state")
    subprocess_left = SUBPROCESSES[backend]
    in_process = 0
    index = 0
    try:
        while in_process < IN_PROCESS[backend] or subprocess_left > 0:
            index += 1
            args, stdin = fuzzer.command()
            refusals = _refusals(govern.db)
            who = rng.choice(["alice", "alice", "bob", "carol"])
            sub = risky(args, sandbox)
            if not sub and in_process >= IN_PROCESS[backend]:
                sub = True
            if sub and subprocess_left <= 0:
                continue
            if sub:
                subprocess_left -= 1
                safe = [a.replace("\x00", "") for a in args]  # argv cannot carry NUL
                safe = [a.encode("utf-8", "replace").decode("utf-8") for a in safe]
                outcome = run_govern(safe, env, who=who, stdin=stdin.replace("\x00", ""), timeout=TIMEOUT * 2)
            else:
                in_process += 1
                try:
                    with deadline(TIMEOUT):
                        result = govern(*args, as_=who, input=stdin)
                    outcome = outcome_of(args, result.code, result.out, result.err)
                except Hang:
                    outcome = Outcome(tuple(args), None, "", "", TIMEOUT)
                except BaseException as exc:  # anything escaping run() is a defect, reported with the rest
                    outcome = outcome_of(args, -1, "", f"escaped run(): {type(exc).__name__}: {exc}"[:300])
            where = f"#{index} ({'subprocess' if sub else 'in-process'}, as {who})"
            tally.add(outcome, where=where)
            after = digest()
            if outcome.code == 4 and after != baseline and _refusals(govern.db) > refusals:
                baseline = after  # a refused reveal is committed on purpose (secret.denied), then exit 4
            if outcome.code != 0 and after != baseline:
                tally.phantom += 1
                tally.defect(f"failed command changed the vault: {' '.join(args[:2])}", f"{where} {outcome.describe()}")
            baseline = after
    finally:
        digest.close()
    tally.extra["in_process"] = in_process
    tally.extra["subprocesses"] = SUBPROCESSES[backend]
    verified = govern("audit", "verify")
    tally.verify[f"exit {verified.code}"] += 1
    figures = tally.report()
    assert verified.code == 0, f"seed {SEED}: {verified.err}\n{figures}"
    assert not tally.defects, f"seed {SEED}:\n{figures}"


def test_a_db_path_that_is_not_a_vault_keeps_its_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--db`` naming a folder or a device must not chmod it (``--db sqlite:////`` made ``/`` 0600,
    ``--db /dev/null`` made the system's /dev/null 0600). Only our own folder and device nodes here."""
    sandbox = Sandbox(tmp_path / "sandbox", None)
    monkeypatch.chdir(sandbox.root)
    targets = [sandbox.root / "folder", *map(Path, sandbox.devices)]
    tally = Tally("db path modes")
    for target in targets:
        os.chmod(target, 0o755 if target.is_dir() else 0o666)
        before = stat.S_IMODE(target.stat().st_mode)
        for db in (str(target), f"sqlite:///{target}"):
            result = Govern(db, monkeypatch)("whoami")
            tally.add(outcome_of(["--db", db, "whoami"], result.code, result.out, result.err))
            after = stat.S_IMODE(target.stat().st_mode)
            if after != before:
                tally.defect(f"--db chmods what it names: {target.name}", f"--db {db} whoami: {before:o} -> {after:o}")
                os.chmod(target, before)
    figures = tally.report()
    assert not tally.defects, figures


def test_devices_and_pipes_as_files_to_read(
    sqlite_govern: Govern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless device or a FIFO given as a file to read is refused: no MemoryError (exit 1), no hang.
    Run in subprocesses with a 1 GiB address-space limit and a timeout, so a regression cannot
    take the machine's memory or the suite's time. (Reading a file does not depend on the backend.)"""
    govern = sqlite_govern
    monkeypatch.setenv("GOVERN_STATE_DIR", str(tmp_path / "state"))
    govern.init()
    govern.account()
    sandbox = Sandbox(tmp_path / "sandbox", None)
    monkeypatch.chdir(sandbox.root)
    env = subprocess_env(govern.db, tmp_path / "home", tmp_path / "state")
    zero = sandbox.readable_devices[-1] if not sandbox.devices else sandbox.devices[0]
    fifo = str(sandbox.root / "fifo")
    tally = Tally("devices as files")
    for args in (
        ["secret", "set", "x-acme", "--totp-uri", f"@{zero}"],
        ["secret", "set", "x-acme", "--recovery-codes-file", zero],
        ["policy", "publish", zero, "--version", "1"],
        ["secret", "set", "x-acme", "--recovery-codes-file", fifo],
        ["policy", "publish", fifo, "--version", "2"],
    ):
        tally.add(run_govern(args, env, timeout=8, cwd=sandbox.root))
    figures = tally.report()
    assert not tally.defects, figures


def _refusals(db_url: str) -> int:
    """How many refused reveals the log holds (each is committed, although its command fails)."""
    value = sql(db_url, "SELECT COUNT(*) FROM audit_event WHERE action = 'secret.denied'")[0][0]
    assert isinstance(value, int)
    return value
