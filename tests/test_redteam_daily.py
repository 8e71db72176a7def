"""Red-team round 3: the features of issues 11 to 13 attacked by a database writer with no
passphrase, by an enrolled member who knows only their own, and by whoever hands an auditor
an evidence pack.

Each test plays one attack and asserts that it is *defended*: a test that fails here is an
attack that works. The tools are those of ``forge.py`` and ``test_redteam.py``.
"""

import base64
import hashlib
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, Govern
from forge import Forged, append_transaction, fingerprint_of, keys_of, person_id, seq_of
from sqlhelp import sql
from test_notify import Hook, Mailbox, _notify, notified, smtp_server, webhook_server  # noqa: F401
from test_redteam import append_raw, clean, refused, signer_of

from govern.services.evidence import _SIGNED, MEMBERS, build_zip

pytestmark = pytest.mark.tampers

NEW_PASSPHRASE = "a-new-and-long-passphrase-for-bob-42"


def _steps(g: Govern, handle: str = "bob") -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = g.ok("offboard", "status", handle, "--json").json()["steps"]
    return result


def _case(g: Govern, handle: str = "bob") -> int:
    return int(g.ok("offboard", "status", handle, "--json").json()["case"])


def _step(g: Govern, kind: str, account: str) -> int:
    return next(s["step"] for s in _steps(g) if s["kind"] == kind and s["account"] == account)


def _account_id(g: Govern, slug: str) -> int:
    return int(sql(g.db, "SELECT id FROM account WHERE slug = :s", s=slug)[0][0])  # type: ignore[call-overload]


def _set_step(g: Govern, number: int, column: str, value: Any) -> None:
    sql(
        g.db,
        f"UPDATE offboard_step SET {column} = :v WHERE case_id = :c AND number = :n",  # noqa: S608 (a literal column)
        v=value,
        c=_case(g),
        n=number,
    )


@pytest.fixture
def leaving(vault: Govern) -> Govern:
    """bob held x-acme (owned by carol, who does not hold it) and ig-acme, and is being offboarded."""
    vault.enrol("carol")
    vault.account("ig-acme", password="ig-password-1234")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    vault.ok("access", "grant", "ig-acme", "bob", "--reason", "team")
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    return vault


# -- offboarding steps: the rows a command reads to decide -----------------------------------------


def test_attack_db_writer_relabels_a_rotation_step_as_manual_for_an_admin_to_close(leaving: Govern) -> None:
    """The admin's ``offboard done`` reads the step's kind from its row: relabelled 'manual', a
    step that waits for x-acme's password to change would be closed by hand with no rotation,
    and bob's known password would stay in use with the case marked complete."""
    g = leaving
    rotate_x = _step(g, "rotate-password", "x-acme")
    _set_step(g, rotate_x, "kind", "manual")
    closing = refused(g("offboard", "done", "bob", str(rotate_x)))
    assert "signed plan" in closing.err
    sql(g.db, "UPDATE offboard_step SET kind = 'rotate-password' WHERE number = :n", n=rotate_x)
    assert g("offboard", "done", "bob", str(rotate_x)).code == 4, "a rotation step closes by rotating"
    assert next(s for s in _steps(g) if s["step"] == rotate_x)["status"] == "open"


def test_attack_db_writer_moves_a_manual_step_to_an_account_the_member_owns(leaving: Govern) -> None:
    """carol owns x-acme; ig-acme's manual steps are not hers to close. Pointing one of them at
    x-acme in the tables must not let her close it (nor poison the log with an event it refuses)."""
    g = leaving
    manual_ig = _step(g, "manual", "ig-acme")
    _set_step(g, manual_ig, "account_id", _account_id(g, "x-acme"))
    before = seq_of(g.db, "offboard.started")
    refused(g("offboard", "done", "bob", str(manual_ig), as_="carol"))
    assert sql(g.db, "SELECT COUNT(*) FROM audit_event WHERE seq > :s AND actor = 'carol'", s=before)[0][0] == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("kind", "cancel-requests"), ("automatic", False), ("account_id", "ig-acme")],
)
def test_attack_db_writer_relabels_an_automatic_step(leaving: Govern, column: str, value: Any) -> None:
    """``offboard start`` (and its resume after a crash) carries out each automatic step as its
    row says: a remove-access step relabelled, made manual, or pointed at another account would
    leave the leaver's wraps of x-acme in place. Every command refuses such rows."""
    g = leaving
    step = _step(g, "remove-access", "x-acme")
    _set_step(g, step, column, _account_id(g, "ig-acme") if value == "ig-acme" else value)
    verified = refused(g("audit", "verify"))
    assert f"offboarding step {_case(g)} {step}" in verified.err
    refused(g("access", "grant", "x-acme", "carol", "--reason", "cover"))


def test_attack_db_writer_points_a_rotation_step_at_another_accounts_exposure(leaving: Govern) -> None:
    """A follow-up step closes when the exposure it waits for clears: pointed at bob's exposure
    of ig-acme, an admin's cheap rotation of ig-acme would close x-acme's rotation step too."""
    g = leaving
    rotate_x = _step(g, "rotate-password", "x-acme")
    exposure_ig = sql(
        g.db,
        "SELECT id FROM credential_exposure WHERE account_id = :a AND person_id = :p AND kind = 'password'",
        a=_account_id(g, "ig-acme"),
        p=person_id(g.db, "bob"),
    )[0][0]
    _set_step(g, rotate_x, "exposure_id", exposure_ig)
    refused(g("rotation", "start", "ig-acme"))
    assert next(s for s in _steps(g) if s["step"] == rotate_x)["status"] == "open"


def test_attack_owner_signs_closing_a_rotation_step_as_manual(leaving: Govern) -> None:
    """carol owns x-acme: she signs ``offboard.step_closed`` of its rotation step, saying it is
    manual. The log knows the step's kind from the signed plan and wants her rotation."""
    g = leaving
    rotate_x = _step(g, "rotate-password", "x-acme")
    append_transaction(
        g.db,
        [Forged(actor="carol", action="offboard.step_closed", subject="bob",
                data={"case": _case(g), "step": rotate_x, "kind": "manual", "note": None})],
        **signer_of(g.db, "carol"),
    )  # fmt: skip
    verified = refused(g("audit", "verify"))
    assert "did not rotate their account" in verified.err


def test_attack_leaver_closes_their_own_cases_manual_steps(vault: Govern) -> None:
    """bob owns x-acme and leaves: the case's first step suspends him, so he cannot close the
    manual platform steps of his own departure (remove his login from X) himself."""
    vault.ok("account", "set", "x-acme", "--owner", "bob")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")
    bob = keys_of(vault.db, "bob")
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    manual = [s["step"] for s in _steps(vault) if s["kind"] == "manual"]
    assert manual
    assert vault("offboard", "done", "bob", str(manual[0]), as_="bob").code == 5
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="offboard.step_closed", subject="bob",
                data={"case": _case(vault), "step": manual[0], "kind": "manual", "note": None})],
        signer="bob", key=bob.public.fingerprint, sign=bob.sign,
    )  # fmt: skip
    assert "without being an active person" in refused(vault("audit", "verify")).err


# -- grants: extension, exposures -------------------------------------------------------------------


def _grant_id(g: Govern, handle: str) -> int:
    events = g.ok("audit", "log", "--action", "access.granted", "--json").json()
    return int(next(e["data"]["grant"] for e in reversed(events) if e["subject"] == handle))


@pytest.mark.parametrize("who", ["carol", "dave"])
def test_attack_member_extends_a_grant_they_may_not(vault: Govern, who: str) -> None:
    """carol owns and holds x-acme with a grant for a day: she extends her own grant; dave, a
    member who holds it but owns nothing, extends his. Neither is an admin or an owner deciding
    about someone else."""
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "carol", "--max-holders", "5")
    vault.ok("access", "grant", "x-acme", who, "--reason", "launch", "--for", "1d")
    if who == "dave":
        vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    grant = _grant_id(vault, who)
    assert clean(vault("access", "extend", "x-acme", who, "--for", "30d", as_=who)).code == 4
    append_transaction(
        vault.db,
        [Forged(actor=who, action="access.extended", account="x-acme", subject=who, reason="more",
                data={"grant": grant, "until": "2999-01-01T00:00:00Z"})],
        **signer_of(vault.db, who),
    )  # fmt: skip
    assert "not an admin or its owner holding it" in refused(vault("audit", "verify")).err


def test_attack_db_writer_extends_a_grant_in_the_tables(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "1d")
    sql(
        vault.db,
        "UPDATE access_grant SET ends_at = '2999-01-01 00:00:00' WHERE person_id = :p",
        p=person_id(vault.db, "bob"),
    )
    vault.later(timedelta(days=2))
    refused(vault("secret", "show", "x-acme", as_="bob"))


def test_attack_owner_grant_clears_a_leavers_exposure(vault: Govern) -> None:
    """An owner's grant (with an approved request) carries ``exposures_cleared`` for someone
    who knew the password and no longer holds it: the exposure is cleared only if the grant
    makes that version readable to its grantee, never for a third person."""
    vault.enrol("carol")
    vault.enrol("dave")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "r")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "gone")
    request = vault.ok("access", "request", "x-acme", "--reason", "cover", as_="dave").out.strip()
    vault.ok("access", "approve", request, as_="carol")
    before = seq_of(vault.db, "access.granted")
    assert before
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert [e["handle"] for e in status["exposed_to"]] == ["bob"], "dave's grant does not clear bob's exposure"
    append_transaction(
        vault.db,
        [
            Forged(actor="carol", action="access.granted", account="x-acme", subject="dave", reason="r",
                   data={"grant": 900, "until": None, "data_keys": [], "request": int(request),
                         "recipient": fingerprint_of(vault.db, "dave"), "exposures_cleared": [[1, "password"]]}),
        ],
        **signer_of(vault.db, "carol"),
    )  # fmt: skip
    refused(vault("audit", "verify"))


# -- refusals as events -----------------------------------------------------------------------------


def test_attack_member_records_a_denial_in_someone_elses_name(vault: Govern) -> None:
    vault.enrol("carol")
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="secret.denied", account="x-acme", subject="carol",
                data={"why": "no-grant", "field": "password"})],
        **signer_of(vault.db, "bob"),
    )  # fmt: skip
    assert "not their own attempt" in refused(vault("audit", "verify")).err


def test_attack_db_writer_spams_unsigned_denials(vault: Govern) -> None:
    vault.ok("audit", "verify")
    append_raw(vault.db, "bob", "secret.denied", json.dumps({"why": "no-grant", "field": "password"}), account="x-acme")
    refused(vault("audit", "verify"))
    refused(vault("audit", "who-had", "x-acme", "--at", "now"))


def test_attack_denial_with_hostile_field_text_is_shown_inert(vault: Govern, tmp_path: Path) -> None:
    """bob may record his own refusals, so he chooses the ``field`` text: terminal escapes and
    fake lines are shown inert wherever the event is shown."""
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="secret.denied", account="x-acme", subject="bob",
                data={"why": "no-grant", "field": "password\x1b]52;c;ZXZpbA==\x07\nOK: all clear"})],
        **signer_of(vault.db, "bob"),
    )  # fmt: skip
    shown = vault.ok("audit", "log")
    assert "\x1b" not in shown.out + shown.err
    assert "\x07" not in shown.out + shown.err
    for form in ("html", "csv", "json"):
        out = tmp_path / f"report.{form}"
        vault.ok("audit", "report", "--from", "2000-01-01", "--to", "now", "--format", form, "--out", str(out))
        assert "\x1b" not in out.read_text(encoding="utf-8")
        assert "\x07" not in out.read_text(encoding="utf-8")


# -- passphrase changes -----------------------------------------------------------------------------


def test_attack_db_writer_rolls_back_a_key_blob_after_passwd(vault: Govern) -> None:
    """bob changed his passphrase because the old one leaked; the attacker knows the old one
    and puts the old blob back: no client opens it any more."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    old = sql(vault.db, "SELECT sealed_private FROM person_key WHERE person_id = :p", p=person_id(vault.db, "bob"))
    vault.ok("passwd", "--new-passphrase-stdin", as_="bob", input=NEW_PASSPHRASE + "\n")
    sql(vault.db, "UPDATE person_key SET sealed_private = :b WHERE person_id = :p", b=old[0][0],
        p=person_id(vault.db, "bob"))  # fmt: skip
    shown = refused(vault("secret", "show", "x-acme", as_="bob"))
    assert CANARY_PASSWORD not in shown.out
    assert "last passphrase change sealed" in shown.err


def test_attack_replayed_passphrase_change_of_someone_else(vault: Govern) -> None:
    """A member signs a ``staff.passphrase_changed`` about alice, naming a blob digest of their choosing."""
    append_transaction(
        vault.db,
        [Forged(actor="bob", action="staff.passphrase_changed", subject="alice",
                data={"key": fingerprint_of(vault.db, "alice"), "kdf": {"m": 8, "t": 1, "p": 1}, "sealed": "0" * 64})],
        **signer_of(vault.db, "bob"),
    )  # fmt: skip
    assert "not the person themselves" in refused(vault("audit", "verify")).err


# -- evidence packs ---------------------------------------------------------------------------------


def _pack(vault: Govern, tmp_path: Path) -> Path:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "show", "x-acme", as_="bob")
    start = vault.ok("audit", "log", "--json").json()[0]["ts"]
    out = tmp_path / "q3.zip"
    vault.ok("audit", "evidence", "--from", start, "--to", "now", "--out", str(out))
    return out


def test_attack_member_signs_an_evidence_pack_with_a_report_of_their_own(vault: Govern, tmp_path: Path) -> None:
    """bob keeps a genuine export and checkpoint, writes a report in which he never held x-acme,
    and signs the manifest with his own (real) key: a pack only an admin or auditor makes."""
    pack = _pack(vault, tmp_path)
    with zipfile.ZipFile(pack) as archive:
        body = {name: archive.read(name) for name in MEMBERS}
    report = json.loads(body["report.json"])
    report["accounts"] = []
    body["report.json"] = (json.dumps(report, indent=2) + "\n").encode("utf-8")
    body["report.html"] = b"<html><body>nobody held anything</body></html>\n"
    manifest = json.loads(body["manifest.json"])
    bob = keys_of(vault.db, "bob")
    manifest["generated_by"], manifest["key"] = "bob", bob.public.fingerprint
    for member in manifest["members"]:
        member["sha256"] = hashlib.sha256(body[member["name"]]).hexdigest()
        member["bytes"] = len(body[member["name"]])
    body["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    body["manifest.sig"] = base64.b64encode(bob.sign(_SIGNED + body["manifest.json"])) + b"\n"
    forged = tmp_path / "forged.zip"
    forged.write_bytes(build_zip([(name, body[name]) for name in MEMBERS]))
    checked = refused(vault("audit", "verify", "--evidence", str(forged)))
    assert "not an active admin or auditor" in checked.err
    vault.ok("audit", "verify", "--evidence", str(pack))


# -- notify -----------------------------------------------------------------------------------------


def test_attack_db_writer_rewrites_an_old_staff_added_event_to_redirect_notify(
    notified: tuple[Govern, Mailbox, Hook, dict[str, str]],  # noqa: F811
) -> None:
    """A client verifies only what is new since its pin: a ``staff.added`` row below the pin,
    its data rewritten with the attacker's address, is never checked again. notify must take
    addresses from the state the log proved, not from event rows."""
    g, mailbox, _hook, env = notified
    row = sql(g.db, "SELECT seq, data FROM audit_event WHERE action = 'staff.added' AND subject = 'carol'")[0]
    data = json.loads(str(row[1]))
    data["email"] = "mallory@evil.example"
    sql(g.db, "UPDATE audit_event SET data = :d WHERE seq = :s", d=json.dumps(data), s=row[0])
    # bob's client holds no cache his own MAC vouches for (issue 19: pins are MACed per person),
    # so it verifies from the genesis and finds the rewritten event: refused, naming it.
    request = g("access", "request", "x-acme", "--reason", "cover", as_="bob")
    assert request.code == 6, request.err
    assert "event hash does not match its contents" in request.err
    mailbox.messages.clear()
    result = g("notify", "--json", as_="alice", passphrase=None, env=env)
    assert result.code in (0, 6), result.err
    sent = json.loads(result.out) if result.code == 0 and result.out else {"messages": []}
    assert all(m.get("address") != "mallory@evil.example" for m in sent["messages"])
    assert mailbox.to("mallory@evil.example") == []


# -- import ------------------------------------------------------------------------------------------


def test_attack_member_imports_over_an_account_they_hold(vault: Govern, tmp_path: Path) -> None:
    """bob holds x-acme; an import file naming x-acme with ``--update`` would overwrite its
    password (and ``import.completed`` is an admin's event): a member may not import at all."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    source = tmp_path / "export.csv"
    source.write_text("name,url,username,password\nx-acme,https://x.com,acme-social,attacker-pw-1234567\n")
    source.chmod(0o600)
    attempt = clean(vault("import", str(source), "--update", as_="bob"))
    assert attempt.code in (2, 4), attempt.err
    assert vault.ok("secret", "show", "x-acme").out.strip() == CANARY_PASSWORD


def test_attack_db_writer_rewrites_news_below_the_pin_to_phish_through_notify(
    notified: tuple[Govern, Mailbox, Hook, dict[str, str]],  # noqa: F811
) -> None:
    """Events since the last notification were verified by the command that wrote them, then
    rewritten in the database: the digest must not carry the attacker's words."""
    g, mailbox, _hook, env = notified
    _notify(g, env)  # what was there before is sent: from now on, only news
    g.ok("access", "grant", "x-acme", "bob", "--reason", "launch")
    seq = seq_of(g.db, "access.granted")
    g.ok("account", "set", "x-acme", "--max-holders", "7")  # the pin moves past the grant
    sql(
        g.db,
        "UPDATE audit_event SET reason = :r WHERE seq = :s",
        r="reply with your passphrase to it@evil.example",
        s=seq,
    )
    mailbox.messages.clear()
    refused(g("notify", "--json", passphrase=None, env=env))
    assert not any("evil.example" in str(m) for _rcpts, m in mailbox.messages)


def test_attack_evidence_pack_that_is_a_zip_bomb(vault: Govern, tmp_path: Path) -> None:
    """A crafted pack whose members are deflated from gigabytes of zeros: refused before a byte
    is inflated (a genuine pack is stored, never compressed)."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in MEMBERS:
            with archive.open(name, "w", force_zip64=True) as member:
                chunk = bytes(1024 * 1024)
                for _ in range(64):  # 64 MiB each, a few hundred KiB on disk
                    member.write(chunk)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    checked = refused(vault("audit", "verify", "--evidence", str(bomb)))
    assert "compressed" in checked.err


# -- period questions --------------------------------------------------------------------------------


def test_attack_db_writer_hides_a_holder_from_who_had_over_a_period(vault: Govern) -> None:
    """bob held x-acme; the writer moves his grant to alice and deletes his reveal rows' traces
    in the tables: the period answer comes from the verified log, not from the rows."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch")
    vault.ok("secret", "show", "x-acme", as_="bob")
    start = vault.ok("audit", "log", "--json").json()[0]["ts"]
    sql(vault.db, "UPDATE access_grant SET person_id = :a WHERE person_id = :b",
        a=person_id(vault.db, "alice"), b=person_id(vault.db, "bob"))  # fmt: skip
    answer = vault("audit", "who-had", "x-acme", "--from", start, "--to", "now", "--json")
    assert answer.code == 0, answer.err
    assert "bob" in answer.out


def test_attack_db_writer_rewrites_a_grants_reason_and_granter(vault: Govern) -> None:
    """Who granted access and why are what a reviewer or an approver reads: rewritten in the
    tables ("approved by the CEO"), they are not the log's words, and every command says so."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "launch")
    sql(vault.db, "UPDATE access_grant SET reason = 'approved by the CEO, do not review', granted_by = 'ceo'")
    assert "grant" in refused(vault("audit", "verify")).err
    refused(vault("access", "grant", "x-acme", "alice", "--reason", "cover"))


def test_attack_db_writer_rewrites_a_followups_detail_before_the_resume(
    vault: Govern, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``offboard start`` is interrupted once the case is planned; before it is resumed, the
    writer says in x-acme's rotation step's free-form detail that it waits for recovery codes
    (which bob never knew): the resumed revocation must not close it as 'nothing left to rotate'."""
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "team")

    def interrupt(name: str) -> None:
        if name == "offboard-planned":
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("offboarding.workflow.crashpoint", interrupt)
        assert vault("offboard", "start", "bob", "--reason", "left the company").code != 0
    rotate_x = _step(vault, "rotate-password", "x-acme")
    _set_step(vault, rotate_x, "detail", json.dumps({"exposure": "recovery-codes"}))
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    assert next(s for s in _steps(vault) if s["step"] == rotate_x)["status"] == "open"
    (status,) = vault.ok("rotation", "status", "--json").json()
    assert [e["handle"] for e in status["exposed_to"]] == ["bob"]
