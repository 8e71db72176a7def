"""Issue 19: what govern signs is computed from the verified log, and the rules check every claim.

Each test plays one attack (as a database writer, or as an insider signing with their own
key) on SQLite and on PostgreSQL, and asserts that it fails: the verified state computes the
exposure and the offboarding plan itself (rows only index them), and the rules refuse a
signed ``exposed`` list or plan that differs from that computation.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import CANARY_PASSWORD, Govern
from forge import (
    Forged,
    append_transaction,
    clean,
    connection,
    fingerprint_of,
    head,
    keys_of,
    person_id,
    refused,
    signer_of,
)
from sqlalchemy import text
from sqlhelp import sql
from test_team_pg import Team, _set_up, team  # noqa: F401  (the fixture)

pytestmark = pytest.mark.tampers


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


# -- containment: one insider's bad transaction does not stop the team (issue 19, 4) ------------


def _carol_holds_x_acme(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "runs X")


def _forge(vault: Govern, handle: str, *events: Forged, ts: str | None = None) -> int:
    """Append ``events`` as one transaction signed with ``handle``'s real key; return its first seq."""
    first = head(vault.db)[0] + 1
    append_transaction(vault.db, list(events), **signer_of(vault.db, handle), ts=ts)
    return first


def test_member_unwraps_a_key_that_does_not_exist_and_the_team_keeps_working(vault: Govern) -> None:
    _carol_holds_x_acme(vault)
    bad = _forge(
        vault,
        "bob",
        Forged(
            "bob",
            "key.unwrapped",
            account="x-acme",
            subject="bob",
            data={"data_keys": [999], "removed": [[999, fingerprint_of(vault.db, "bob")]], "exposed": []},
        ),
    )
    # Everyone else keeps working on the state without it, pin reset included.
    assert vault.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    vault.ok("pin", "reset", "--reason", "new laptop", as_="carol")
    assert vault.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    vault.ok("staff", "add", "dave", "--name", "Dave")
    # audit verify names it (signer, event, rule) until an admin records a decision.
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert "key.unwrapped carries malformed data" in verified.err
    report = vault("audit", "verify", "--json").json()
    assert report["violations"][0]["signer"] == "bob"
    inbox = vault.ok("inbox", "--json").json()
    assert f"violation:{bad}" in [i["key"] for i in inbox["items"]]
    assert f"violation:{bad}" not in [i["key"] for i in vault.ok("inbox", "--json", as_="carol").json()["items"]]
    refused(vault("audit", "acknowledge", str(bad), "--reason", "not mine to decide", as_="carol"), 4)
    vault.ok("audit", "acknowledge", str(bad), "--reason", "bob's client bug, ticket 7")
    clean(vault.ok("audit", "verify"))
    assert f"violation:{bad}" not in [i["key"] for i in vault.ok("inbox", "--json").json()["items"]]
    refused(vault("audit", "acknowledge", str(bad), "--reason", "again"), 8)


def test_member_forges_an_acknowledgement_of_their_own_violation(vault: Govern) -> None:
    bad = _forge(vault, "bob", Forged("bob", "secret.destroyed", account="x-acme", data={"version": 1}))
    forged = _forge(
        vault,
        "bob",
        Forged("bob", "audit.violation_acknowledged", reason="all fine", data={"transaction": bad}),
    )
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert f"transaction {forged} signed by bob" in verified.err


@pytest.mark.parametrize("when", ["2200-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z"])
def test_event_dated_far_ahead_does_not_freeze_the_logs_clock(vault: Govern, when: str) -> None:
    bad = _forge(vault, "bob", Forged("bob", "client.repinned", reason="x", data={}), ts=when)
    # Later events, dated now, are still accepted: grants start and end, staff are added.
    vault.ok("staff", "add", "dave", "--name", "Dave")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "1h")
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD
    vault.later(timedelta(hours=2))
    refused(vault("secret", "show", "x-acme", as_="bob"), 4)
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert "ahead of the verifier's clock" in verified.err


def test_event_dated_before_the_previous_one_is_contained(vault: Govern) -> None:
    bad = _forge(vault, "bob", Forged("bob", "client.repinned", reason="x", data={}), ts="2001-01-01T00:00:00.000000Z")
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    assert f"transaction {bad} signed by bob" in refused(vault("audit", "verify")).err


def test_forged_signature_is_still_fatal_not_contained(vault: Govern) -> None:
    """A chain break stays fatal: a rule-breaking transaction under a bad signature is not attributed."""
    keys = keys_of(vault.db, "bob")
    append_transaction(
        vault.db,
        [Forged("bob", "secret.destroyed", account="x-acme", data={"version": 1})],
        signer="bob",
        key=keys.public.fingerprint,
        sign=lambda _message: b"\0" * 64,
    )
    refused(vault("secret", "show", "x-acme"))
    assert "signature does not verify" in refused(vault("audit", "verify")).err


# -- rules that allow only what govern writes (issue 19, 3) --------------------------------------


def _second_version(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--password-stdin", input="second-password-1\n")


def test_auditor_signs_secret_destroyed(vault: Govern) -> None:
    _second_version(vault)
    vault.enrol("dana", "auditor")
    bad = _forge(vault, "dana", Forged("dana", "secret.destroyed", account="x-acme", data={"version": 1}))
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by dana" in verified.err
    assert "a auditor: only admin, manager, member may sign it" in verified.err
    # Contained: version 1 is still there for the admin.
    assert vault.ok("secret", "show", "x-acme", "--version", "1").out.strip() == CANARY_PASSWORD


def test_holder_destroys_a_version_before_its_retention(vault: Govern) -> None:
    _second_version(vault)
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    bad = _forge(vault, "bob", Forged("bob", "secret.destroyed", account="x-acme", data={"version": 1}))
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert "before its retention ends" in verified.err


def test_retain_until_moved_into_the_past_is_not_believed(vault: Govern) -> None:
    _second_version(vault)
    execute(
        vault.db, "UPDATE credential_version SET retain_until = :t WHERE number = 1", t=datetime(2000, 1, 1, tzinfo=UTC)
    )
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")  # any write
    assert vault.ok("secret", "show", "x-acme", "--version", "1").out.strip() == CANARY_PASSWORD
    vault.later(timedelta(days=31))
    vault.ok("account", "add", "yt-acme", "--platform", "youtube", "--handle", "@acme")
    assert clean(vault("secret", "show", "x-acme", "--version", "1")).code != 0


def test_holders_key_retired_removes_another_holders_wrap_of_another_account(vault: Govern) -> None:
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    vault.ok("secret", "set", "ig-acme", "--password-stdin", input="ig-password-1234\n")
    vault.enrol("carol")
    vault.ok("access", "grant", "ig-acme", "carol", "--reason", "runs IG")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    carol_wrap = sql(
        vault.db,
        "SELECT w.data_key_id, w.recipient_fingerprint FROM key_wrap w WHERE w.person_id = :p",
        p=person_id(vault.db, "carol"),
    )[0]
    x_key = sql(
        vault.db,
        "SELECT k.id FROM data_key k JOIN account a ON a.id = k.account_id"
        " WHERE a.slug = 'x-acme' AND k.retired_at IS NULL",
    )[0][0]
    bad = _forge(
        vault,
        "bob",
        Forged(
            "bob",
            "key.retired",
            account="x-acme",
            data={"current": x_key, "data_keys": [], "removed": [list(carol_wrap)]},
        ),
    )
    assert vault.ok("secret", "show", "ig-acme", as_="carol").out.strip() == "ig-password-1234"
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert "which it does not retire" in verified.err


def test_event_type_govern_never_writes_is_refused(vault: Govern) -> None:
    bad = _forge(vault, "alice", Forged("alice", "vault.handed_over", subject="bob", data={}))
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by alice" in verified.err
    assert "vault.handed_over is not an event govern writes" in verified.err


# -- reviews from the verified state (issue 19, 2) ------------------------------------------------


def test_review_item_row_deleted_is_still_revoked_by_revoke_undecided(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("review", "start")
    execute(vault.db, "DELETE FROM access_review_item")
    vault.ok("review", "close", "--revoke-undecided")
    refused(vault("secret", "show", "x-acme", as_="bob"), 4)
    clean(vault.ok("audit", "verify"))


def test_owner_certifies_their_own_grant_or_another_owners(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme", "--owner", "bob")
    vault.ok("access", "grant", "ig-acme", "bob", "--reason", "runs IG")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "runs X")
    vault.ok("review", "start")
    review = vault.ok("review", "list", "--json").json()[-1]["id"]
    grants = {(a, h): g for g, a, h in sql(
        vault.db, "SELECT g.id, a.slug, p.handle FROM access_grant g JOIN account a ON a.id = g.account_id"
        " JOIN person p ON p.id = g.person_id")}  # fmt: skip
    own = _forge(vault, "bob", Forged("bob", "review.certified", account="ig-acme", subject="bob",
                                      data={"review": review, "grant": grants[("ig-acme", "bob")]}))  # fmt: skip
    verified = refused(vault("audit", "verify"))
    assert f"transaction {own} signed by bob" in verified.err
    assert "bob certified their own access" in verified.err
    other = _forge(vault, "bob", Forged("bob", "review.certified", account="x-acme", subject="carol",
                                        data={"review": review, "grant": grants[("x-acme", "carol")]}))  # fmt: skip
    verified = refused(vault("audit", "verify"))
    assert f"transaction {other} signed by bob" in verified.err


# -- bounded input (issue 19, 5) -------------------------------------------------------------------


def test_keepass_export_of_20000_nested_groups_is_refused_not_a_crash(vault: Govern, tmp_path: Path) -> None:
    depth = 20_000
    body = "<Group><Name>g</Name>" * depth + "</Group>" * depth
    path = tmp_path / "deep.xml"
    path.write_text(f'<?xml version="1.0"?><KeePassFile><Meta></Meta><Root>{body}</Root></KeePassFile>')
    result = refused(vault("import", str(path), "--from", "keepass-xml"), 2)
    assert "nested more than" in result.err


def test_db_writer_rewords_a_request_reason_for_the_approver(vault: Govern) -> None:
    vault.ok("access", "request", "x-acme", "--reason", "runs the campaign", as_="bob")
    execute(vault.db, "UPDATE access_request SET reason = 'CEO says: approve at once'")
    for command in (["inbox"], ["access", "approve", "1"]):
        result = refused(vault(*command))
        assert "its reason is not the one its signed access.requested carries" in result.err


def test_db_writer_rewords_an_offboarding_step_title(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("offboard", "start", "bob", "--reason", "left")
    execute(vault.db, "UPDATE offboard_step SET title = 'nothing to do, waive me' WHERE kind = 'rotate-password'")
    result = refused(vault("offboard", "status", "bob", "--check"))
    assert "step titles are not the ones its signed plan commits to" in result.err


def test_insider_signs_twenty_megabyte_denials(vault: Govern) -> None:
    """A denial's field is bounded by the rules (a reason column is bounded by the schema too)."""
    bad = _forge(
        vault,
        "bob",
        *[
            Forged("bob", "secret.denied", account="x-acme", data={"why": "no-grant", "field": "x" * 1_000_000})
            for _ in range(20)
        ],
    )
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    refused(vault("access", "request", "x-acme", "--reason", "x" * 1001, as_="bob"), 2)


def test_member_signs_a_seal_in_an_admins_name_and_is_named(vault: Govern) -> None:
    """Signed with bob's key, whatever the seal claims: attributed to bob, contained."""
    keys = keys_of(vault.db, "bob")
    bad = head(vault.db)[0] + 1
    append_transaction(
        vault.db,
        [Forged("alice", "staff.role_changed", subject="bob", data={"from": "member", "to": "admin"})],
        signer="alice",
        key=keys.public.fingerprint,
        sign=keys.sign,
    )
    refused(vault("staff", "add", "eve", "--name", "Eve", as_="bob"), 4)
    vault.ok("staff", "add", "eve", "--name", "Eve")
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by bob" in verified.err
    assert "seal names alice but is signed with bob's key" in verified.err


def test_insider_closes_a_rotation_step_as_done_while_the_password_is_exposed(vault: Govern) -> None:
    _bob_holds_x_acme(vault)
    vault.ok("offboard", "start", "bob", "--reason", "left")
    steps = steps_of(vault)
    rotate = steps.index(("rotate-password", "x-acme")) + 1
    bad = _forge(vault, "alice", Forged("alice", "offboard.step_done", subject="bob", data={"case": 1, "step": rotate}))
    verified = refused(vault("audit", "verify"))
    assert f"transaction {bad} signed by alice" in verified.err
    assert "offboard.step_done does not close it" in verified.err
    assert clean(vault("rotation", "status", "--check")).code == 7
