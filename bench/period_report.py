"""Benchmark: the period report and the evidence pack on 100 accounts and 100,000 events.

Builds a real vault through the services on a clock set a quarter back (100 accounts, 20
members, two grants per account, a rotation policy, a few revocations and rotations), then
appends synthetic but valid reveals — by alice and by the accounts' holders, five per signed
transaction, spread evenly over the quarter up to now — straight into SQLite until the log
holds N events. Times `govern audit report --from --to` (html and json) and `govern audit
evidence` in fresh processes, with their peak RSS. Prints figures; asserts nothing.

    .venv/bin/python bench/period_report.py [--accounts 100] [--events 100000]
"""

import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import astuple, replace
from datetime import datetime, timedelta
from pathlib import Path

from audit.chain import EventRecord, SealRecord, canonical_json, event_hash
from audit.log import format_ts
from govern.context import Context
from govern.services import access, accounts, rotation, secrets, staff, vaultinit
from govern.timeutil import format_time, utcnow
from govern.unlock import PassphraseSource, StdinBroker
from vault import PersonKeys, SealedKeyBlob

EVENT_COLUMNS = "seq, tx, ts, actor, action, account, subject, reason, data, prev, hash"
SEAL_COLUMNS = "tx, first_seq, last_seq, head, signer, key, ts, signature"
PASSPHRASE = "bench passphrase for everyone"  # noqa: S105  (a throwaway vault in a temporary folder)
MEMBERS = 20
QUARTER = timedelta(days=91)


class Fixed(PassphraseSource):
    def __init__(self) -> None:
        super().__init__(StdinBroker())

    def get(self, prompt: str, *, new: bool = False) -> str:
        return PASSPHRASE


def build(path: Path, slugs: list[str], start: datetime) -> dict[str, list[str]]:
    """The vault, its people and grants, made through the services on a clock at ``start``."""
    url = f"sqlite:///{path}"
    now = [start]

    def context(handle: str) -> Context:
        return Context(db_url=url, actor=handle, passphrase=Fixed(), clock=lambda: now[0])

    admin = context("alice")
    vaultinit.init_vault(admin, org="Bench", admin="alice", name="Alice", email=None, recovery_file=None)
    people = [f"m{i:02d}" for i in range(MEMBERS)]
    for handle in people:
        code = staff.add_person(admin, handle, name=handle, email=None, team=None, role="member")["enrolment_code"]
        member = context(handle)
        staff.enroll(member, handle, str(code))
        member.close()
    holders: dict[str, list[str]] = {}
    for index, slug in enumerate(slugs):
        accounts.add_account(
            admin,
            slug,
            platform="x",
            handle=f"@{slug}",
            team=None,
            owner=None,
            rotate_every=timedelta(days=30),
            max_holders=3,
        )
        secrets.set_secret(
            admin, slug, username=slug, password=f"{slug}-password-1", totp_uri=None, recovery_codes=None
        )
        holders[slug] = [people[index % MEMBERS], people[(index + 7) % MEMBERS]]
        for handle in holders[slug]:
            access.grant_access(admin, slug, handle, reason="team", duration=None)
    now[0] += timedelta(days=1)
    for slug in slugs[:10]:  # a few revocations and rotations, so the report has ends and exposures
        access.revoke_access(admin, slug, holders[slug][1], reason="moved team")
        holders[slug] = holders[slug][:1]
    now[0] += timedelta(days=2)
    for slug in slugs[:10]:
        rotation.start(admin, slug)
        rotation.confirm(admin, slug)
    admin.close()
    return holders


def keys_of(connection: sqlite3.Connection) -> dict[str, tuple[PersonKeys, str]]:
    out = {}
    for handle, blob, fingerprint in connection.execute(
        "SELECT p.handle, k.sealed_private, k.fingerprint FROM person_key k JOIN person p ON p.id = k.person_id"
        " WHERE k.active"
    ):
        sealed = SealedKeyBlob.parse(blob)
        out[handle] = (sealed.open(sealed.derive_kek(PASSPHRASE)), fingerprint)
    return out


def append_reveals(path: Path, total: int, holders: dict[str, list[str]], start: datetime, end: datetime) -> int:
    """Append valid reveals (five per signed transaction) until the log holds ``total`` events."""
    connection = sqlite3.connect(path)
    keys = keys_of(connection)
    seq, prev, last_ts = connection.execute(
        "SELECT seq, hash, ts FROM audit_event ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    missing = max(0, total - seq)
    transactions = (missing + 4) // 5
    first_at = max(datetime.strptime(last_ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=start.tzinfo), start)
    step = (end - first_at) / max(1, transactions + 1)
    data = canonical_json({"field": "password", "status": "current", "version": 1})
    slugs = sorted(holders)
    rows: list[tuple[object, ...]] = []
    seals: list[tuple[object, ...]] = []
    for number in range(transactions):
        slug = slugs[number % len(slugs)]
        actor = "alice" if number % 3 == 0 else holders[slug][number % len(holders[slug])]
        signer, fingerprint = keys[actor]
        tx = str(uuid.uuid4())
        ts = format_ts(first_at + step * (number + 1))
        first = seq + 1
        for _ in range(min(5, total - seq)):
            seq += 1
            record = EventRecord(seq, tx, ts, actor, "secret.revealed", slug, None, None, data, prev, "")
            record = replace(record, hash=event_hash(record.body()))
            rows.append(astuple(record))
            prev = record.hash
        unsigned = SealRecord(tx, first, seq, prev, actor, fingerprint, ts, "")
        seals.append(astuple(replace(unsigned, signature=base64.b64encode(signer.sign(unsigned.message())).decode())))
        if len(rows) >= 50000:
            _flush(connection, rows, seals)
    _flush(connection, rows, seals)
    connection.close()
    return seq


def _flush(connection: sqlite3.Connection, rows: list[tuple[object, ...]], seals: list[tuple[object, ...]]) -> None:
    connection.executemany(f"INSERT INTO audit_event ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)  # noqa: S608
    connection.executemany(f"INSERT INTO audit_seal ({SEAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", seals)  # noqa: S608
    connection.commit()
    rows.clear()
    seals.clear()


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("GOVERN_KDF", "m=19456,t=2,p=1")
    os.environ["GOVERN_CACHE_TTL"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GOVERN_HOME"] = str(Path(tmp) / "home")
        os.environ["GOVERN_STATE_DIR"] = str(Path(tmp) / "state")
        db = Path(tmp) / "vault.db"
        end = utcnow()
        start = end - QUARTER
        began = time.perf_counter()
        holders = build(db, [f"acct-{i:03d}" for i in range(args.accounts)], start)
        events = append_reveals(db, args.events, holders, start, end - timedelta(minutes=1))
        print(f"built {args.accounts} accounts and {events:,} events in {time.perf_counter() - began:.1f} s")
        period = ["--from", format_time(start), "--to", "now"]
        results: dict[str, object] = {"accounts": args.accounts, "events": events}
        run(["audit", "verify"], db)  # pins the vault for this client, as an auditor's client would be
        for fmt in ("html", "json"):
            out = Path(tmp) / f"report.{fmt}"
            seconds, rss = run(["audit", "report", *period, "--format", fmt, "--out", str(out)], db)
            results[f"report_{fmt}"] = {
                "seconds": round(seconds, 2),
                "peak_rss_mib": rss,
                "size_mb": round(out.stat().st_size / 1e6, 2),
            }
        pack = Path(tmp) / "evidence.zip"
        seconds, rss = run(["audit", "evidence", *period, "--out", str(pack)], db)
        results["evidence"] = {
            "seconds": round(seconds, 2),
            "peak_rss_mib": rss,
            "size_mb": round(pack.stat().st_size / 1e6, 1),
        }
        seconds, rss = run(["audit", "verify", "--evidence", str(pack)], db)
        results["verify_evidence"] = {"seconds": round(seconds, 2), "peak_rss_mib": rss}
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
