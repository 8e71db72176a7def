"""Access governance: requests and approvals, holder caps, expiry, policy, reviews."""

from datetime import timedelta
from pathlib import Path

from conftest import CANARY_PASSWORD, Govern
from sqlhelp import count, sql


def events(g: Govern, action: str) -> list[dict[str, object]]:
    result: list[dict[str, object]] = g.ok("audit", "log", "--action", action, "--json").json()
    return result


def test_request_approve_and_use(vault: Govern) -> None:
    created = vault.ok("access", "request", "x-acme", "--reason", "cover Bob's holiday", "--for", "7d", as_="bob")
    request_id = created.out.strip()
    assert request_id.isdigit()
    assert vault("secret", "show", "x-acme", as_="bob").code == 4, "a pending request gives no access"
    pending = vault.ok("access", "requests", "--pending", "--json").json()
    assert [(r["id"], r["handle"], r["for"]) for r in pending] == [(int(request_id), "bob", "1w")]
    grant = vault.ok("access", "approve", request_id, "--json").json()
    assert (grant["handle"], grant["request"], grant["reason"]) == ("bob", int(request_id), "cover Bob's holiday")
    assert grant["until"] is not None
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD
    assert vault("access", "approve", request_id).code == 8
    assert vault("access", "deny", request_id, "--reason", "late").code == 8
    assert vault.ok("access", "requests", "--pending", "--json").json() == []
    (requested,) = events(vault, "access.requested")
    assert (requested["actor"], requested["account"], requested["reason"]) == ("bob", "x-acme", "cover Bob's holiday")
    (approved,) = events(vault, "access.approved")
    assert (approved["actor"], approved["subject"]) == ("alice", "bob")


def test_dual_control(vault: Govern) -> None:
    vault.enrol("carol")
    vault.ok("account", "set", "x-acme", "--owner", "bob")
    own = vault.ok("access", "request", "x-acme", "--reason", "mine", as_="bob").out.strip()
    result = vault("access", "approve", own, as_="bob")
    assert result.code == 4
    assert "own request" in result.err
    other = vault.ok("access", "request", "x-acme", "--reason", "help out", as_="carol").out.strip()
    no_key = vault("access", "approve", other, as_="bob")
    assert no_key.code == 4, "an owner who holds no key cannot wrap it to anyone"
    assert "an admin must decide" in no_key.err
    vault.ok("access", "approve", own)  # the admin approves bob
    vault.ok("access", "approve", other, as_="bob")  # now the owner holds a key and can approve carol
    assert vault.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    vault.enrol("dave")
    third = vault.ok("access", "request", "x-acme", "--reason", "x", as_="dave").out.strip()
    assert vault("access", "approve", third, as_="carol").code == 4, "a holder who is not the owner cannot approve"
    denied = vault.ok("access", "deny", third, "--reason", "not needed", "--json", as_="bob").json()
    assert (denied["status"], denied["decided_by"], denied["decision_reason"]) == ("denied", "bob", "not needed")


def test_request_rules(vault: Govern) -> None:
    vault.ok("access", "request", "x-acme", "--reason", "r", as_="bob")
    assert vault("access", "request", "x-acme", "--reason", "again", as_="bob").code == 8
    assert vault("access", "request", "x-acme", "--reason", "r").code == 8, "admins are custodians already"
    vault.enrol("aud", role="auditor")
    assert vault("access", "request", "x-acme", "--reason", "r", as_="aud").code == 4
    assert vault("access", "approve", "999").code == 3
    assert vault("access", "approve", "abc").code == 2
    assert vault("access", "request", "nope", "--reason", "r", as_="bob").code == 3


def test_holder_cap(vault: Govern) -> None:
    vault.ok("account", "set", "x-acme", "--max-holders", "1", "--owner", "bob")
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    before = count(vault.db, "access_grant")
    refused = vault("access", "grant", "x-acme", "carol", "--reason", "second")
    assert refused.code == 4
    assert "cap" in refused.err
    assert count(vault.db, "access_grant") == before
    request = vault.ok("access", "request", "x-acme", "--reason", "need it", as_="carol").out.strip()
    assert vault("access", "approve", request).code == 4
    assert vault("access", "approve", request, "--over-cap", "--reason", "x", as_="bob").code == 4, "admins only"
    assert vault("access", "approve", request, "--over-cap").code == 2, "the override needs a reason"
    grant = vault.ok("access", "approve", request, "--over-cap", "--reason", "launch week", "--json").json()
    assert grant["over_cap"] is True
    assert grant["over_cap_reason"] == "launch week"
    listed = {g["handle"]: g["over_cap"] for g in vault.ok("access", "list", "--json").json()}
    assert listed == {"bob": False, "carol": True}
    (override,) = events(vault, "access.over_cap")
    assert (override["subject"], override["reason"]) == ("carol", "launch week")
    vault.enrol("dave")
    direct = vault.ok("access", "grant", "x-acme", "dave", "--reason", "crisis cover", "--over-cap", "--json").json()
    assert direct["over_cap_reason"] == "crisis cover"


def test_expiry_is_processed_by_the_next_write(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "one hour", "--for", "1h")
    vault.later(timedelta(hours=1, seconds=1))
    swept = vault.ok("sweep", "--json").json()
    assert [(s["handle"], s["account"], s["exposed_versions"]) for s in swept] == [("bob", "x-acme", [1])]
    assert vault("secret", "show", "x-acme", as_="bob").code == 4, "past its end a grant gives no access"
    assert vault.ok("sweep", "--json").json() == [], "processed once"
    (expired,) = events(vault, "access.expired")
    assert expired["subject"] == "bob"
    assert vault.ok("secret", "history", "x-acme", "--json").json()[-1]["exposed_to"] == 1
    wraps = sql(
        vault.db,
        "SELECT COUNT(*) FROM key_wrap w JOIN person p ON p.id = w.person_id WHERE p.handle = 'bob'",
    )[0][0]
    assert wraps == 0


def test_any_write_processes_expiry(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "short", "--for", "1h")
    vault.later(timedelta(hours=2))
    vault.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    assert len(events(vault, "access.expired")) == 1


def test_auditors_are_never_granted(vault: Govern) -> None:
    vault.enrol("aud", role="auditor")
    result = vault("access", "grant", "x-acme", "aud", "--reason", "look")
    assert result.code == 4
    assert "auditor" in result.err


def test_policy_gate(vault: Govern, tmp_path: Path) -> None:
    policy = tmp_path / "policy.md"
    policy.write_text("# Social media policy\n\nOnly approved staff post as Acme.\n", encoding="utf-8")
    published = vault.ok("policy", "publish", str(policy), "--version", "2026-11", "--json").json()
    assert len(published["sha256"]) == 64
    assert vault("policy", "publish", str(policy), "--version", "2026-11").code == 8
    assert vault("policy", "publish", str(policy), "--version", "x", as_="bob").code == 4
    refused = vault("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert refused.code == 4
    assert "acknowledged" in refused.err
    assert vault("access", "request", "x-acme", "--reason", "r", as_="bob").code == 4
    status = vault.ok("policy", "status", "--json").json()
    assert [p["handle"] for p in status["pending"]] == ["alice", "bob"]
    assert vault.ok("policy", "show", as_="bob").out.startswith("# Social media policy")
    vault.ok("policy", "ack", as_="bob")
    assert vault("policy", "ack", as_="bob").code == 8
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    status = vault.ok("policy", "status", "--json").json()
    assert [p["handle"] for p in status["acknowledged"]] == ["bob"]
    policy.write_text("# Social media policy v2\n", encoding="utf-8")
    vault.ok("policy", "publish", str(policy), "--version", "2026-12")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "re-ack needed")
    assert vault("access", "grant", "x-acme", "bob", "--reason", "again").code == 4, "the current version counts"
    acked = vault.ok("policy", "ack", "--version", "2026-12", "--json", as_="bob").json()
    assert acked["current"] is True
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "again")
    assert vault("policy", "ack", "--version", "1999", as_="bob").code == 3
    (first, second) = events(vault, "policy.published")
    assert first["data"] != second["data"]


def test_access_review(vault: Govern) -> None:
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "bob")
    for who in ("bob", "carol", "dave"):
        vault.ok("access", "grant", "x-acme", who, "--reason", "team")
    review = vault.ok("review", "start", "--name", "Q4 2026", "--json").json()
    assert review["counts"] == {"pending": 3}
    assert vault("review", "start").code == 8
    assert vault("review", "certify", "x-acme", "bob", as_="bob").code == 4, "nobody certifies themselves"
    vault.ok("review", "certify", "x-acme", "carol", as_="bob")  # the owner certifies
    assert vault("review", "certify", "x-acme", "carol").code == 8
    assert vault("review", "certify", "x-acme", "dave", as_="carol").code == 4
    vault.ok("review", "revoke", "x-acme", "dave", "--reason", "left the social team")
    assert vault("secret", "show", "x-acme", as_="dave").code == 4, "review revocation is immediate"
    refused = vault("review", "close")
    assert refused.code == 8
    assert "undecided" in refused.err
    closed = vault.ok("review", "close", "--revoke-undecided", "--json").json()
    assert closed["counts"] == {"certified": 1, "revoked": 2}
    assert vault("secret", "show", "x-acme", as_="bob").code == 4
    assert vault.ok("secret", "show", "x-acme", as_="carol").out.strip() == CANARY_PASSWORD
    evidence = vault.ok("review", "list", "--json").json()
    decisions = {i["handle"]: (i["decision"], i["decided_by"]) for i in evidence[0]["items"]}
    assert decisions == {"bob": ("revoked", "alice"), "carol": ("certified", "bob"), "dave": ("revoked", "alice")}
    actions = [e["action"] for e in events(vault, "review.")]
    assert actions == ["review.started", "review.certified", "review.revoked", "review.revoked", "review.closed"]
    vault.ok("review", "start")
    assert vault.ok("review", "list", "--json").json()[1]["counts"] == {"pending": 1}


def test_review_items_whose_grant_ended_close_as_ended(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    vault.ok("review", "start")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    closed = vault.ok("review", "close", "--json").json()
    assert closed["counts"] == {"ended": 1}
