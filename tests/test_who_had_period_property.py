"""Property: ``audit who-had --from --to`` gives, for any period, exactly the holding intervals
and the reveal and TOTP counts of an independent reference model replaying the same operations
(grants, expiries, revocations, offboardings, reveals, TOTP codes, refused attempts).

Deterministic: an injected clock (never the wall clock's date), a template vault copied into a
fresh, uniquely named folder for every example (Hypothesis replays and shrinks within one
``tmp_path``).
"""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CANARY_URI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_who_had_property import PEOPLE, KnownPassphrase, _build_template

from audit.log import format_ts
from govern.context import Context
from govern.errors import Denied, GovernError
from govern.services import access, period, secrets
from offboarding import workflow

TEMPLATE_AT = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class Interval:
    handle: str
    via: str
    start: datetime
    end: datetime | None = None  # actual end (revocation, offboarding) or planned end (expiry)
    ended: str | None = None
    reveals: list[datetime] = field(default_factory=list)
    totp: list[datetime] = field(default_factory=list)

    def on(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def _context(db: str, handle: str, clock: Callable[[], datetime]) -> Context:
    return Context(db_url=db, actor=handle, passphrase=KnownPassphrase(handle), clock=clock)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("who-had-period")
    db = folder / "vault.db"
    patch = pytest.MonkeyPatch()
    try:
        import os

        for name in list(os.environ):
            if name.startswith("GOVERN_"):
                patch.delenv(name)
        patch.setenv("HOME", str(folder / "home"))
        patch.setenv("GOVERN_HOME", str(folder / "govern-home"))
        patch.setenv("GOVERN_KDF", "m=19456,t=2,p=1")
        patch.setenv("GOVERN_CACHE_TTL", "0")
        url = f"sqlite:///{db}"
        _build_template(url)
        admin = _context(url, "alice", lambda: TEMPLATE_AT)
        try:
            secrets.set_secret(
                admin, "x-acme", username="acme", password="first-password-1", totp_uri=CANARY_URI, recovery_codes=None
            )
        finally:
            admin.close()
    finally:
        patch.undo()
    return db


operation = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(PEOPLE), st.sampled_from([None, 1, 3])),
    st.tuples(st.just("revoke"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("offboard"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("reveal"), st.sampled_from([*PEOPLE, "alice"]), st.sampled_from(["password", "totp"])),
    st.tuples(st.just("advance"), st.sampled_from([10, 45, 90, 200])),
)


def _expected(intervals: list[Interval], lo: datetime, hi: datetime, now: datetime) -> set[tuple[object, ...]]:
    out = set()
    for iv in intervals:
        end = iv.end
        if not (iv.start < hi and (end is None or end > lo)):
            continue
        lapsed = end is not None and end <= now
        out.add(
            (
                iv.handle,
                iv.via,
                format_ts(iv.start),
                format_ts(end) if lapsed and end is not None else None,
                iv.ended if lapsed else None,
                sum(1 for t in iv.reveals if lo <= t < hi),
                sum(1 for t in iv.totp if lo <= t < hi),
            )
        )
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=14))
# A grant that lapses and is processed by a later write ends at its planned end, not then.
@example(ops=[("grant", "m1", 1), ("reveal", "m1", "totp"), ("advance", 90), ("grant", "m2", None)])
# An offboarding ends the leaver's grants; a refused attempt afterwards is no reveal.
@example(ops=[("grant", "m1", None), ("reveal", "m1", "password"), ("offboard", "m1"), ("reveal", "m2", "password")])
def test_who_had_period_matches_the_reference_model(  # noqa: PLR0912  (one branch per kind of operation)
    template: Path, tmp_path: Path, ops: list[tuple[object, ...]]
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ex-", dir=tmp_path))
    shutil.copy(template, folder / "vault.db")
    db = f"sqlite:///{folder / 'vault.db'}"
    # Every example is a copy of the same vault: each gets its own client folder (pins).
    patch = pytest.MonkeyPatch()
    patch.setenv("GOVERN_HOME", str(folder / "govern-home"))
    patch.setenv("GOVERN_STATE_DIR", str(folder / "state"))
    now = [START]
    contexts = {h: _context(db, h, lambda: now[0]) for h in [*PEOPLE, "alice"]}
    alice = contexts["alice"]
    intervals = [Interval("alice", "admin role", TEMPLATE_AT)]
    gone: set[str] = set()
    denied: dict[str, int] = {}
    instants = [START - timedelta(hours=1)]
    try:
        for op in ops:
            now[0] += timedelta(seconds=1)
            at = now[0]
            kind = op[0]
            mine = [iv for iv in intervals if iv.handle == op[1] and iv.via == "grant"] if kind != "advance" else []
            try:
                if kind == "grant":
                    hours = op[2]
                    duration = None if hours is None else timedelta(hours=int(hours))  # type: ignore[call-overload]
                    access.grant_access(alice, "x-acme", str(op[1]), reason="r", duration=duration)
                    intervals.append(Interval(str(op[1]), "grant", at, None if duration is None else at + duration))
                    intervals[-1].ended = None if duration is None else "expired"
                elif kind in ("revoke", "offboard"):
                    if kind == "revoke":
                        access.revoke_access(alice, "x-acme", str(op[1]), reason="r")
                    else:
                        workflow.start(alice, str(op[1]), reason="left", effective=None, deadline=None, dry_run=False)
                        gone.add(str(op[1]))
                    for iv in mine:
                        if iv.on(at):
                            iv.end, iv.ended = at, "revoked" if kind == "revoke" else "offboarded"
                elif kind == "reveal":
                    handle = str(op[1])
                    holding = [iv for iv in intervals if iv.handle == handle and iv.on(at)]
                    try:
                        if op[2] == "totp":
                            secrets.totp(contexts[handle], "x-acme")
                        else:
                            secrets.reveal(contexts[handle], "x-acme", "password")
                    except Denied:
                        assert not holding, f"{handle} was refused while holding"
                        denied[handle] = denied.get(handle, 0) + 1
                        raise
                    except GovernError:
                        assert handle in gone, f"{handle} failed to reveal without being offboarded"
                        raise
                    assert holding, f"{handle} revealed without holding"
                    for iv in holding:
                        (iv.totp if op[2] == "totp" else iv.reveals).append(at)
                else:
                    now[0] += timedelta(minutes=int(op[1]))  # type: ignore[call-overload]
            except GovernError:
                pass
            instants.append(at)
        end = now[0]
        instants.append(end + timedelta(hours=5))
        n = len(instants)
        windows = {(0, n - 1), (0, n // 2), (n // 3, n - 1), (n // 2, min(n - 1, n // 2 + 1)), (1, max(1, n - 2))}
        for i, j in sorted(windows):
            lo, hi = instants[i], instants[j]
            if hi <= lo:
                continue
            answer = period.who_had_during(alice, "x-acme", lo, hi)
            got = {
                (p["handle"], p["via"], p["from"], p["until"], p["ended"], p["reveals"], p["totp_codes"])
                for p in answer["people"]
            }
            assert got == _expected(intervals, lo, hi, end), (lo, hi)
        whole = period.who_had_during(alice, "x-acme", instants[0], instants[-1])
        assert whole["denied"] == denied
    finally:
        for ctx in contexts.values():
            ctx.close()
        patch.undo()
        shutil.rmtree(folder, ignore_errors=True)
