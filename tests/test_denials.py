"""Denied attempts are events: a refused reveal or TOTP code by an authenticated person is
committed as ``secret.denied`` although the command fails (exit 4), and the log's rules accept
such an event only as someone's own attempt."""

import json

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, Govern
from forge import Forged, append_transaction, fingerprint_of, keys_of


def denials(g: Govern) -> list[dict[str, object]]:
    result: list[dict[str, object]] = g.ok("audit", "log", "--action", "secret.denied", "--json").json()
    return result


def test_a_reveal_without_a_grant_is_refused_and_logged(vault: Govern) -> None:
    for _ in range(3):
        refused = vault("secret", "show", "x-acme", as_="bob")
        assert refused.code == 4
        assert CANARY_PASSWORD not in refused.out + refused.err
    logged = denials(vault)
    assert [(e["actor"], e["account"], e["data"]) for e in logged] == [
        ("bob", "x-acme", {"field": "password", "why": "no-grant"})
    ] * 3
    assert not vault.ok("audit", "log", "--action", "secret.revealed", "--staff", "bob", "--json").json()


def test_a_totp_code_without_a_grant_and_an_auditors_attempt_are_logged(vault: Govern) -> None:
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    assert vault("totp", "x-acme", as_="bob").code == 4
    vault.enrol("aud", role="auditor")
    assert vault("secret", "show", "x-acme", as_="aud").code == 4
    assert [(e["actor"], e["data"]) for e in denials(vault)] == [
        ("bob", {"field": "totp-code", "why": "no-grant"}),
        ("aud", {"field": "password", "why": "auditor"}),
    ]


def test_a_member_asking_for_an_earlier_version_is_logged(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    assert vault("secret", "show", "x-acme", "--version", "1", as_="bob").code == 4
    assert [e["data"] for e in denials(vault)] == [{"field": "password", "why": "earlier-version"}]
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD


def test_an_unknown_person_or_a_wrong_passphrase_leaves_no_denial(vault: Govern) -> None:
    assert vault("secret", "show", "x-acme", as_="mallory").code == 5
    assert vault("secret", "show", "x-acme", as_="bob", passphrase="wrong passphrase here").code == 5
    assert not denials(vault)


@pytest.mark.tampers
@pytest.mark.parametrize(
    ("subject", "data"),
    [("alice", {"field": "password", "why": "no-grant"}), (None, {"field": "password", "why": "made-up"})],
)
def test_forged_denial_for_someone_else_or_with_a_made_up_reason_is_caught(
    vault: Govern, subject: str | None, data: dict[str, str]
) -> None:
    bob = keys_of(vault.db, "bob")
    [forged] = append_transaction(
        vault.db,
        [Forged(actor="bob", action="secret.denied", account="x-acme", subject=subject, data=data)],
        signer="bob",
        key=fingerprint_of(vault.db, "bob"),
        sign=bob.sign,
    )
    verified = vault("audit", "verify")
    assert verified.code == 6
    assert f"event {forged.seq}" in verified.err


def test_a_denial_is_an_ocsf_failure(vault: Govern) -> None:
    assert vault("secret", "show", "x-acme", as_="bob").code == 4
    lines = vault.ok("audit", "export", "--format", "ocsf").out.splitlines()
    (denied,) = [e for e in map(json.loads, lines) if e["unmapped"]["govern_action"] == "secret.denied"]
    assert (denied["class_uid"], denied["activity_id"], denied["activity_name"]) == (3004, 99, "secret.denied")
    assert (denied["status_id"], denied["status"], denied["status_detail"]) == (2, "Failure", "no-grant")
    assert denied["actor"]["user"]["uid"] == "bob"
    assert denied["entity"]["uid"] == "x-acme"
