"""Daily team use (issue 11, part A): withdrawing requests, who decides, extending grants,
exposure of current holders, the inbox, offboarding ergonomics."""

import io
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, Govern
from forge import Forged, append_transaction, fingerprint_of, keys_of
from sqlhelp import sql

from govern.timeutil import parse_time


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


# -- grants that renew -------------------------------------------------------------------------


def signer_of(db: str, handle: str) -> dict[str, Any]:
    keys = keys_of(db, handle)
    return {"signer": handle, "key": keys.public.fingerprint, "sign": keys.sign}


def test_extend_renews_a_live_grant_without_ending_it(vault: Govern) -> None:
    grant = vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "2d", "--json").json()
    vault.later(timedelta(days=1))
    extended = vault.ok("access", "extend", "x-acme", "bob", "--for", "7d", "--json").json()
    assert (extended["id"], extended["status"], extended["previous_until"]) == (grant["id"], "live", grant["until"])
    assert extended["until"] > grant["until"]
    vault.later(timedelta(days=3))  # past the first end, inside the extension
    assert vault.ok("secret", "show", "x-acme", as_="bob").out.strip() == CANARY_PASSWORD
    assert vault.ok("rotation", "status", "--json").json()[0]["exposed_to"] == [], "an extension exposes nothing"
    assert [g["status"] for g in vault.ok("access", "list", "--json").json()] == ["live"]
    after_first_end = (parse_time(grant["until"]) + timedelta(hours=1)).isoformat()
    had = vault.ok("audit", "who-had", "x-acme", "--at", after_first_end, "--json").json()
    assert [p["handle"] for p in had["people"] if p["via"] == "grant"] == ["bob"], "who-had replays the extension"
    (event,) = vault.ok("audit", "log", "--action", "access.extended", "--json").json()
    assert (event["actor"], event["subject"]) == ("alice", "bob")
    until = vault.ok("access", "extend", "x-acme", "bob", "--until", "2099-01-01T00:00:00Z", "--json").json()
    assert until["until"] == "2099-01-01T00:00:00Z"


def test_extend_rules(vault: Govern) -> None:
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "2d")
    assert vault("access", "extend", "x-acme", "bob").code == 2, "--for or --until is needed"
    assert vault("access", "extend", "x-acme", "bob", "--for", "1d", "--until", "2099-01-01").code == 2
    assert vault("access", "extend", "x-acme", "bob", "--for", "1d").code == 2, "an extension ends later"
    assert vault("access", "extend", "x-acme", "dave", "--for", "9d").code == 3, "dave holds nothing"
    refused = vault("access", "extend", "x-acme", "bob", "--for", "9d", as_="carol")
    assert refused.code == 4
    assert "does not hold it" in refused.err, "an owner who does not hold the account cannot extend"
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner", "--for", "30d")
    assert vault("access", "extend", "x-acme", "carol", "--for", "90d", as_="carol").code == 4, "not one's own"
    assert vault("access", "extend", "x-acme", "bob", "--for", "9d", as_="dave").code == 4, "not a stranger"
    vault.ok("access", "extend", "x-acme", "bob", "--for", "9d", as_="carol")
    vault.ok("access", "grant", "x-acme", "dave", "--reason", "forever")
    assert vault("access", "extend", "x-acme", "dave", "--for", "9d").code == 8, "an open-ended grant has no end"
    vault.later(timedelta(days=10))
    assert vault("access", "extend", "x-acme", "bob", "--for", "9d").code == 3, "an ended grant is not extended"


@pytest.mark.tampers
def test_forged_extension_by_a_non_owner_is_refused(vault: Govern) -> None:
    vault.enrol("carol")
    grant = vault.ok("access", "grant", "x-acme", "carol", "--reason", "r", "--for", "1d", "--json").json()
    append_transaction(
        vault.db,
        [
            Forged(
                actor="bob",
                action="access.extended",
                account="x-acme",
                subject="carol",
                data={"grant": grant["id"], "until": "2099-01-01T00:00:00.000000Z"},
            )
        ],
        **signer_of(vault.db, "bob"),
    )
    sql(vault.db, "UPDATE access_grant SET ends_at = '2099-01-01 00:00:00.000000' WHERE id = :g", g=grant["id"])
    verified = vault("audit", "verify")
    assert verified.code == 6
    assert "extended a grant" in verified.err


def test_short_grant_is_granted_with_a_warning(vault: Govern) -> None:
    granted = vault.ok("access", "grant", "x-acme", "bob", "--reason", "quick fix", "--for", "1m", "--json")
    until = granted.json()["until"]
    assert f"warning: this grant lasts only 1m: it ends at {until}" in granted.err
    long = vault.ok("access", "revoke", "x-acme", "bob", "--reason", "done")
    assert "warning" not in long.err
    vault.enrol("carol")
    asked = vault.ok("access", "request", "x-acme", "--reason", "r", "--for", "30m", as_="carol")
    assert "lasts only 30m" in asked.err
    approved = vault.ok("access", "approve", asked.out.strip())
    assert "lasts under an hour: it ends at" in approved.err
    assert "warning" not in vault.ok("access", "grant", "x-acme", "bob", "--reason", "r", "--for", "1h").err


def test_holder_who_may_read_a_version_again_is_not_exposed(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "1d")
    vault.later(timedelta(days=2))
    vault.ok("sweep")
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert [e["handle"] for e in status["exposed_to"]] == ["bob"], "the grant ended: bob may have copied it"
    granted = vault.ok("access", "grant", "x-acme", "bob", "--reason", "back for the next launch")
    assert "warning" not in granted.err
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert (status["state"], status["exposed_to"]) == ("ok", []), "a current holder may read it: no exposure"
    (event,) = [e for e in vault.ok("audit", "log", "--action", "access.granted", "--json").json()
                if "exposures_cleared" in e["data"]]  # fmt: skip
    assert event["data"]["exposures_cleared"] == [[1, "password"]]
    assert vault.ok("rotation", "status", "--check").code == 0
    # Losing it again exposes the same value again: revocation still forces a rotation.
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert [e["handle"] for e in status["exposed_to"]] == ["bob"]
    assert vault("rotation", "status", "--check").code == 7


def test_regranted_person_offboarded_later_still_forces_rotation(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "1d")
    vault.later(timedelta(days=2))
    vault.ok("sweep")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "again")
    assert vault.ok("rotation", "status", "--json").json()[0]["exposed_to"] == []
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert status["state"] == "exposed"
    assert [e["handle"] for e in status["exposed_to"]] == ["bob"]
    steps = vault.ok("offboard", "status", "bob", "--json").json()["steps"]
    assert any(s["account"] == "x-acme" and s["status"] == "open" and s["kind"] != "revoke" for s in steps)
    assert vault("rotation", "status", "--check").code == 7


@pytest.mark.tampers
@pytest.mark.parametrize("holder", ["bob", "carol"])
def test_forged_grant_clearing_an_exposure_it_does_not_make_readable(vault: Govern, holder: str) -> None:
    """An admin's grant may clear only its grantee's exposures to versions now wrapped to them:
    not someone else's (carol), not without the wrap (bob granted with no data key)."""
    vault.enrol("carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "r")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "gone")
    append_transaction(
        vault.db,
        [Forged(actor="alice", action="access.granted", account="x-acme", subject=holder, reason="r",
                data={"grant": 900, "until": None, "data_keys": [], "request": None,
                      "recipient": fingerprint_of(vault.db, holder), "exposures_cleared": [[1, "password"]]})],
        **signer_of(vault.db, "alice"),
    )  # fmt: skip
    verified = vault("audit", "verify")
    assert verified.code == 6
    assert "does not make readable" in verified.err


# -- offboarding ergonomics --------------------------------------------------------------------


def _steps(g: Govern, handle: str = "bob", *extra: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = g.ok("offboard", "status", handle, *extra, "--json").json()["steps"]
    return result


@pytest.fixture
def leaving(vault: Govern) -> Govern:
    """bob held x-acme, owned by carol (who does not hold it), and is offboarded; ig-acme is alice's."""
    vault.enrol("carol")
    vault.enrol("dave")
    vault.account("ig-acme", password="ig-password-1234")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    vault.ok("access", "grant", "ig-acme", "bob", "--reason", "team")
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    return vault


def test_owner_closes_the_manual_steps_of_their_account_in_one_command(leaving: Govern) -> None:
    g = leaving
    manual_x = [s["step"] for s in _steps(g) if s["kind"] == "manual" and s["account"] == "x-acme"]
    manual_ig = [s["step"] for s in _steps(g) if s["kind"] == "manual" and s["account"] == "ig-acme"]
    rotate_x = next(s["step"] for s in _steps(g) if s["kind"] == "rotate-password" and s["account"] == "x-acme")
    assert len(manual_x) == 3
    # Not another account's steps, not a rotation step, no waiving; and nothing closes when one is refused.
    mixed = g("offboard", "done", "bob", str(manual_x[0]), str(manual_ig[0]), as_="carol")
    assert mixed.code == 4
    assert "owner of the step's account" in mixed.err
    assert g("offboard", "done", "bob", str(rotate_x), as_="carol").code == 4
    assert g("offboard", "done", "bob", str(manual_x[0]), "--waive", "--reason", "r", as_="carol").code == 4
    assert g("offboard", "done", "bob", *map(str, manual_x), as_="dave").code == 4, "not the owner"
    assert all(s["status"] == "open" for s in _steps(g) if s["step"] in manual_x)
    assert g("offboard", "done", "bob", str(manual_x[0]), str(manual_x[0]), as_="carol").code == 2
    closed = g.ok("offboard", "done", "bob", *map(str, manual_x), "--note", "removed at X", as_="carol")
    assert f"step(s) {', '.join(map(str, manual_x))} closed" in closed.err
    by_number = {s["step"]: s for s in _steps(g)}
    assert {(by_number[n]["status"], by_number[n]["closed_by"]) for n in manual_x} == {("done", "carol")}
    events = g.ok("audit", "log", "--action", "offboard.step_closed", "--json").json()
    assert len({e["tx"] for e in events if e["actor"] == "carol"}) == 1, "one transaction, one passphrase"
    # The admin closes the rest; rotations close theirs; the case completes.
    g.ok("offboard", "done", "bob", *map(str, manual_ig))
    for slug in ("x-acme", "ig-acme"):
        g.ok("rotation", "start", slug)
        g.ok("rotation", "confirm", slug)
    assert g.ok("offboard", "status", "bob", "--json").json()["status"] == "closed"


def test_owner_closing_the_last_step_completes_the_case(leaving: Govern) -> None:
    g = leaving
    for slug in ("x-acme", "ig-acme"):
        g.ok("rotation", "start", slug)
        g.ok("rotation", "confirm", slug)
    g.ok("offboard", "done", "bob", *[str(s["step"]) for s in _steps(g) if s["account"] == "ig-acme"
                                      and s["status"] == "open"])  # fmt: skip
    last = [str(s["step"]) for s in _steps(g) if s["status"] == "open"]
    done = g.ok("offboard", "done", "bob", *last, "--json", as_="carol").json()
    assert (done["status"], done["open_steps"]) == ("closed", 0)
    (completed,) = g.ok("audit", "log", "--action", "offboard.completed", "--json").json()
    assert completed["actor"] == "carol"


@pytest.mark.tampers
def test_forged_step_closure_by_a_non_owner_is_refused(leaving: Govern) -> None:
    g = leaving
    case = g.ok("offboard", "status", "bob", "--json").json()["case"]
    manual_x = next(s["step"] for s in _steps(g) if s["kind"] == "manual" and s["account"] == "x-acme")
    append_transaction(
        g.db,
        [Forged(actor="dave", action="offboard.step_closed", subject="bob",
                data={"case": case, "step": manual_x, "kind": "manual", "note": None})],
        **signer_of(g.db, "dave"),
    )  # fmt: skip
    verified = g("audit", "verify")
    assert verified.code == 6
    assert "did not rotate" in verified.err


@pytest.mark.tampers
def test_forged_rotation_step_closed_by_the_owner_is_refused(leaving: Govern) -> None:
    """An owner closes manual steps only: a rotation step closed without the rotation is refused."""
    g = leaving
    case = g.ok("offboard", "status", "bob", "--json").json()["case"]
    rotate_x = next(s["step"] for s in _steps(g) if s["kind"] == "rotate-password" and s["account"] == "x-acme")
    append_transaction(
        g.db,
        [Forged(actor="carol", action="offboard.step_closed", subject="bob",
                data={"case": case, "step": rotate_x, "kind": "manual", "note": None})],
        **signer_of(g.db, "carol"),
    )  # fmt: skip
    verified = g("audit", "verify")
    assert verified.code == 6
    assert "did not rotate" in verified.err


def test_status_open_and_titles_fit_80_columns(leaving: Govern) -> None:
    g = leaving
    everything = _steps(g)
    assert max(len(s["title"]) for s in everything) <= 40
    first_manual = next(s["step"] for s in everything if s["kind"] == "manual")
    g.ok("offboard", "done", "bob", str(first_manual))
    still = _steps(g, "bob", "--open")
    assert [s["step"] for s in still] == [s["step"] for s in everything if s["status"] == "open" and
                                          s["step"] != first_manual]  # fmt: skip
    text = g.ok("offboard", "status", "bob", "--open").out
    table = text[text.index("step\taccount") :].splitlines()
    assert table[0] == "step\taccount\tstatus\ttitle"
    assert all(len(line.expandtabs(2)) <= 80 for line in table)
    assert g.ok("offboard", "status", "--open", "--json").json()[0]["handle"] == "bob"
    for slug in ("x-acme", "ig-acme"):
        g.ok("rotation", "start", slug)
        g.ok("rotation", "confirm", slug)
    g.ok("offboard", "done", "bob", *[str(s["step"]) for s in _steps(g, "bob", "--open")])
    assert g.ok("offboard", "status", "--open", "--json").json() == [], "no open case left"


def test_platform_step_titles_are_short() -> None:
    from govern.platforms import CATALOGUE
    from offboarding.plan import FOLLOW_UP, TITLE_MAX

    titles = [t for rules in CATALOGUE.values() for t in rules.manual_steps] + [t for _k, t in FOLLOW_UP.values()]
    assert max(len(t) for t in titles) <= TITLE_MAX


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_open_steps_render_one_line_each_on_an_80_column_terminal(
    leaving: Govern, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govern.cli.common import emit_table
    from govern.cli.offboard import OPEN_STEP_COLUMNS, _shown

    steps = _steps(leaving, "bob", "--open")
    screen = _Terminal()
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys, "stdout", screen)
    emit_table(_shown(steps), OPEN_STEP_COLUMNS, as_json=False)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue()).rstrip("\n").splitlines()
    assert len(lines) == len(steps) + 1, "no title wraps onto a second line"
    assert all(len(line) <= 80 for line in lines)


# -- the inbox ---------------------------------------------------------------------------------


def _inbox(g: Govern, who: str) -> dict[str, Any]:
    result: dict[str, Any] = g.ok("inbox", "--json", as_=who, passphrase=None).json()
    return result


def _kinds(g: Govern, who: str) -> list[tuple[str, str | None]]:
    return [(i["kind"], i["account"]) for i in _inbox(g, who)["items"]]


def test_inbox_shows_what_waits_for_each_person(vault: Govern, tmp_path: Path) -> None:
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    asked = vault.ok("access", "request", "x-acme", "--reason", "cover", as_="bob").out.strip()
    vault.ok("access", "grant", "x-acme", "dave", "--reason", "launch", "--for", "3d")
    assert _kinds(vault, "bob") == [("my-request", "x-acme")]
    carol = _inbox(vault, "carol")
    assert [(i["kind"], i["severity"]) for i in carol["items"]] == [
        ("grant-ending", "due"),
        ("decide-request", "waiting"),
    ]
    assert carol["items"][1]["id"] == int(asked)
    assert "govern access extend x-acme dave" in carol["items"][0]["what"]
    assert _kinds(vault, "dave") == [("grant-ending", "x-acme")]
    assert "your grant of x-acme ends at" in _inbox(vault, "dave")["items"][0]["what"]
    # alice is an admin, but carol holds x-acme and decides its requests; alice may extend grants.
    assert _kinds(vault, "alice") == [("grant-ending", "x-acme")]
    policy = tmp_path / "policy.md"
    policy.write_text("Only approved staff post as Acme.\n", encoding="utf-8")
    vault.ok("policy", "publish", str(policy), "--version", "2026-11")
    assert ("policy-ack", None) in _kinds(vault, "bob")
    vault.ok("policy", "ack", as_="bob")
    assert ("policy-ack", None) not in _kinds(vault, "bob")
    assert vault.ok("inbox", "--check", as_="carol", passphrase=None).code == 0, "nothing overdue yet"
    # dave's grant ends: x-acme is exposed to him, which is overdue for carol (owner) and alice.
    vault.later(timedelta(days=4))
    vault.ok("sweep")
    exposed = [i for i in _inbox(vault, "carol")["items"] if i["kind"] == "exposed"]
    assert [(i["severity"], i["account"]) for i in exposed] == [("overdue", "x-acme")]
    assert "dave (password)" in exposed[0]["what"]
    late = vault("inbox", "--check", as_="carol", passphrase=None)
    assert late.code == 7
    assert "1 overdue item(s) in the inbox of carol" in late.err
    assert vault("inbox", "--check", as_="bob", passphrase=None).code == 0, "bob neither owns nor holds x-acme"
    table = vault.ok("inbox", as_="carol", passphrase=None).out
    assert table.splitlines()[0] == "severity\tkind\taccount\twhat"
    vault.ok("policy", "ack", as_="dave")
    quiet = vault.ok("inbox", as_="dave", passphrase=None)
    assert "nothing waits for dave" in quiet.err


def test_inbox_lists_offboarding_steps_for_their_owner(leaving: Govern) -> None:
    g = leaving
    carol = [i for i in _inbox(g, "carol")["items"] if i["kind"] == "offboard-step"]
    assert {i["account"] for i in carol} == {"x-acme"}
    assert all("close it by" in i["what"] for i in carol), "carol closes the manual steps of x-acme"
    alice = [i for i in _inbox(g, "alice")["items"] if i["kind"] == "offboard-step"]
    assert {i["account"] for i in alice} == {"x-acme", "ig-acme"}
    assert any("do it by" in i["what"] for i in alice), "an admin rotates"
    assert [i for i in _inbox(g, "dave")["items"] if i["kind"] == "offboard-step"] == []
    g.later(timedelta(days=2))
    assert g("inbox", "--check", as_="carol", passphrase=None).code == 7, "steps past their deadline"


@pytest.mark.tampers
def test_inbox_refuses_rows_the_log_does_not_explain(vault: Govern) -> None:
    request = vault.ok("access", "request", "x-acme", "--reason", "r", "--json", as_="bob").json()["id"]
    sql(vault.db, "UPDATE access_request SET status = 'denied' WHERE id = :r", r=request)
    refused = vault("inbox", as_="bob", passphrase=None)
    assert refused.code == 6
    assert "does not explain" in refused.err
