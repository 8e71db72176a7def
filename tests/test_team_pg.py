"""docs/team.md, tested: a team vault on PostgreSQL with the least-privilege roles of
deploy/postgres/, per-person logins, the member's rights (append-only audit log), a pg_dump
backup and a restore drill (behind the pin, refused; re-pinned on purpose).

Everything runs the documented commands: psql -f on the repository's SQL, the installed
``govern`` with the person's own login, pg_dump and pg_restore.
"""

import itertools
import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import CANARY_PASSWORD
from pg import Cluster
from test_e2e import Shell

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

ROOT = Path(__file__).parent.parent
ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"
GRANTS_SQL = ROOT / "deploy" / "postgres" / "grants.sql"
_names = itertools.count()


class Team:
    """One vault database on the test cluster with IT, alice (admin) and bob (member) logins."""

    def __init__(self, cluster: Cluster, tmp_path: Path) -> None:
        self.cluster = cluster
        self.tmp_path = tmp_path
        suffix = f"{os.getpid()}_{next(_names)}"
        self.db = f"team_{suffix}"
        self.it, self.alice, self.bob = f"it_{suffix}", f"alice_{suffix}", f"bob_{suffix}"
        self.superuser_sql(f'CREATE DATABASE "{self.db}"')
        self.psql("postgres", ROLES_SQL)
        # Logins, as docs/team.md creates them (passwords are set with \password; the test
        # cluster trusts loopback connections).
        self.superuser_sql(f'CREATE ROLE "{self.it}" LOGIN IN ROLE govern_owner')
        self.superuser_sql(f'CREATE ROLE "{self.alice}" LOGIN IN ROLE govern_member')
        self.superuser_sql(f'CREATE ROLE "{self.bob}" LOGIN IN ROLE govern_member')

    def conninfo(self, user: str, db: str | None = None, *, as_owner: bool = False) -> str:
        role = " options='-c role=govern_owner'" if as_owner else ""
        return f"host=127.0.0.1 port={self.cluster.port} dbname={db or self.db} user={user}{role}"

    def url(self, user: str, db: str | None = None, *, as_owner: bool = False) -> str:
        role = "?options=-c%20role%3Dgovern_owner" if as_owner else ""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.cluster.port}/{db or self.db}{role}"

    def superuser_sql(self, statement: str, db: str = "postgres") -> None:
        with psycopg.connect(self.conninfo("postgres", db), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.cluster.bindir / name), *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"{name} {' '.join(args)}: {result.stderr}"
        return result

    def psql(self, user: str, script: Path, *, db: str | None = None, as_owner: bool = False) -> None:
        self.tool("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(user, db, as_owner=as_owner), "-f",
                  str(script))  # fmt: skip

    def shell(self, db_url: str, name: str) -> Shell:
        (self.tmp_path / name).mkdir(exist_ok=True)
        return Shell(db_url, self.tmp_path / name)


def _refused(conninfo: str, statement: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture
def team(pg_cluster: Cluster, tmp_path: Path) -> Team:
    return Team(pg_cluster, tmp_path)


def _set_up(team: Team) -> tuple[Shell, Shell]:
    """init and grants by IT (as govern_owner); daily use by alice and bob with their logins."""
    it = team.shell(team.url(team.it, as_owner=True), "alice-laptop")
    it.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--recovery-file",
           str(team.tmp_path / "recovery.key"))  # fmt: skip
    team.psql(team.it, GRANTS_SQL, as_owner=True)
    alice = team.shell(team.url(team.alice), "alice-laptop")  # the same machine: the same pin
    bob = team.shell(team.url(team.bob), "bob-laptop")
    code = alice.json("staff", "add", "bob", "--name", "Bob")["enrolment_code"]
    bob.run("staff", "enroll", "bob", "--code", code, who="bob")
    alice.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme")
    alice.run("secret", "set", "x-acme", "--password-stdin", stdin=CANARY_PASSWORD + "\n")
    return alice, bob


def test_team_vault_members_do_their_work_and_cannot_rewrite_the_log(team: Team) -> None:
    alice, bob = _set_up(team)
    # What a member needs: request, be approved, reveal, be revoked; an admin's daily work.
    request = bob.json("access", "request", "x-acme", "--reason", "campaign", who="bob")["id"]
    alice.run("access", "approve", str(request))
    assert bob.run("secret", "show", "x-acme", who="bob").stdout.strip() == CANARY_PASSWORD
    alice.run("access", "revoke", "x-acme", "bob", "--reason", "campaign over")
    alice.run("rotation", "status")
    alice.run("audit", "verify")
    bob.run("audit", "log", who="bob")

    member = team.conninfo(team.bob)
    for statement in (
        "UPDATE audit_event SET actor = 'mallory'",
        "DELETE FROM audit_event WHERE seq > 1",
        "TRUNCATE audit_event",
        "UPDATE audit_seal SET signer = 'mallory'",
        "DELETE FROM audit_seal",
        "UPDATE alembic_version SET version_num = '0001'",
        "ALTER TABLE audit_event DISABLE TRIGGER ALL",
        "DROP TABLE audit_event",
        "CREATE TABLE mine (id int)",
    ):
        _refused(member, statement)
    with psycopg.connect(member) as conn:
        assert conn.execute("SELECT count(*) FROM audit_event").fetchone()[0] > 0  # type: ignore[index]
    # A login that is not a member cannot even connect.
    outsider = f"eve_{team.db}"
    team.superuser_sql(f'CREATE ROLE "{outsider}" LOGIN')
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(team.conninfo(outsider)).close()
    # Everything still verifies: the refused statements changed nothing.
    alice.run("audit", "verify")


def test_upgrade_by_the_owner_and_grants_again(team: Team) -> None:
    alice, _bob = _set_up(team)
    it = team.shell(team.url(team.it, as_owner=True), "it-desk")
    it.run("db", "upgrade")
    team.psql(team.it, GRANTS_SQL, as_owner=True)  # idempotent, after every upgrade
    _refused(team.conninfo(team.bob), "DELETE FROM audit_event")
    alice.run("whoami")


def test_backup_and_restore_drill(team: Team) -> None:
    alice, _bob = _set_up(team)
    dump = team.tmp_path / "govern.dump"
    team.tool("pg_dump", "-Fc", "--role=govern_owner", "-f", str(dump), "-d", team.conninfo(team.it))
    alice.run("account", "add", "y-acme", "--platform", "x", "--handle", "@acme_y")  # after the backup

    restored = f"{team.db}_restored"
    team.superuser_sql(f'CREATE DATABASE "{restored}"')
    team.psql("postgres", ROLES_SQL, db=restored)
    team.tool("pg_restore", "--role=govern_owner", "--no-owner", "-d", team.conninfo(team.it, restored),
              str(dump))  # fmt: skip
    alice_on_restored = Shell(team.url(team.alice, restored), team.tmp_path / "alice-laptop")
    # The restored log is older than what alice's machine verified: refused, as a rollback is.
    refused = alice_on_restored.run("secret", "show", "x-acme", code=6)
    assert CANARY_PASSWORD not in refused.stdout
    assert "rolled back or truncated (a restored backup?" in refused.stderr
    # pin show checks the log against the pin: not ok, exit 6.
    status = json.loads(alice_on_restored.run("pin", "show", "--json", code=6).stdout)
    assert "rolled back or truncated" in status["status"]
    # A deliberate, audited re-pin after checking the restore is the one intended.
    alice_on_restored.run("pin", "reset", "--reason", "restore drill, ticket 42")
    assert alice_on_restored.run("secret", "show", "x-acme").stdout.strip() == CANARY_PASSWORD
    assert [a["account"] for a in alice_on_restored.json("account", "list")] == ["x-acme"], "y-acme came after"
    log = alice_on_restored.json("audit", "log")
    assert [e["action"] for e in log][-2:] == ["client.repinned", "secret.revealed"]
    # Members keep exactly their rights on the restored database.
    _refused(team.conninfo(team.bob, restored), "DELETE FROM audit_event")
    bob_restored = Shell(team.url(team.bob, restored), team.tmp_path / "bob-laptop")
    bob_restored.run("pin", "reset", "--reason", "restore drill, ticket 42", who="bob")
    bob_restored.run("audit", "log", who="bob")
