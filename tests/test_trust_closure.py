"""Issue 19: what govern signs is computed from the verified log, and the rules check every claim.

Each test plays one attack (as a database writer, or as an insider signing with their own
key) on SQLite and on PostgreSQL, and asserts that it fails: the verified state computes the
exposure and the offboarding plan itself (rows only index them), and the rules refuse a
signed ``exposed`` list or plan that differs from that computation.
"""

from typing import Any

import psycopg
import pytest
from conftest import CANARY_PASSWORD, Govern, Result
from forge import Forged, append_transaction, connection, head, keys_of, person_id
from sqlalchemy import text
from sqlhelp import sql
from test_team_pg import Team, _set_up, team  # noqa: F401  (the fixture)

pytestmark = pytest.mark.tampers


def clean(result: Result) -> Result:
    assert "Traceback" not in result.err, result.err
    assert "this is a bug" not in result.err, f"exit {result.code}: {result.err}"
    return result


def refused(result: Result, code: int = 6) -> Result:
    clean(result)
    assert result.code == code, f"expected exit {code}, got {result.code}: {result.err or result.out}"
    return result


def signer_of(db: str, handle: str) -> dict[str, Any]:
    keys = keys_of(db, handle)
    return {"signer": handle, "key": keys.public.fingerprint, "sign": keys.sign}


def steps_of(vault: Govern, handle: str = "bob") -> list[tuple[str, str | None]]:
    view = vault.ok("offboard", "status", handle, "--json").json()
    case = view[0] if isinstance(view, list) else view
    return [(s["kind"], s["account"]) for s in case["steps"]]


def execute(db: str, statement: str, **params: Any) -> None:
    with connection(db) as conn:
        conn.execute(text(statement), params)


def _bob_holds_x_acme(vault: Govern, password: str = CANARY_PASSWORD) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == password


def test_leavers_wrap_history_deleted_before_offboarding_still_plans_the_rotation(vault: Govern) -> None:
    _bob_holds_x_acme(vault)
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "confirm", "x-acme")
    # bob holds it again: he knows the current password.
    _bob_holds_x_acme(vault, vault.ok("secret", "show", "x-acme").out.strip())
    # The attack: the leaver (or any database writer) deletes every trace of the keys he was given.
    execute(vault.db, "DELETE FROM wrap_history WHERE person_id = :p", p=person_id(vault.db, "bob"))
    dry = vault.ok("offboard", "start", "bob", "--reason", "left", "--dry-run", "--json").json()
    assert ("rotate-password", "x-acme") in [(s["kind"], s["account"]) for s in dry["steps"]]
    vault.ok("offboard", "start", "bob", "--reason", "left")
    assert ("rotate-password", "x-acme") in steps_of(vault)
    status = {r["account"]: r for r in vault.ok("rotation", "status", "--json").json()}
    assert [e["kind"] for e in status["x-acme"]["exposed_to"]] == ["password"]
    assert clean(vault("rotation", "status", "--check")).code == 7


def test_knowledge_record_pointed_at_another_accounts_version_still_plans_the_rotation(vault: Govern) -> None:
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    vault.ok("secret", "set", "ig-acme", "--password-stdin", input="ig-password-1234\n")
    vault.ok("access", "record", "x-acme", "bob", "--reason", "told on the phone")
    other = sql(
        vault.db,
        "SELECT v.id FROM credential_version v JOIN account a ON a.id = v.account_id WHERE a.slug = 'ig-acme'",
    )[0][0]
    execute(vault.db, "UPDATE knowledge_record SET version_id = :v", v=other)
    vault.ok("offboard", "start", "bob", "--reason", "left")
    assert ("rotate-password", "x-acme") in steps_of(vault)
    assert ("rotate-password", "ig-acme") not in steps_of(vault)
    assert clean(vault("rotation", "status", "--check")).code == 7


def test_insider_signs_key_unwrapped_with_a_short_exposed_list(vault: Govern) -> None:
    _bob_holds_x_acme(vault)
    key_id, fingerprint = sql(
        vault.db,
        "SELECT w.data_key_id, w.recipient_fingerprint FROM key_wrap w WHERE w.person_id = :p",
        p=person_id(vault.db, "bob"),
    )[0]
    before = head(vault.db)[0]
    # alice, an admin with her own passphrase, removes bob's key and says he knew nothing.
    append_transaction(
        vault.db,
        [
            Forged(
                "alice",
                "key.unwrapped",
                account="x-acme",
                subject="bob",
                data={"data_keys": [key_id], "removed": [[key_id, fingerprint]], "exposed": [], "exposed_versions": []},
            )
        ],
        **signer_of(vault.db, "alice"),
    )
    verified = refused(vault("audit", "verify"))
    assert f"event {before + 1}" in verified.err
    assert "exposed list is not the one the log gives" in verified.err


def test_insider_signs_an_offboarding_plan_without_the_rotation(vault: Govern) -> None:
    _bob_holds_x_acme(vault)
    before = head(vault.db)[0]
    plan = [[1, "suspend", None], [2, "remove-access", "x-acme"]]
    append_transaction(
        vault.db,
        [
            Forged(
                "alice",
                "offboard.started",
                subject="bob",
                reason="left",
                data={
                    "case": 99,
                    "effective_at": "2026-01-01T00:00:00Z",
                    "deadline": "2099-01-01T00:00:00Z",
                    "steps": 2,
                    "automatic": 2,
                    "plan": plan,
                },
            )
        ],
        **signer_of(vault.db, "alice"),
    )
    verified = refused(vault("audit", "verify"))
    assert f"event {before + 1}" in verified.err
    assert "missing: rotate-password x-acme" in verified.err


@pytest.mark.postgres
@pytest.mark.e2e
def test_leavers_own_postgres_login_deletes_wrap_history_before_offboarding(team: Team) -> None:  # noqa: F811
    """The documented grants (deploy/postgres) let any member delete rows: the leaver's login suffices."""
    alice, bob = _set_up(team)
    alice.run("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert bob.run("secret", "show", "x-acme", who="bob").stdout.strip() == CANARY_PASSWORD
    with psycopg.connect(team.conninfo(team.bob), autocommit=True) as conn:
        conn.execute("DELETE FROM wrap_history WHERE person_id = (SELECT id FROM person WHERE handle = 'bob')")
    alice.run("offboard", "start", "bob", "--reason", "left")
    case = alice.json("offboard", "status", "bob")
    case = case[0] if isinstance(case, list) else case
    assert ("rotate-password", "x-acme") in [(s["kind"], s["account"]) for s in case["steps"]]
    alice.run("rotation", "status", "--check", code=7)
