"""Property: ``audit who-had`` is right at every instant of a generated history, compared
with a simple reference model that replays the same operations.

Everything runs on an injected, fixed clock (the template vault too, built through the
services rather than the CLI, which reads the wall clock), so the property means the same
on any calendar date.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_governance_property import KnownPassphrase

from govern.context import Context
from govern.errors import GovernError
from govern.services import access, accounts, auditing, staff, vaultinit

PEOPLE = ["m1", "m2", "m3"]
# The template vault is made at TEMPLATE_AT; every example's history starts at START.
TEMPLATE_AT = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class Reference:
    """Intervals [start, end) of holding x-acme by grant, and of being an admin."""

    holds: dict[str, list[list[datetime | None]]] = field(default_factory=dict)
    admin: dict[str, list[list[datetime | None]]] = field(default_factory=dict)

    @staticmethod
    def _open(intervals: list[list[datetime | None]], at: datetime) -> bool:
        return any(s is not None and s <= at and (e is None or at < e) for s, e in intervals)

    def who(self, at: datetime) -> set[str]:
        people = {h for h, iv in self.holds.items() if self._open(iv, at)}
        return people | {h for h, iv in self.admin.items() if self._open(iv, at)}


def _context(db: str, handle: str, clock: Callable[[], datetime]) -> Context:
    return Context(db_url=db, actor=handle, passphrase=KnownPassphrase(handle), clock=clock)


def _build_template(db: str) -> None:
    """alice (admin, from TEMPLATE_AT), enrolled members m1..m3 and the account x-acme."""

    def clock() -> datetime:
        return TEMPLATE_AT

    admin = _context(db, "alice", clock)
    try:
        vaultinit.init_vault(admin, org="Acme", admin="alice", name="Alice Admin", email=None, recovery_file=None)
        for handle in PEOPLE:
            added = staff.add_person(admin, handle, name=handle.title(), email=None, team=None, role="member")
            member = _context(db, handle, clock)
            try:
                staff.enroll(member, handle, str(added["enrolment_code"]))
            finally:
                member.close()
        accounts.add_account(
            admin, "x-acme", platform="x", handle="@acme", team=None, owner=None, rotate_every=None, max_holders=10
        )
    finally:
        admin.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("who-had")
    db = folder / "vault.db"
    # Module-scoped, so built before the function-scoped ``isolated_env``: isolate it here.
    patch = pytest.MonkeyPatch()
    try:
        for name in list(os.environ):
            if name.startswith("GOVERN_"):
                patch.delenv(name)
        patch.setenv("HOME", str(folder / "home"))
        patch.setenv("GOVERN_HOME", str(folder / "govern-home"))
        patch.setenv("GOVERN_KDF", "m=19456,t=2,p=1")
        patch.setenv("GOVERN_CACHE_TTL", "0")
        _build_template(f"sqlite:///{db}")
    finally:
        patch.undo()
    return db


operation = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(PEOPLE), st.sampled_from([None, 1, 3])),
    st.tuples(st.just("revoke"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("role"), st.sampled_from(PEOPLE), st.sampled_from(["admin", "member"])),
    st.tuples(st.just("advance"), st.sampled_from([10, 45, 90, 200])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=16))
def test_who_had_matches_the_reference_model(template: Path, tmp_path: Path, ops: list[tuple[object, ...]]) -> None:
    # A fresh folder per example: Hypothesis replays and shrinks examples within one tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="ex-", dir=tmp_path))
    shutil.copy(template, folder / "vault.db")
    db = f"sqlite:///{folder / 'vault.db'}"
    now = [START]
    ctx = _context(db, "alice", lambda: now[0])
    reference = Reference(admin={"alice": [[TEMPLATE_AT, None]]})
    roles = dict.fromkeys(PEOPLE, "member")
    instants: list[datetime] = []
    try:
        for op in ops:
            now[0] += timedelta(seconds=1)
            at = now[0]
            kind = op[0]
            try:
                if kind == "grant":
                    handle, hours = str(op[1]), op[2]
                    duration = None if hours is None else timedelta(hours=int(hours))  # type: ignore[call-overload]
                    access.grant_access(ctx, "x-acme", handle, reason="r", duration=duration)
                    reference.holds.setdefault(handle, []).append([at, None if duration is None else at + duration])
                elif kind == "revoke":
                    handle = str(op[1])
                    access.revoke_access(ctx, "x-acme", handle, reason="r")
                    for interval in reference.holds.get(handle, []):
                        if interval[1] is None or interval[1] > at:
                            interval[1] = at
                elif kind == "role":
                    handle, role = str(op[1]), str(op[2])
                    staff.set_role(ctx, handle, role)
                    if role == "admin":
                        reference.admin.setdefault(handle, []).append([at, None])
                    elif roles[handle] == "admin":
                        reference.admin[handle][-1][1] = at
                    roles[handle] = role
                else:
                    now[0] += timedelta(minutes=int(op[1]))  # type: ignore[call-overload]
            except GovernError:
                pass
            instants += [at - timedelta(microseconds=1), at, at + timedelta(microseconds=1)]
        instants.append(now[0] + timedelta(hours=5))
        instants.append(TEMPLATE_AT - timedelta(microseconds=1))
        for instant in instants:
            answer = auditing.who_had(ctx, "x-acme", instant)
            assert {p["handle"] for p in answer["people"]} == reference.who(instant), instant
    finally:
        ctx.close()
        shutil.rmtree(folder, ignore_errors=True)
