"""Benchmark: audit verify and export throughput and peak memory on a large log.

Builds a real vault (init through the services), then appends N synthetic but valid
events — reveals, five per signed transaction — straight into SQLite. Times
`govern audit verify` and `govern audit export` (jsonl, csv, ocsf) in subprocesses,
reading each one's peak RSS, and compares verify with a bare loop that reads the same
rows and only SHA-256-chains their bytes. Prints figures; asserts nothing.

    .venv/bin/python bench/audit_log.py [--events 1000000] [--sizes 100000,300000]
"""

import argparse
import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import astuple, replace
from pathlib import Path

from audit.chain import EventRecord, SealRecord, canonical_json, event_hash
from audit.log import format_ts
from govern.context import Context
from govern.services import accounts, vaultinit
from govern.timeutil import utcnow
from govern.unlock import PassphraseSource, StdinBroker
from vault import PersonKeys, SealedKeyBlob

EVENT_COLUMNS = "seq, tx, ts, actor, action, account, subject, reason, data, prev, hash"
SEAL_COLUMNS = "tx, first_seq, last_seq, head, signer, key, ts, signature"
PASSPHRASE = "alice bench passphrase"  # noqa: S105  (a throwaway vault in a temporary folder)


class Fixed(PassphraseSource):
    def __init__(self) -> None:
        super().__init__(StdinBroker())

    def get(self, prompt: str, *, new: bool = False) -> str:
        return PASSPHRASE


def build(path: Path, events: int) -> None:
    url = f"sqlite:///{path}"
    ctx = Context(db_url=url, actor="alice", passphrase=Fixed())
    vaultinit.init_vault(ctx, org="Bench", admin="alice", name="Alice", email=None, recovery_file=None)
    accounts.add_account(
        ctx, "x-acme", platform="x", handle="@a", team=None, owner=None, rotate_every=None, max_holders=None
    )
    ctx.close()
    append_reveals(path, events)


def alice_keys(connection: sqlite3.Connection) -> tuple[PersonKeys, str]:
    blob, fingerprint = connection.execute(
        "SELECT k.sealed_private, k.fingerprint FROM person_key k JOIN person p ON p.id = k.person_id"
        " WHERE p.handle = 'alice' AND k.active"
    ).fetchone()
    sealed = SealedKeyBlob.parse(blob)
    return sealed.open(sealed.derive_kek(PASSPHRASE)), fingerprint


def append_reveals(path: Path, events: int) -> None:
    """Append ``events`` valid reveals by alice of x-acme, five per signed transaction."""
    connection = sqlite3.connect(path)
    keys, fingerprint = alice_keys(connection)
    seq, prev = connection.execute("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone()
    target = seq + events
    data = canonical_json({"field": "password", "status": "current", "version": 1})
    started = utcnow()
    rows: list[tuple[object, ...]] = []
    seals: list[tuple[object, ...]] = []
    while seq < target:
        tx = str(uuid.uuid4())
        ts = format_ts(started)
        first = seq + 1
        for _ in range(min(5, target - seq)):
            seq += 1
            record = EventRecord(seq, tx, ts, "alice", "secret.revealed", "x-acme", None, None, data, prev, "")
            record = replace(record, hash=event_hash(record.body()))
            rows.append(astuple(record))
            prev = record.hash
        unsigned = SealRecord(tx, first, seq, prev, "alice", fingerprint, ts, "")
        seals.append(astuple(replace(unsigned, signature=base64.b64encode(keys.sign(unsigned.message())).decode())))
        if len(rows) >= 50000:
            _flush(connection, rows, seals)
    _flush(connection, rows, seals)
    connection.close()


def _flush(connection: sqlite3.Connection, rows: list[tuple[object, ...]], seals: list[tuple[object, ...]]) -> None:
    connection.executemany(f"INSERT INTO audit_event ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)  # noqa: S608
    connection.executemany(f"INSERT INTO audit_seal ({SEAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", seals)  # noqa: S608
    connection.commit()
    rows.clear()
    seals.clear()


def bare_chain(path: Path) -> float:
    """Read the same rows and only SHA-256-chain their stored bytes."""
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    digest = b""
    for row in connection.execute(
        "SELECT seq, tx, ts, actor, action, account, subject, reason, data, prev, hash FROM audit_event ORDER BY seq"
    ):
        digest = hashlib.sha256(digest + "\x1f".join("" if v is None else str(v) for v in row).encode()).digest()
    connection.close()
    return time.perf_counter() - started


def run(args: list[str], db: Path) -> tuple[float, int]:
    """Seconds and peak RSS (MiB) of one govern command in a fresh process."""
    env = {**os.environ, "GOVERN_DB_URL": f"sqlite:///{db}", "GOVERN_USER": "alice", "GOVERN_PASSPHRASE": PASSPHRASE}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("govern")), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(
            f"govern {' '.join(args)} failed ({status}): {process.stderr.read() if process.stderr else ''}"
        )
    return elapsed, usage.ru_maxrss // 1024


def measure(db: Path, out: Path, events: int) -> dict[str, object]:
    results: dict[str, object] = {"events": events}
    seconds, rss = run(["audit", "verify"], db)
    results["verify"] = {"seconds": round(seconds, 2), "events_per_s": int(events / seconds), "peak_rss_mib": rss}
    for fmt in ("jsonl", "csv", "ocsf"):
        target = out / f"export.{fmt}"
        seconds, rss = run(["audit", "export", "--format", fmt, "--out", str(target)], db)
        results[f"export_{fmt}"] = {
            "seconds": round(seconds, 2),
            "events_per_s": int(events / seconds),
            "peak_rss_mib": rss,
            "size_mb": round(target.stat().st_size / 1e6, 1),
        }
        target.unlink()
    bare = bare_chain(db)
    results["bare_sha256_chain"] = {"seconds": round(bare, 2), "events_per_s": int(events / bare)}
    verify = results["verify"]
    assert isinstance(verify, dict)
    results["verify_vs_bare"] = round(float(verify["seconds"]) / bare, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="", help="smaller logs to measure first, comma-separated (memory growth)")
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_KDF", "m=19456,t=2,p=1")
    os.environ["GOVERN_CACHE_TTL"] = "0"
    sizes = [int(s) for s in args.sizes.split(",") if s] + [args.events]
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "vault.db"
            started = time.perf_counter()
            build(db, size)
            built = time.perf_counter() - started
            print(f"built a vault with {size:,} extra events in {built:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
            print(json.dumps(measure(db, Path(tmp), size), indent=1))


if __name__ == "__main__":
    main()
