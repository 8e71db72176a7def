"""Daily team use (issue 11, part A): withdrawing requests, who decides, extending grants,
exposure of current holders, the inbox, offboarding ergonomics."""

from conftest import CANARY_PASSWORD, Govern


def test_withdraw_own_pending_request(vault: Govern) -> None:
    vault.enrol("carol")
    request = vault.ok("access", "request", "x-acme", "--reason", "cover", as_="bob").out.strip()
    assert vault("access", "withdraw", request, as_="carol").code == 4, "only the requester withdraws"
    assert vault("access", "withdraw", request).code == 4, "not even an admin withdraws someone's request"
    withdrawn = vault.ok("access", "withdraw", request, "--json", as_="bob").json()
    assert (withdrawn["status"], withdrawn["decided_by"]) == ("withdrawn", "bob")
    assert vault("access", "withdraw", request, as_="bob").code == 8, "only while pending"
    assert vault("access", "approve", request).code == 8, "a withdrawn request cannot be approved"
    assert vault("access", "withdraw", "999", as_="bob").code == 3
    (event,) = vault.ok("audit", "log", "--action", "access.withdrawn", "--json").json()
    assert (event["actor"], event["subject"], event["account"]) == ("bob", "bob", "x-acme")
    # The requester can ask again once the first is withdrawn.
    vault.ok("access", "request", "x-acme", "--reason", "again", as_="bob")


def test_request_names_who_decides(vault: Govern) -> None:
    vault.enrol("carol")
    vault.enrol("dave", role="admin")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    asked = vault.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    # carol owns x-acme but holds no grant of it: she cannot wrap its key to bob.
    assert "an admin (alice, dave) decides it" in asked.err
    (row,) = vault.ok("access", "requests", "--pending", "--json").json()
    assert row["deciders"] == ["alice", "dave"]
    refused = vault("access", "approve", asked.out.strip(), as_="carol")
    assert refused.code == 4
    assert "an admin must decide" in refused.err
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    (row,) = vault.ok("access", "requests", "--pending", "--json").json()
    assert row["deciders"] == ["carol"], "an owner who holds the account decides"
    vault.ok("access", "withdraw", asked.out.strip(), as_="bob")
    again = vault.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    assert "carol (the owner of x-acme) decides it" in again.err
    assert vault.ok("access", "requests", "--json").json()[0]["deciders"] == [], "a decided request waits for nobody"
    vault.ok("access", "approve", again.out.strip(), as_="carol")
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD
