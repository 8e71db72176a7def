"""Shared machinery of the fault campaign (issue 10): sizes, the installed entry point in
subprocesses, outcome checks, chain verification and digests of a vault.

The default run (``make test``) uses a fast, seeded sample of every campaign; ``make fuzz``
sets ``GOVERN_FUZZ=full`` for the full sizes. ``GOVERN_FUZZ_SEED`` replays another seed.
Both are read at import time, because the suite's autouse fixture clears every
``GOVERN_*`` variable before each test runs.
"""

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import CLOCK_ENV, FAST_KDF, TESTS, passphrase_of

FULL = os.environ.get("GOVERN_FUZZ", "").strip().lower() == "full"
SEED = int(os.environ.get("GOVERN_FUZZ_SEED", "") or "20261127")
REPORT = os.environ.get("GOVERN_FUZZ_REPORT", "")  # a file to append each campaign's figures to (JSON lines)
GOVERN = Path(sys.executable).with_name("govern")

DOCUMENTED = frozenset({0, 2, 3, 4, 5, 6, 7, 8, 9})
FAILURES = frozenset({2, 3, 4, 5, 6, 8, 9})  # what a refused or failed write may exit with (9: disk full, unreachable)
MEMORY_LIMIT = 1 << 30  # address space of a subprocess that may be fed /dev/zero


def size(fast: int, full: int) -> int:
    return full if FULL else fast


@dataclass
class Outcome:
    args: tuple[str, ...]
    code: int | None  # None: it hung and was killed at the timeout
    out: str = ""
    err: str = ""
    seconds: float = 0.0

    @property
    def hung(self) -> bool:
        return self.code is None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    def problems(self, allowed: Iterable[int] = DOCUMENTED) -> list[str]:
        """What is wrong with this outcome as the contract (docs/exit-codes.md) reads."""
        found: list[str] = []
        if self.hung:
            found.append(f"hung (killed after {self.seconds:.0f}s)")
            return found
        allowed = frozenset(allowed)
        if self.code not in allowed:
            found.append(f"exit {self.code} (allowed: {sorted(allowed)})")
        if self.traceback:
            found.append("traceback on stderr")
        if self.code not in (0, None):
            errors = [line for line in self.err.splitlines() if line.startswith("govern: error:")]
            shown_help = "Usage:" in self.err or "Commands:" in self.err  # a group without a command
            if len(errors) != 1 and not (shown_help and self.code == 2):
                found.append(f"{len(errors)} 'govern: error:' lines instead of one")
        return found

    def first_error(self) -> str:
        for line in self.err.splitlines():
            if line.startswith("govern: error:"):
                return line[:200]
        return (self.err.strip().splitlines() or [""])[-1][:200]

    def describe(self) -> str:
        shown = " ".join(repr(a) if (not a or " " in a or not a.isprintable()) else a for a in self.args)
        return f"govern {shown[:300]} -> {self.code}: {self.first_error()}"


def subprocess_env(db_url: str, home: Path, state: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of the installed entry point: this test's vault, home, pins and fast KDF."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GOVERN_HOME": str(home / "govern-home"),
        "GOVERN_STATE_DIR": str(state or home / "state"),
        "GOVERN_DB_URL": db_url,
        "GOVERN_KDF": FAST_KDF,
        **CLOCK_ENV,
        "GOVERN_CACHE_TTL": "0",
        "PYTHONPATH": str(TESTS),
        "PYTHON_KEYRING_BACKEND": "memkeyring.MemoryKeyring",
        "LC_ALL": "C.UTF-8",
        # A subprocess under RLIMIT_FSIZE or killed at random must never write (truncated) .pyc files
        # into the source tree or the venv: Python does not notice a short write of bytecode.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def limit_memory() -> None:
    """preexec_fn: a subprocess fed an endless device dies of MemoryError, not of the machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_govern(
    args: Iterable[str],
    env: dict[str, str],
    *,
    who: str | None = "alice",
    stdin: str | bytes = "",
    timeout: float = 60,
    cwd: Path | None = None,
    preexec_fn: Callable[[], None] | None = limit_memory,
) -> Outcome:
    """The installed ``govern`` in a subprocess; a hang is killed at ``timeout`` and reported."""
    args = tuple(args)
    full_env = dict(env)
    if who is not None:
        full_env.setdefault("GOVERN_USER", who)
        full_env.setdefault("GOVERN_PASSPHRASE", passphrase_of(who))
    data = stdin.encode("utf-8", "surrogatepass") if isinstance(stdin, str) else stdin  # hostile bytes too
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(GOVERN), *args],
            input=data,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            check=False,
            cwd=cwd,
            preexec_fn=preexec_fn,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if exc.stderr else ""
        return Outcome(args, None, "", err, time.monotonic() - started)
    return Outcome(
        args,
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
        time.monotonic() - started,
    )


def verify_chain_of(db_url: str) -> int:
    """Verify hash links and seals of the whole log straight from the database; return its event count."""
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from audit.chain import verify_chain
    from audit.stream import SealCursor, stream_events

    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            verify_chain(stream_events(session), SealCursor(session))
            seqs = [row[0] for row in session.connection().exec_driver_sql("SELECT seq FROM audit_event ORDER BY seq")]
    finally:
        engine.dispose()
    assert seqs == list(range(1, len(seqs) + 1)), f"the chain has gaps: {len(seqs)} events, last {seqs[-1:]}"
    return len(seqs)


def query(db_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def events_of(db_url: str) -> list[dict[str, Any]]:
    rows = query(db_url, "SELECT seq, actor, action, account, subject, reason, data FROM audit_event ORDER BY seq")
    keys = ("seq", "actor", "action", "account", "subject", "reason", "data")
    return [dict(zip(keys, row, strict=True)) for row in rows]


class Digest:
    """A digest of every table (the audit log included) of one vault, kept on one connection."""

    def __init__(self, db_url: str) -> None:
        from sqlalchemy import create_engine, inspect

        self.engine = create_engine(db_url)
        with self.engine.connect() as conn:
            self.tables = sorted(inspect(conn).get_table_names())

    def __call__(self) -> str:
        from sqlalchemy import text

        digest = hashlib.sha256()
        with self.engine.connect() as conn:
            for table in self.tables:
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{table}"')))  # noqa: S608
                digest.update(f"{table}:{len(rows)}\n".encode())
                for row in rows:
                    digest.update(row.encode())
        return digest.hexdigest()

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Tally:
    """A campaign's figures: attempts, exits by code, tracebacks, hangs, lost writes, verify results."""

    name: str
    seed: int = SEED
    exits: Counter[str] = field(default_factory=Counter)
    tracebacks: int = 0
    hangs: int = 0
    lost: int = 0
    phantom: int = 0
    verify: Counter[str] = field(default_factory=Counter)
    defects: dict[str, str] = field(default_factory=dict)  # signature -> one reproducing example
    extra: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome, allowed: Iterable[int] = DOCUMENTED, where: str = "") -> list[str]:
        self.exits["hang" if outcome.hung else str(outcome.code)] += 1
        self.tracebacks += outcome.traceback
        self.hangs += outcome.hung
        problems = outcome.problems(allowed)
        if problems:
            command = " ".join(outcome.args[:2])
            signature = f"{command}: {'; '.join(problems)}: {outcome.first_error()[:120]}"
            self.defect(signature, f"{where} {outcome.describe()}".strip())
        return problems

    def defect(self, signature: str, example: str) -> None:
        self.defects.setdefault(signature, example)

    @property
    def attempts(self) -> int:
        return sum(self.exits.values())

    def figures(self) -> dict[str, Any]:
        return {
            "campaign": self.name,
            "mode": "full" if FULL else "fast",
            "seed": self.seed,
            "attempts": self.attempts,
            "exits": dict(sorted(self.exits.items())),
            "tracebacks": self.tracebacks,
            "hangs": self.hangs,
            "lost_writes": self.lost,
            "phantom_writes": self.phantom,
            "verify": dict(self.verify),
            **dict(self.extra),
            "defects": len(self.defects),
        }

    def report(self) -> str:
        figures = self.figures()
        if REPORT:
            with open(REPORT, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({**figures, "examples": self.defects}) + "\n")
        sys.stdout.write(json.dumps(figures) + "\n")
        lines = [json.dumps(figures)]
        lines += [f"  DEFECT {sig}\n    e.g. {example}" for sig, example in sorted(self.defects.items())]
        lines.append(f"  (replay: GOVERN_FUZZ_SEED={self.seed}{' GOVERN_FUZZ=full' if FULL else ''})")
        return "\n".join(lines)
