"""``audit who-had ACCOUNT --from --to``: every holding overlapping a period, how it started and
ended, approvers, and the reveals and TOTP codes in the period, from the verified log."""

from datetime import timedelta

import pytest
from conftest import CANARY_URI, Govern
from sqlhelp import sql


def _ts(g: Govern, action: str) -> str:
    return str(g.ok("audit", "log", "--action", action, "--json").json()[-1]["ts"])


def test_who_had_over_a_period(vault: Govern) -> None:
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    start = _ts(vault, "secret.set")
    request = vault.ok("access", "request", "x-acme", "--reason", "campaign", "--json", as_="bob").json()["id"]
    vault.ok("access", "approve", str(request))
    vault.ok("secret", "show", "x-acme", as_="bob")
    vault.ok("totp", "x-acme", as_="bob")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "cover", "--for", "1h")
    vault.ok("access", "record", "x-acme", "dave", "--reason", "was told on the phone")
    assert vault("secret", "show", "x-acme", as_="dave").code == 4
    vault.later(timedelta(hours=2))
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "campaign over")
    vault.ok("rotation", "start", "x-acme")
    vault.ok("rotation", "confirm", "x-acme")
    vault.later(timedelta(hours=1))
    vault.ok("offboard", "start", "carol", "--reason", "left")
    period = vault.ok("audit", "who-had", "x-acme", "--from", start, "--to", "now", "--json").json()
    rows = {(p["handle"], p["via"]): p for p in period["people"]}
    assert set(rows) == {("alice", "admin role"), ("bob", "grant"), ("carol", "grant"), ("dave", "out of band")}
    bob = rows["bob", "grant"]
    assert (bob["started"], bob["approvers"], bob["reason"]) == (
        f"approval of request {request}",
        ["alice"],
        "campaign",
    )
    assert (bob["ended"], bob["ended_by"], bob["end_reason"]) == ("revoked", "alice", "campaign over")
    assert (bob["reveals"], bob["totp_codes"], bob["still_holds"]) == (1, 1, False)
    carol = rows["carol", "grant"]
    assert (carol["started"], carol["ended"], carol["reveals"]) == ("grant", "expired", 0)
    assert carol["until"] > carol["from"]
    dave = rows["dave", "out of band"]
    assert (dave["started"], dave["ended"], dave["reason"]) == (
        "recorded out of band",
        "rotated",
        "was told on the phone",
    )
    alice = rows["alice", "admin role"]
    assert (alice["still_holds"], alice["until"]) == (True, None)
    assert period["denied"] == {"dave": 1}
    # A period before bob's reveal counts none of them; a period after everything holds only alice.
    before = vault.ok("audit", "who-had", "x-acme", "--from", "2000-01-01", "--to", start, "--json").json()
    assert {p["handle"] for p in before["people"]} <= {"alice"}
    table = vault.ok("audit", "who-had", "x-acme", "--from", start, "--to", "now").out
    assert "still holds" in table
    assert f"approval of request {request}" in table


def test_who_had_period_is_only_from_the_verified_log(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    sql(vault.db, "UPDATE audit_event SET reason = 'forged' WHERE action = 'access.granted'")
    result = vault("audit", "who-had", "x-acme", "--from", "2000-01-01", "--to", "now")
    assert result.code == 6
    sql(vault.db, "UPDATE audit_event SET reason = 'runs X' WHERE action = 'access.granted'")


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2030-01-01"],
        ["--at", "now", "--from", "2030-01-01", "--to", "2031-01-01"],
        ["--from", "2031-01-01", "--to", "2030-01-01"],
        [],
    ],
)
def test_who_had_needs_an_instant_or_a_whole_period(vault: Govern, args: list[str]) -> None:
    assert vault("audit", "who-had", "x-acme", *args).code == 2


def test_members_ask_about_a_period_only_of_what_they_hold(vault: Govern) -> None:
    assert vault("audit", "who-had", "x-acme", "--from", "2000-01-01", "--to", "now", as_="bob").code == 4
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("audit", "who-had", "x-acme", "--from", "2000-01-01", "--to", "now", as_="bob")
