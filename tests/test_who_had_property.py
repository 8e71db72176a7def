"""Property: ``audit who-had`` is right at every instant of a generated history, compared
with a simple reference model that replays the same operations."""

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Govern
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_governance_property import KnownPassphrase

from govern.context import Context
from govern.errors import GovernError
from govern.services import access, auditing, staff

PEOPLE = ["m1", "m2", "m3"]


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


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("who-had") / "vault.db"
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("GOVERN_KDF", "m=19456,t=2,p=1")
        patch.setenv("GOVERN_CACHE_TTL", "0")
        g = Govern(f"sqlite:///{db}", patch)
        g.init()
        for handle in PEOPLE:
            g.enrol(handle)
        g.ok("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--max-holders", "10")
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
    folder = tmp_path / f"ex-{abs(hash(tuple(map(str, ops))))}"
    folder.mkdir()
    shutil.copy(template, folder / "vault.db")
    db = f"sqlite:///{folder / 'vault.db'}"
    now = [datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]
    ctx = Context(db_url=db, actor="alice", passphrase=KnownPassphrase("alice"), clock=lambda: now[0])
    reference = Reference(admin={"alice": [[datetime(2026, 1, 1, tzinfo=UTC), None]]})
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
        for instant in instants:
            answer = auditing.who_had(ctx, "x-acme", instant)
            assert {p["handle"] for p in answer["people"]} == reference.who(instant), instant
    finally:
        ctx.close()
