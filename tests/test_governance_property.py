"""Property: random sequences of requests, decisions, grants, revocations and expiries
never break the register's rules.

Services are called in-process with a controllable clock (time is passed in), on a
copy of one template SQLite vault per example.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Govern, passphrase_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from govern.context import Context
from govern.errors import GovernError
from govern.models import AccessRequest, Account, DataKey, Grant, KeyWrap, Person
from govern.services import access, expiry, requests
from govern.services.common import grant_status
from govern.unlock import PassphraseSource, StdinBroker

PEOPLE = ["m1", "m2", "m3", "m4"]
ACCOUNTS = ["x-acme", "ig-acme"]


class KnownPassphrase(PassphraseSource):
    def __init__(self, handle: str) -> None:
        super().__init__(StdinBroker())
        self.handle = handle

    def get(self, prompt: str, *, new: bool = False) -> str:
        return passphrase_of(self.handle)


@dataclass
class World:
    db: str
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    request_ids: list[int] = field(default_factory=list)
    wrote: bool = False

    def ctx(self, handle: str) -> Context:
        return Context(db_url=self.db, actor=handle, passphrase=KnownPassphrase(handle), clock=lambda: self.now)

    def call(self, handle: str, fn: object, *args: object, **kwargs: object) -> object:
        context = self.ctx(handle)
        try:
            result = fn(context, *args, **kwargs)  # type: ignore[operator]
            self.wrote = True
            return result
        except GovernError:
            self.wrote = False
            return None
        finally:
            context.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    db = folder / "vault.db"
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("GOVERN_KDF", "m=19456,t=2,p=1")
        mp.setenv("GOVERN_CACHE_TTL", "0")
        g = Govern(f"sqlite:///{db}", mp)
        g.init()
        for handle in PEOPLE:
            g.enrol(handle)
        g.ok("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--max-holders", "2", "--owner", "m1")
        g.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme", "--max-holders", "1")
        g.ok("secret", "set", "x-acme", "--password-stdin", input="pw-x-acme-1\n")
        g.ok("secret", "set", "ig-acme", "--password-stdin", input="pw-ig-acme-1\n")
    finally:
        mp.undo()
    return db


who = st.sampled_from([*PEOPLE, "alice"])
account = st.sampled_from(ACCOUNTS)
operation = st.one_of(
    st.tuples(st.just("request"), who, account, st.sampled_from([None, 1, 3])),
    st.tuples(st.just("approve"), st.sampled_from(["alice", "alice", "m1", *PEOPLE]), st.integers(0, 5)),
    st.tuples(st.just("deny"), who, st.integers(0, 5)),
    st.tuples(st.just("grant"), account, who, st.sampled_from([None, 1, 2])),
    st.tuples(st.just("revoke"), account, who),
    st.tuples(st.just("advance"), st.sampled_from([30, 61, 150])),
    st.tuples(
        st.just("sweep"),
    ),
)


def apply(world: World, op: tuple[object, ...]) -> None:
    kind = op[0]
    world.wrote = False
    if kind == "request":
        _, handle, slug, hours = op
        duration = None if hours is None else timedelta(hours=int(hours))  # type: ignore[call-overload]
        made = world.call(str(handle), requests.create_request, slug, reason="needed", duration=duration)
        if isinstance(made, dict):
            world.request_ids.append(int(made["id"]))
    elif kind in ("approve", "deny"):
        _, handle, index = op
        if not world.request_ids:
            return
        request_id = world.request_ids[int(index) % len(world.request_ids)]  # type: ignore[call-overload]
        if kind == "approve":
            world.call(str(handle), requests.approve, request_id, over_cap_reason=None)
        else:
            world.call(str(handle), requests.deny, request_id, reason="no")
    elif kind == "grant":
        _, slug, handle, hours = op
        duration = None if hours is None else timedelta(hours=int(hours))  # type: ignore[call-overload]
        world.call("alice", access.grant_access, slug, handle, reason="ops", duration=duration)
    elif kind == "revoke":
        _, slug, handle = op
        world.call("alice", access.revoke_access, slug, handle, reason="ops")
    elif kind == "advance":
        world.now += timedelta(minutes=int(op[1]))  # type: ignore[call-overload]
    elif kind == "sweep":
        world.call("m4", expiry.sweep)


def check(world: World) -> None:
    engine = create_engine(world.db)
    try:
        with Session(engine) as session:
            people = {p.id: p for p in session.exec(select(Person)).all()}
            admins = {p.handle for p in people.values() if p.role == "admin"}
            for acct in session.exec(select(Account)).all():
                grants = session.exec(
                    select(Grant).where(Grant.account_id == acct.id, col(Grant.revoked_at).is_(None))
                ).all()
                live = {people[g.person_id].handle for g in grants if grant_status(g, world.now) == "live"}
                assert len(live) <= acct.max_holders, f"{acct.slug}: {live} over cap {acct.max_holders}"
                key = session.exec(
                    select(DataKey).where(DataKey.account_id == acct.id, col(DataKey.retired_at).is_(None))
                ).one()
                wrapped = {
                    people[w.person_id].handle
                    for w in session.exec(select(KeyWrap).where(KeyWrap.data_key_id == key.id)).all()
                    if w.person_id is not None
                }
                # Who the tools let decrypt: a wrap *and* (admin or a live grant).
                can_decrypt = {h for h in wrapped if h in admins or h in live}
                assert can_decrypt == live | admins, f"{acct.slug}: decrypt {can_decrypt} vs live {live} + admins"
                if world.wrote:
                    # Right after a write (which processes expiries first) the keys match exactly.
                    assert wrapped == live | admins, f"{acct.slug}: wraps {wrapped} vs live {live} + admins"
            for request in session.exec(select(AccessRequest)).all():
                if request.status in ("approved", "denied"):
                    assert request.decided_by != people[request.person_id].handle, "self-decided request"
    finally:
        engine.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=20))
def test_register_invariants_hold(template: Path, tmp_path: Path, ops: list[tuple[object, ...]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ex-", dir=tmp_path))
    shutil.copy(template, folder / "vault.db")
    world = World(db=f"sqlite:///{folder / 'vault.db'}")
    for op in ops:
        apply(world, op)
        check(world)
