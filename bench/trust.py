"""Benchmark: what trusting the log costs a client, incrementally and from the genesis.

Every deciding command calls ``govern.trust.trusted``: it loads this client's pin, verifies
only the events after it (chain, seals, rules), compares the governance rows with the
verified state and advances the pin. A client without a pin verifies the whole log.

Builds real vaults (init, an account and a secret through the services, fast Argon2id), then
appends N synthetic but valid events straight into SQLite: ``secret.revealed`` by the admin
alice on x-acme, five per transaction, hash-chained and sealed with alice's real Ed25519 key.

1. Incremental: ``secret show x-acme`` (``services.secrets.reveal``, in process, keys from an
   in-memory keyring) by a client pinned at head H that finds 10,000 new events, against
   the same reveal by a client pinned at the head (nothing new), and ``trusted`` alone for
   both. Fresh copies of the database and of the pin for every run. Also reports whether a
   client catching up from H moves its pin to the head it verified (``pin_advances``).
2. First verification of a log of ``--events`` events: ``verify_chain(stream_events,
   SealCursor)`` (as ``govern audit verify`` runs it) and ``govern audit verify`` itself, in
   fresh processes (peak RSS), against the floor: the same rows read, SHA-256-chained
   (``EventRecord.computed_hash``) and every seal's Ed25519 signature verified in a process
   pool over every core.

Also profiles ``verify_chain`` on a ``--profile-events`` log with cProfile. Prints figures;
asserts nothing (a log that does not verify raises).

    .venv/bin/python bench/trust.py [--events 1000000] [--new 10000] [--base 1000] [--repeat 5]
        [--profile-events 100000] [--skip incremental,profile,first]
"""

import argparse
import base64
import contextlib
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, ClassVar

import keyring
from audit_log import append_reveals
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from audit.chain import EventRecord, SealRecord, verify_chain
from audit.stream import SealCursor, stream_events
from govern.context import Context, authenticate, unlock
from govern.db import Store
from govern.services import accounts, secrets, vaultinit
from govern.trust import trusted, verify_from_pin
from govern.unlock import PassphraseSource, StdinBroker
from vault import IntegrityError, verify_signature

PASSPHRASE = "alice bench passphrase"  # noqa: S105  (a throwaway vault in a temporary folder)
SECRET = "bench password"  # noqa: S105  (the value set on x-acme and revealed)
EVENT_COLUMNS = "seq, tx, ts, actor, action, account, subject, reason, data, prev, hash"
SEAL_COLUMNS = "tx, first_seq, last_seq, head, signer, key, ts, signature"


class Fixed(PassphraseSource):
    def __init__(self) -> None:
        super().__init__(StdinBroker())

    def get(self, prompt: str, *, new: bool = False) -> str:
        return PASSPHRASE


class BenchKeyring(KeyringBackend):
    """An in-memory keyring: the unlock is cached, so Argon2id runs once, not in every reveal."""

    priority = 1
    entries: ClassVar[dict[tuple[str, str], str]] = {}  # one store per process, as keyring's own are

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# -- building logs -----------------------------------------------------------------------------


def make_vault(path: Path, *, with_secret: bool) -> None:
    """A real vault: init, the account x-acme and (optionally) its secret, through the services."""
    ctx = Context(db_url=f"sqlite:///{path}", actor="alice", passphrase=Fixed())
    try:
        vaultinit.init_vault(ctx, org="Bench", admin="alice", name="Alice", email=None, recovery_file=None)
        accounts.add_account(
            ctx, "x-acme", platform="x", handle="@a", team=None, owner=None, rotate_every=None, max_holders=None
        )
        if with_secret:
            secrets.set_secret(
                ctx,
                "x-acme",
                username="acme",
                password=SECRET,
                totp_uri=None,
                recovery_codes=None,
            )
    finally:
        ctx.close()


def count_events(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM audit_event").fetchone()[0])
    finally:
        connection.close()


def copy_db(source: Path, target: Path) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


def fresh_dir(source: Path | None, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    if source is None:
        target.mkdir(mode=0o700)
    else:
        shutil.copytree(source, target)
    return target


def pin_with(db: Path, state_dir: Path, *, unlocked: bool = False) -> int:
    """Run ``trusted`` (no write) with ``state_dir`` as this client's state; the head it verified.

    ``unlocked``: as alice's client after one of her commands, whose pin carries her MAC (an
    unauthenticated cache makes a write verify from the genesis: docs/security.md).
    """
    os.environ["GOVERN_STATE_DIR"] = str(state_dir)
    url = f"sqlite:///{db}"
    store = Store.open(url)
    try:
        with store.read() as session:
            if not unlocked:
                return trusted(session, url).seq
            ctx = Context(db_url=url, actor="alice", passphrase=Fixed())
            state = verify_from_pin(session, url, save=False)
            keys = unlock(ctx, session, authenticate(session, "alice", state), state).keys
            return trusted(session, url, keys=keys).seq
    finally:
        store.engine.dispose()


def pinned_seq(state_dir: Path) -> int | None:
    """The head this client's pin file records (one vault per state directory here)."""
    for path in (state_dir / "pins").glob("*.json"):
        body = json.loads(path.read_text())
        if body.get("format") == "govern-pin":
            return int(body["seq"])
    return None


# -- 1. incremental ----------------------------------------------------------------------------


def timed_reveal(db: Path) -> float:
    ctx = Context(db_url=f"sqlite:///{db}", actor="alice", passphrase=Fixed())
    try:
        started = time.perf_counter()
        shown = secrets.reveal(ctx, "x-acme", "password")
        elapsed = time.perf_counter() - started
    finally:
        ctx.close()
    if shown.value != SECRET:
        raise SystemExit("the reveal showed the wrong value")
    return elapsed


def incremental(tmp: Path, base: int, new: int, repeat: int) -> dict[str, Any]:
    keyring.set_keyring(BenchKeyring())  # type: ignore[no-untyped-call]
    os.environ.pop("GOVERN_CACHE_TTL", None)  # the default 15 minutes: the in-memory keyring caches the unlock
    at_h, full, run = tmp / "at_h.db", tmp / "full.db", tmp / "run.db"
    make_vault(at_h, with_secret=True)
    append_reveals(at_h, base)
    pin_h = fresh_dir(None, tmp / "pin_h")
    head = pin_with(at_h, pin_h, unlocked=True)
    copy_db(at_h, full)
    append_reveals(full, new)
    # Does a client that catches up from H move its pin to the head it verified?
    caught_up = fresh_dir(pin_h, tmp / "caught_up")
    top = pin_with(full, caught_up)
    advanced = pinned_seq(caught_up)
    # A client pinned at the head: one that verified the whole log from the genesis (no pin).
    pin_full = fresh_dir(None, tmp / "pin_full")
    pin_with(full, pin_full, unlocked=True)
    if pinned_seq(pin_full) != top or pinned_seq(pin_h) != head:
        raise SystemExit(f"pins at {pinned_seq(pin_h)} and {pinned_seq(pin_full)}, not {head} and {top}")
    state = tmp / "state"

    def once(pin: Path) -> float:
        copy_db(full, run)
        os.environ["GOVERN_STATE_DIR"] = str(fresh_dir(pin, state))
        return timed_reveal(run)

    def trust_only(pin: Path) -> float:
        copy_db(full, run)
        fresh = fresh_dir(pin, state)
        started = time.perf_counter()
        pin_with(run, fresh)
        return time.perf_counter() - started

    once(pin_full)  # warm up: Argon2id once, then the keyring cache; imports; page cache
    behind: list[float] = []
    current: list[float] = []
    trust_behind: list[float] = []
    trust_current: list[float] = []
    for _ in range(repeat):  # interleaved, so a burst of load elsewhere hits both alike
        behind.append(once(pin_h))
        current.append(once(pin_full))
        trust_behind.append(trust_only(pin_h))
        trust_current.append(trust_only(pin_full))
    a, b = statistics.median(behind), statistics.median(current)
    ta, tb = statistics.median(trust_behind), statistics.median(trust_current)
    return {
        "pinned_head_H": head,
        "log_head": top,
        "new_events": top - head,
        "pin_after_catching_up_from_H": advanced,
        "pin_advances": advanced == top,
        "repeat": repeat,
        "a_reveal_new_events_ms": round(a * 1000, 1),
        "a_runs_ms": [round(x * 1000, 1) for x in behind],
        "b_reveal_nothing_new_ms": round(b * 1000, 1),
        "b_runs_ms": [round(x * 1000, 1) for x in current],
        "ratio_a_over_b": round(a / b, 2),
        "per_new_event_us": round((a - b) / (top - head) * 1e6, 2),
        "trusted_alone_a_ms": round(ta * 1000, 1),
        "trusted_alone_b_ms": round(tb * 1000, 1),
        "trusted_alone_per_new_event_us": round((ta - tb) / (top - head) * 1e6, 2),
        "load": load(),
    }


# -- 2. first verification ---------------------------------------------------------------------


def _check_batch(batch: list[tuple[bytes, bytes, bytes]]) -> int:
    """Verify a batch of (public key, message, signature); return how many failed."""
    failed = 0
    for public, message, signature in batch:
        try:
            verify_signature(public, message, signature)
        except IntegrityError:
            failed += 1
    return failed


def floor(db: Path, batch_size: int = 2000) -> dict[str, Any]:
    """The same rows read, SHA-256-chained, and every seal verified over every core: bare."""
    workers = os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(workers) as pool:  # before any connection is opened
        started = time.perf_counter()
        events = sqlite3.connect(db)
        seals_db = sqlite3.connect(db)
        public = dict(events.execute("SELECT fingerprint, ed25519_public FROM person_key").fetchall())
        seals = seals_db.execute(f"SELECT {SEAL_COLUMNS} FROM audit_seal ORDER BY first_seq")  # noqa: S608
        pending: list[AsyncResult[int]] = []
        batch: list[tuple[bytes, bytes, bytes]] = []
        prev = "0" * 64
        count = 0
        seal = SealRecord(*seals.fetchone())
        hashing = 0.0
        for row in events.execute(f"SELECT {EVENT_COLUMNS} FROM audit_event ORDER BY seq"):  # noqa: S608
            event = EventRecord(*row)
            if event.prev != prev or event.computed_hash() != event.hash:
                raise SystemExit(f"floor: event {event.seq} does not chain")
            prev = event.hash
            count += 1
            if event.seq == seal.last_seq:
                if seal.head != event.hash:
                    raise SystemExit(f"floor: seal of {seal.tx} does not cover its head")
                batch.append((public[seal.key], seal.message(), base64.b64decode(seal.signature)))
                if len(batch) >= batch_size:
                    pending.append(pool.apply_async(_check_batch, (batch,)))
                    batch = []
                following = seals.fetchone()
                if following is not None:
                    seal = SealRecord(*following)
        hashing = time.perf_counter() - started
        if batch:
            pending.append(pool.apply_async(_check_batch, (batch,)))
        failed = sum(result.get() for result in pending)
        elapsed = time.perf_counter() - started
        events.close()
        seals_db.close()
    if failed:
        raise SystemExit(f"floor: {failed} signatures do not verify")
    return {
        "seconds": round(elapsed, 2),
        "read_and_hash_s": round(hashing, 2),
        "events": count,
        "events_per_s": int(count / elapsed),
        "workers": workers,
    }


def child_verify(db: Path) -> None:
    """In a fresh process: time verify_chain over the whole log, as govern.services.auditing does."""
    store = Store.open(f"sqlite:///{db}")
    started = time.perf_counter()
    with store.read() as session:
        result = verify_chain(stream_events(session), SealCursor(session))
    elapsed = time.perf_counter() - started
    store.engine.dispose()
    print(json.dumps({"seconds": elapsed, "events": result.events, "transactions": result.transactions}))


def measured(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Seconds, peak RSS (MiB) and stdout of one command in a fresh process (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {err.read().decode()}")
        return elapsed, usage.ru_maxrss // 1024, out.read().decode()


def first_verification(tmp: Path, events: int) -> dict[str, Any]:
    db = tmp / "big.db"
    started = time.perf_counter()
    make_vault(db, with_secret=False)
    append_reveals(db, events)
    built = time.perf_counter() - started
    total = count_events(db)
    print(
        f"built a log of {total:,} events in {built:.0f} s ({db.stat().st_size / 1e6:.0f} MB); {load()}",
        file=sys.stderr,
    )
    results: dict[str, Any] = {"events": total, "build_s": round(built, 1), "load_before": load()}
    bare = floor(db)
    results["floor"] = bare
    seconds, rss, out = measured([sys.executable, __file__, "--child-verify", str(db)], dict(os.environ))
    inner = json.loads(out)
    if inner["events"] != total:
        raise SystemExit(f"verify_chain saw {inner['events']} events of {total}")
    results["verify_chain"] = {
        "seconds": round(inner["seconds"], 2),
        "process_s": round(seconds, 2),
        "events_per_s": int(total / inner["seconds"]),
        "peak_rss_mib": rss,
    }
    env = {
        **os.environ,
        "GOVERN_DB_URL": f"sqlite:///{db}",
        "GOVERN_USER": "alice",
        "GOVERN_STATE_DIR": str(fresh_dir(None, tmp / "verify-state")),
        "GOVERN_CACHE_TTL": "0",
    }
    seconds, rss, out = measured([str(Path(sys.executable).with_name("govern")), "audit", "verify", "--json"], env)
    results["govern_audit_verify"] = {
        "seconds": round(seconds, 2),
        "events_per_s": int(total / seconds),
        "peak_rss_mib": rss,
        "events": json.loads(out).get("events") if out.strip().startswith("{") else None,
    }
    results["ratio_verify_chain_over_floor"] = round(inner["seconds"] / bare["seconds"], 2)
    results["ratio_audit_verify_over_floor"] = round(seconds / bare["seconds"], 2)
    results["target_ratio"] = 1.3
    results["load_after"] = load()
    return results


# -- profile -----------------------------------------------------------------------------------


def profile(tmp: Path, events: int, top: int = 15) -> str:
    db = tmp / "profile.db"
    make_vault(db, with_secret=False)
    append_reveals(db, events)
    store = Store.open(f"sqlite:///{db}")
    profiler = cProfile.Profile()
    with store.read() as session:
        profiler.enable()
        verify_chain(stream_events(session), SealCursor(session))
        profiler.disable()
    store.engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"== verify_chain over {count_events(db):,} events, by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write("== by total (own) time ==\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder, and this client's state (its pins) inside it while the phase runs."""
    with tempfile.TemporaryDirectory(prefix="govern-bench-trust-") as tmp:
        os.environ["GOVERN_STATE_DIR"] = str(Path(tmp) / "client-state")
        try:
            yield Path(tmp)
        finally:
            os.environ.pop("GOVERN_STATE_DIR", None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the first-verification log")
    parser.add_argument("--new", type=int, default=10_000, help="new events the behind client finds")
    parser.add_argument("--base", type=int, default=1_000, help="synthetic events before the pinned head H")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile-events", type=int, default=100_000, help="0 skips the profile")
    parser.add_argument("--skip", default="", help="comma-separated: incremental,profile,first")
    parser.add_argument("--child-verify", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_KDF", "m=19456,t=2,p=1")
    if args.child_verify is not None:
        child_verify(args.child_verify)
        return
    skip = set(args.skip.split(","))
    print(f"bench/trust.py: {load()}", file=sys.stderr)
    if "incremental" not in skip:
        with workdir() as tmp:
            figures = incremental(tmp, args.base, args.new, args.repeat)
        print(json.dumps({"incremental": figures}, indent=1), flush=True)
    if "profile" not in skip and args.profile_events:
        print(f"-- profiling ({load()})", file=sys.stderr)
        with workdir() as tmp:
            print(profile(tmp, args.profile_events), flush=True)
    if "first" not in skip:
        with workdir() as tmp:
            figures = first_verification(tmp, args.events)
        print(json.dumps({"first_verification": figures}, indent=1), flush=True)


if __name__ == "__main__":
    main()
