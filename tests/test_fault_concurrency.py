"""Fault campaign, concurrency (issue 10): N processes of the installed entry point, each
running M mixed writes (secret set, access grant/revoke, account set) as a different admin,
against one vault, on SQLite and PostgreSQL.

Nothing reported done may be lost (every exit-0 command is in the tables and in the log),
nothing reported failed may have happened, every failure is a documented exit code (never 1,
never a traceback), and the chain is gap-free and verifies at the end. Fast: 4 x 8; full
(``make fuzz``): 8 x 50.
"""

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import Govern
from faultkit import FAILURES, FULL, SEED, Outcome, Tally, events_of, query, run_govern, subprocess_env, verify_chain_of

pytestmark = pytest.mark.e2e

PROCESSES = 8 if FULL else 4
WRITES = 50 if FULL else 8  # the fast run keeps PostgreSQL (serialised by its advisory lock) to 4 x 4
ACCOUNTS = ("acc-0", "acc-1", "acc-2")
MEMBERS = ("mia", "max", "mel")


def plan(seed: int, worker: int, writes: int) -> list[tuple[str, ...]]:
    """Worker ``worker``'s writes; every one carries a mark unique to it (a reason, a value)."""
    rng = random.Random(f"{seed}:{worker}")  # noqa: S311  (test data, not cryptography)
    ops: list[tuple[str, ...]] = []
    for n in range(writes):
        mark = f"w{worker}o{n}"
        account = rng.choice(ACCOUNTS)
        kind = rng.choice(("secret", "grant", "grant", "revoke", "revoke", "account"))
        if kind == "secret":
            ops.append(("secret", "set", account, "--password-stdin", f"pw-{seed}-{mark}"))
        elif kind == "grant":
            extra = ("--for", f"{rng.randint(1, 90)}d") if rng.random() < 0.3 else ()
            ops.append(("access", "grant", account, rng.choice(MEMBERS), "--reason", mark, *extra))
        elif kind == "revoke":
            ops.append(("access", "revoke", account, rng.choice(MEMBERS), "--reason", mark))
        else:
            ops.append(("account", "set", account, "--team", f"team-{mark}"))
    return ops


def admin(worker: int) -> str:
    return "alice" if worker == 0 else f"adm{worker}"


def test_concurrent_mixed_writers_lose_nothing(  # noqa: PLR0912  (one check per kind of write)
    govern: Govern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"  # one machine: every process shares this client's pins
    monkeypatch.setenv("GOVERN_STATE_DIR", str(state))
    govern.init()
    for worker in range(1, PROCESSES):
        govern.enrol(admin(worker), "admin")
    for member in MEMBERS:
        govern.enrol(member)
    for slug in ACCOUNTS:
        govern.account(slug, password=f"pw-{SEED}-initial-{slug}")
    env = subprocess_env(govern.db, tmp_path / "home", state)
    writes = WRITES if FULL or govern.db.startswith("sqlite") else 4
    plans = {worker: plan(SEED, worker, writes) for worker in range(PROCESSES)}

    def work(worker: int) -> list[Outcome]:
        results = []
        for op in plans[worker]:
            if op[:2] == ("secret", "set"):
                args, stdin = op[:-1], op[-1] + "\n"
            else:
                args, stdin = op, ""
            results.append(run_govern(args, env, who=admin(worker), stdin=stdin, timeout=180))
        return results

    with ThreadPoolExecutor(PROCESSES) as pool:
        outcomes = dict(zip(plans, pool.map(work, plans), strict=True))

    tally = Tally(f"concurrency {PROCESSES}x{writes} {govern.db.split(':')[0]}")
    for worker, results in outcomes.items():
        for n, outcome in enumerate(results):
            tally.add(outcome, {0, *FAILURES}, where=f"worker {worker} op {n}")

    events = events_of(govern.db)
    tally.extra["events"] = len(events)
    try:
        verify_chain_of(govern.db)
        tally.verify["chain ok"] += 1
    except Exception as exc:  # the figures must still be reported
        tally.verify[f"chain broken: {type(exc).__name__}"] += 1
        tally.defect("chain", f"{exc}")
    verified = govern("audit", "verify")
    tally.verify[f"audit verify exit {verified.code}"] += 1
    if verified.code != 0:
        tally.defect("audit verify", verified.err.strip()[:300])

    by_reason = Counter((e["action"], e["account"], e["subject"], e["reason"]) for e in events)
    teams = Counter()
    for e in events:
        if e["action"] == "account.updated":
            changes = json.loads(e["data"]).get("changes", {})
            if "team" in changes:
                teams[(e["account"], changes["team"][1])] += 1
    secret_events = Counter((e["actor"], e["account"]) for e in events if e["action"] == "secret.set")
    granted = {row[0] for row in query(govern.db, "SELECT reason FROM access_grant")}
    revoked = {
        row[0] for row in query(govern.db, "SELECT revoke_reason FROM access_grant WHERE revoked_at IS NOT NULL")
    }
    secret_done: Counter[tuple[str, str]] = Counter()
    passwords: dict[str, set[str]] = {slug: set() for slug in ACCOUNTS}

    def check(done: bool, seen: bool, what: str) -> None:
        if done and not seen:
            tally.lost += 1
            tally.defect(f"lost write: {what.split(maxsplit=1)[0]}", what)
        elif seen and not done:
            tally.phantom += 1
            tally.defect(f"failed write applied: {what.split(maxsplit=1)[0]}", what)

    for worker, results in outcomes.items():
        for op, outcome in zip(plans[worker], results, strict=True):
            done = outcome.code == 0
            what = f"{' '.join(op)} by {admin(worker)} -> {outcome.code}"
            if op[:2] == ("access", "grant"):
                event = by_reason[("access.granted", op[2], op[3], op[5])]
                check(done, event == 1 and op[5] in granted, what)
            elif op[:2] == ("access", "revoke"):
                event = by_reason[("access.revoked", op[2], op[3], op[5])]
                check(done, event == 1 and op[5] in revoked, what)
            elif op[:2] == ("account", "set"):
                check(done, teams[(op[2], op[4])] == 1, what)
            elif done:
                secret_done[(admin(worker), op[2])] += 1
                passwords[op[2]].add(op[4])
    for key in set(secret_done) | set(secret_events):
        expected = secret_done[key] + (1 if key[0] == "alice" else 0)  # the initial secret of each account
        if secret_events[key] != expected:
            tally.lost += max(0, expected - secret_events[key])
            tally.phantom += max(0, secret_events[key] - expected)
            tally.defect("secret set count", f"{key}: {secret_done[key]} reported done, {secret_events[key]} events")
    for slug in ACCOUNTS:
        shown = govern("secret", "show", slug)
        current = shown.out.strip()
        allowed = passwords[slug] or {f"pw-{SEED}-initial-{slug}"}
        if shown.code != 0 or current not in allowed:
            tally.lost += 1
            tally.defect("reveal", f"{slug}: exit {shown.code}, a password no successful secret set wrote")
    team_rows = dict(query(govern.db, "SELECT slug, COALESCE(team, '') FROM account"))
    for slug in ACCOUNTS:
        sets = [op[4] for ps in plans.values() for op in ps if op[:3] == ("account", "set", slug)]
        if team_rows[slug] and team_rows[slug] not in sets:
            tally.defect("account set", f"{slug}: team {team_rows[slug]!r} was never set")

    figures = tally.report()
    assert tally.attempts == PROCESSES * writes
    assert not tally.defects, f"seed {SEED}:\n{figures}"
    assert tally.exits["0"] > 0, f"seed {SEED}: not a single write succeeded\n{figures}"
