"""Issue 13 fixes: history's live grants, no second revocation of an ended grant, RFC 4180
CSV (lone CR quoted, CRLF, --excel BOM) and the OCSF 1.8.0 mapping."""

import csv
import io
import json
from datetime import timedelta

import pytest
from conftest import CANARY_PASSWORD, Govern

from audit.chain import EventRecord
from govern.services.exports import csv_lines, csv_record


def test_history_calls_a_live_grant_live(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X", "--for", "30d")
    bob = next(a for a in vault.ok("audit", "history", "x-acme", "--json").json()["access"] if a["handle"] == "bob")
    assert (bob["to"], bob["ended_by"]) == (None, None), bob
    assert bob["until"] is not None
    live = vault.ok("access", "list", "--live", "--json").json()
    assert [g["handle"] for g in live if g["account"] == "x-acme"] == ["bob"]
    vault.later(timedelta(days=31))
    vault.ok("audit", "history", "x-acme", "--json")
    bob = next(a for a in vault.ok("audit", "history", "x-acme", "--json").json()["access"] if a["handle"] == "bob")
    assert bob["ended_by"] == "expired"
    assert bob["to"] == bob["until"]


def test_offboarding_does_not_revoke_an_expired_grant_again(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "cover", "--for", "1d")
    vault.later(timedelta(days=2))
    vault.ok("offboard", "start", "bob", "--reason", "left the company")
    log = vault.ok("audit", "log", "--json").json()
    grant = next(e["data"]["grant"] for e in log if e["action"] == "access.granted")
    assert [e["data"]["grant"] for e in log if e["action"] == "access.expired"] == [grant]
    revoked = [g for e in log if e["action"] == "access.revoked" for g in e["data"]["grants"]]
    assert grant not in revoked, "an expired grant was revoked a second time"
    bob = next(a for a in vault.ok("audit", "history", "x-acme", "--json").json()["access"] if a["handle"] == "bob")
    assert bob["ended_by"] == "expired"
    assert vault("access", "revoke", "x-acme", "bob", "--reason", "again").code in (3, 5)


def test_revoking_an_expired_grant_by_hand_is_refused(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "cover", "--for", "1d")
    vault.later(timedelta(days=2))
    assert vault("access", "revoke", "x-acme", "bob", "--reason", "late").code == 3
    assert not vault.ok("audit", "log", "--action", "access.revoked", "--json").json()


def test_csv_quotes_a_lone_cr_so_it_cannot_split_a_record_and_rearm_a_formula() -> None:
    # The CLI refuses control characters in reasons, but the CSV export reads rows as they
    # are (a hostile database): the writer itself must hold the line.
    hostile = EventRecord(
        seq=7, tx="t", ts="2026-01-01T00:00:00.000000Z", actor="alice", action="access.granted",
        account="x-acme", subject="bob", reason='line\r=HYPERLINK("http://evil")', data="{}", prev="0", hash="h",
    )  # fmt: skip
    header, record = list(csv_lines([hostile]))
    assert '"line\r=HYPERLINK(""http://evil"")"' in record, "the lone CR must be inside a quoted field"
    rows = list(csv.reader(io.StringIO(header + "\r\n" + record + "\r\n", newline="")))
    assert len(rows) == 2
    assert len(rows[1]) == 10
    assert rows[1][7] == 'line\r=HYPERLINK("http://evil")'
    assert csv_record(["=1+1", "\r=2", "a,b", 'say "hi"', None]) == '\'=1+1,"\'\r=2","a,b","say ""hi""",'


def test_csv_ends_records_with_crlf_and_excel_gets_a_bom(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", '=HYPERLINK("http://evil")')
    vault.ok("staff", "add", "zoe", "--name", "Zoë", "--role", "member", "--email", "zoe@example.org")
    text = vault.ok("audit", "export", "--format", "csv").out
    assert not text.startswith("\ufeff")
    records = text.split("\r\n")
    assert records[-1] == ""
    assert not any("\n" in r for r in records)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][:3] == ["seq", "ts", "tx"]
    assert all(len(row) == 10 for row in rows), "a value split a record"
    assert '\'=HYPERLINK("http://evil")' in [row[7] for row in rows]
    excel = vault.ok("audit", "export", "--format", "csv", "--excel").out
    assert excel.startswith("\ufeffseq,")
    assert "Zoë" in excel
    assert excel[1:] == text
    assert vault("audit", "export", "--format", "ocsf", "--excel").code == 2
    assert CANARY_PASSWORD not in text


def _ocsf(vault: Govern) -> list[dict[str, object]]:
    return [json.loads(line) for line in vault.ok("audit", "export", "--format", "ocsf").out.splitlines()]


def test_ocsf_mapping_keeps_the_subject_the_object_the_reason_and_the_sequence(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    vault.ok("secret", "show", "x-acme", as_="bob")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    events = _ocsf(vault)
    log = vault.ok("audit", "log", "--json").json()
    assert len(events) == len(log)
    for event, source in zip(events, log, strict=True):
        meta = event["metadata"]
        assert isinstance(meta, dict)
        assert meta["sequence"] == source["seq"]
        assert meta["version"] == "1.8.0"
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]  # type: ignore[operator]
        assert "resource" not in event, "resource is deprecated since OCSF 1.5.0"
        if event["activity_id"] == 99:
            assert event["activity_name"] == source["action"]
        if event["class_uid"] == 3004:
            entity = event["entity"]
            assert isinstance(entity, dict)
            assert entity["uid"]
            assert entity["type"]
            if source["account"]:
                assert (entity["uid"], entity["type"]) == (source["account"], "social media account")
            if source["subject"]:
                assert entity["user"] == {"name": source["subject"], "uid": source["subject"]}
            if source["reason"]:
                assert event["comment"] == source["reason"]
            assert entity["uid"] != "vault"
            assert entity["name"] != "vault"
        if event["class_uid"] in (3001, 3005):
            assert "comment" not in event, "Account Change and User Access Management have no comment"
            person = source["subject"] or source["actor"]
            assert event["user"] == {"name": person, "uid": person}
    revoke = next(e for e in events if e["unmapped"]["govern_action"] == "access.revoked")  # type: ignore[index]
    assert revoke["resources"] == [{"uid": "x-acme", "name": "x-acme", "type": "social media account"}]
    assert "moved team" in str(revoke["message"])
    unwrapped = [e for e in events if e["unmapped"]["govern_action"] == "key.unwrapped"]  # type: ignore[index]
    assert unwrapped
    assert all(e["entity"]["user"]["uid"] == "bob" for e in unwrapped)
    enrolled = [e for e in events if e["unmapped"]["govern_action"] == "staff.enrolled"]  # type: ignore[index]
    assert {e["user"]["uid"] for e in enrolled} == {"alice", "bob"}  # type: ignore[index]


@pytest.mark.parametrize("moment", ["now", "NOW"])
def test_who_had_at_now(vault: Govern, moment: str) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    people = vault.ok("audit", "who-had", "x-acme", "--at", moment, "--json").json()["people"]
    assert {p["handle"] for p in people} == {"alice", "bob"}
