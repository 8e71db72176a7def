"""Audit: tamper detection on a real database, checkpoints, offline export verification,
exports, role scoping, who-had and history, and the HTML report."""

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD, CANARY_SEED, CANARY_URI, Govern
from sqlhelp import sql

VECTORS = Path(__file__).parent / "vectors"


def busy(g: Govern) -> None:
    """A little history: a grant, reveals, a rotation, a revocation."""
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    g.ok("secret", "show", "x-acme", as_="bob")
    g.ok("rotation", "start", "x-acme", as_="bob")
    g.ok("rotation", "confirm", "x-acme", as_="bob")
    g.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")


def first_bad(result_err: str) -> int:
    match = re.search(r"event (\d+)", result_err)
    assert match, result_err
    return int(match.group(1))


@pytest.mark.tampers
@pytest.mark.parametrize(
    "column", ["tx", "ts", "actor", "action", "account", "subject", "reason", "data", "prev", "hash"]
)
def test_editing_any_column_of_an_event_is_caught(vault: Govern, column: str) -> None:
    busy(vault)
    target = 12
    value = {
        "data": '{"forged":true}',
        "prev": "f" * 64,
        "hash": "e" * 64,
        "tx": "00000000-0000-4000-8000-000000000000",
    }
    sql(vault.db, f"UPDATE audit_event SET {column} = :v WHERE seq = :s", v=value.get(column, "forged"), s=target)  # noqa: S608
    result = vault("audit", "verify")
    assert result.code == 6
    assert "Traceback" not in result.err
    assert first_bad(result.err) in (target, target + 1), result.err


@pytest.mark.tampers
def test_deleting_an_event_is_caught(vault: Govern) -> None:
    busy(vault)
    sql(vault.db, "DELETE FROM audit_event WHERE seq = 10")
    deleted = vault("audit", "verify")
    assert deleted.code == 6
    assert first_bad(deleted.err) == 10


@pytest.mark.tampers
def test_reordering_is_caught(vault: Govern) -> None:
    busy(vault)
    rows = sql(vault.db, "SELECT seq, action, data FROM audit_event WHERE seq IN (14, 15) ORDER BY seq")
    sql(vault.db, "UPDATE audit_event SET action = :a, data = :d WHERE seq = 14", a=rows[1][1], d=rows[1][2])
    sql(vault.db, "UPDATE audit_event SET action = :a, data = :d WHERE seq = 15", a=rows[0][1], d=rows[0][2])
    result = vault("audit", "verify")
    assert result.code == 6
    assert first_bad(result.err) == 14


@pytest.mark.tampers
def test_an_appended_event_without_a_seal_is_caught(vault: Govern) -> None:
    last = sql(vault.db, "SELECT seq, hash, tx, ts FROM audit_event ORDER BY seq DESC LIMIT 1")[0]
    from audit.chain import EventRecord

    forged = EventRecord(
        seq=int(last[0]) + 1,
        tx="11111111-1111-4111-8111-111111111111",
        ts=str(last[3]),
        actor="alice",
        action="staff.role_changed",
        account=None,
        subject="bob",
        reason=None,
        data='{"from":"member","to":"admin"}',
        prev=str(last[1]),
        hash="",
    )
    forged = EventRecord(**{**forged.__dict__, "hash": forged.computed_hash()})
    sql(
        vault.db,
        "INSERT INTO audit_event (seq, tx, ts, actor, action, account, subject, reason, data, prev, hash)"
        " VALUES (:seq, :tx, :ts, :actor, :action, :account, :subject, :reason, :data, :prev, :hash)",
        **forged.__dict__,
    )
    result = vault("audit", "verify")
    assert result.code == 6
    assert first_bad(result.err) == forged.seq
    assert "seal" in result.err


@pytest.mark.tampers
def test_a_forged_signature_is_caught(vault: Govern) -> None:
    busy(vault)
    tx, first = sql(vault.db, "SELECT tx, first_seq FROM audit_seal ORDER BY first_seq DESC LIMIT 1")[0]
    import base64

    sql(vault.db, "UPDATE audit_seal SET signature = :s WHERE tx = :t", s=base64.b64encode(bytes(64)).decode(), t=tx)
    result = vault("audit", "verify")
    assert result.code == 6
    assert first_bad(result.err) == first
    assert "signature" in result.err


@pytest.mark.tampers
def test_truncation_is_caught_against_a_checkpoint(vault: Govern, tmp_path: Path) -> None:
    busy(vault)
    checkpoint = tmp_path / "checkpoint.json"
    vault.ok("audit", "checkpoint", "--out", str(checkpoint))
    assert oct(checkpoint.stat().st_mode & 0o777) == "0o600"
    assert vault("audit", "verify", "--checkpoint", str(checkpoint)).code == 0
    seq = json.loads(checkpoint.read_text())["seq"]
    tx = sql(vault.db, "SELECT tx FROM audit_event WHERE seq = :s", s=seq)[0][0]
    sql(vault.db, "DELETE FROM audit_event WHERE tx = :t", t=tx)
    sql(vault.db, "DELETE FROM audit_seal WHERE tx = :t", t=tx)
    truncated = vault("audit", "verify", "--checkpoint", str(checkpoint))
    assert truncated.code == 6
    assert "truncated" in truncated.err
    forged = json.loads(checkpoint.read_text())
    forged["seq"] = 1
    checkpoint.write_text(json.dumps(forged))
    assert vault("audit", "verify", "--checkpoint", str(checkpoint)).code == 6, "an edited checkpoint fails"
    checkpoint.write_text("not json")
    malformed = vault("audit", "verify", "--checkpoint", str(checkpoint))
    assert malformed.code == 6
    assert "Traceback" not in malformed.err


@pytest.mark.tampers
def test_rows_the_log_does_not_explain(vault: Govern) -> None:
    sql(vault.db, "UPDATE person SET role = 'admin' WHERE handle = 'bob'")
    result = vault("audit", "verify")
    assert result.code == 6
    assert "person bob: role is admin in the tables but member in the log" in result.err
    sql(vault.db, "UPDATE person SET role = 'member' WHERE handle = 'bob'")
    sql(
        vault.db,
        "INSERT INTO access_grant (account_id, person_id, reason, granted_by, starts_at)"
        " SELECT a.id, p.id, 'sneaky', 'alice', CURRENT_TIMESTAMP FROM account a, person p"
        " WHERE a.slug = 'x-acme' AND p.handle = 'bob'",
    )
    result = vault("audit", "verify")
    assert result.code == 6
    assert "is not explained by the log" in result.err


@pytest.mark.tampers
def test_a_signed_event_by_someone_without_the_right_is_reported(vault: Govern) -> None:
    """Bob has a real key; an event he signs making himself admin still is not authorised."""
    from sqlalchemy import create_engine
    from sqlmodel import Session
    from test_domain import keys_of

    from audit.log import AuditTransaction
    from govern.timeutil import utcnow

    bob = keys_of(vault.db, "bob")

    class BobSigner:
        handle = "bob"
        key_fingerprint = bob.public.fingerprint

        def sign(self, message: bytes) -> bytes:
            return bob.sign(message)

    engine = create_engine(vault.db)
    try:
        with Session(engine) as session:
            tx = AuditTransaction(session, "bob", utcnow())
            tx.append("staff.role_changed", subject="bob", data={"from": "member", "to": "admin"})
            tx.seal(BobSigner())
            session.commit()
    finally:
        engine.dispose()
    sql(vault.db, "UPDATE person SET role = 'admin' WHERE handle = 'bob'")
    result = vault("audit", "verify")
    assert result.code == 6
    # Since issue 19 the rule table names the role, and the transaction is contained and named.
    assert "staff.role_changed by bob, a member: only admin may sign it" in result.err


def test_golden_export_verifies_offline(tmp_path: Path) -> None:
    from govern.cli.main import run

    golden = VECTORS / "golden_export.jsonl"
    assert run(["audit", "verify", "--export", str(golden)]) == 0
    lines = golden.read_text(encoding="utf-8").splitlines()
    tampered = tmp_path / "tampered.jsonl"
    for index, line in enumerate(lines):
        item = json.loads(line)
        if item.get("type") == "event" and item["seq"] == 7:
            item["reason"] = "forged"
            lines[index] = json.dumps(item)
    tampered.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(["audit", "verify", "--export", str(tampered)]) == 6
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(golden.read_text().splitlines()[:-3]) + "\n")
    assert run(["audit", "verify", "--export", str(cut)]) == 6
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfe not an export")
    assert run(["audit", "verify", "--export", str(garbage)]) == 6
    assert run(["audit", "verify", "--export", str(tmp_path / "missing.jsonl")]) == 3


def test_export_round_trip_and_formats(vault: Govern, tmp_path: Path) -> None:
    busy(vault)
    vault.ok("access", "grant", "x-acme", "bob", "--reason", '=HYPERLINK("http://evil")')
    out = tmp_path / "log.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--out", str(out))
    verified = vault.ok("audit", "verify", "--export", str(out), "--json").json()
    total = len(vault.ok("audit", "log", "--json").json())
    assert verified["events"] == total
    filtered = tmp_path / "filtered.jsonl"
    vault.ok("audit", "export", "--format", "jsonl", "--account", "x-acme", "--out", str(filtered))
    assert vault("audit", "verify", "--export", str(filtered)).code == 6, "a filtered export cannot be verified"
    rows = list(csv.reader(io.StringIO(vault.ok("audit", "export", "--format", "csv").out)))
    assert rows[0][:5] == ["seq", "ts", "tx", "actor", "action"]
    reasons = [row[7] for row in rows[1:] if row[7]]
    assert '\'=HYPERLINK("http://evil")' in reasons
    assert not [r for r in reasons if r.startswith(("=", "+", "-", "@"))]
    ocsf = [json.loads(line) for line in vault.ok("audit", "export", "--format", "ocsf").out.splitlines()]
    assert len(ocsf) == total
    for event in ocsf:
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["metadata"]["version"] == "1.8.0"
        assert event["class_uid"] in (3001, 3004, 3005)
    granted = next(e for e in ocsf if e["unmapped"]["govern_action"] == "access.granted")
    assert (granted["class_uid"], granted["activity_id"], granted["user"]["name"]) == (3005, 1, "bob")
    enrolled = next(e for e in ocsf if e["unmapped"]["govern_action"] == "staff.enrolled")
    assert (enrolled["class_uid"], enrolled["activity_id"]) == (3001, 2)
    for text in (out.read_text(), vault.ok("audit", "export", "--format", "csv").out, json.dumps(ocsf)):
        assert CANARY_PASSWORD not in text


def test_members_see_only_their_own_events(vault: Govern) -> None:
    vault.enrol("carol")
    vault.account("ig-acme", password="ig-password-1234")
    vault.ok("access", "grant", "ig-acme", "carol", "--reason", "runs IG")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    seen = vault.ok("audit", "log", "--json", as_="carol").json()
    assert seen
    for event in seen:
        assert event["actor"] == "carol" or event["subject"] == "carol" or event["account"] == "ig-acme"
    assert len(vault.ok("audit", "log", "--json").json()) > len(seen)
    vault.enrol("aud", role="auditor")
    assert len(vault.ok("audit", "log", "--json", as_="aud").json()) == len(vault.ok("audit", "log", "--json").json())
    assert vault("audit", "who-had", "x-acme", "--at", "2030-01-01", as_="carol").code == 4
    assert vault("audit", "checkpoint", as_="carol").code == 4
    assert vault("audit", "report", "--out", "/tmp/never.html", as_="carol").code == 4
    assert vault.ok("audit", "checkpoint", as_="aud").json()["signer"] == "aud"


def test_who_had_and_history(vault: Govern) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    log = vault.ok("audit", "log", "--json").json()
    granted_at = next(e["ts"] for e in log if e["action"] == "access.granted")
    vault.ok("access", "revoke", "x-acme", "bob", "--reason", "left")
    revoked_at = vault.ok("audit", "log", "--action", "access.revoked", "--json").json()[0]["ts"]
    during = vault.ok("audit", "who-had", "x-acme", "--at", granted_at, "--json").json()
    assert {(p["handle"], p["via"]) for p in during["people"]} == {("bob", "grant"), ("alice", "admin role")}
    after = vault.ok("audit", "who-had", "x-acme", "--at", revoked_at, "--json").json()
    assert {p["handle"] for p in after["people"]} == {"alice"}
    before = vault.ok("audit", "who-had", "x-acme", "--at", "2000-01-01T00:00:00Z", "--json").json()
    assert before == {"account": "x-acme", "at": "2000-01-01T00:00:00Z", "existed": False, "people": []}
    history = vault.ok("audit", "history", "x-acme", "--json").json()
    bob = next(a for a in history["access"] if a["handle"] == "bob")
    assert (bob["from"], bob["to"], bob["ended_by"]) == (granted_at, revoked_at, "revoked")
    assert [v["version"] for v in history["versions"]] == [1]
    assert vault("audit", "who-had", "x-acme", "--at", "yesterday").code == 2


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.classes: list[str] = []
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if values.get(name):
                self.external.append(str(values[name]))
        if tag == "table":
            self._table = values.get("id") or "?"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            if tag == "td":
                self.classes.append(values.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_html_report(vault: Govern, tmp_path: Path) -> None:
    vault.ok("staff", "add", "mallory", "--name", "<script>alert(1)</script>", "--team", "<b>x</b>")
    vault.enrol("carol")
    vault.ok("account", "set", "x-acme", "--max-holders", "1")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "runs X")
    vault.ok("access", "grant", "x-acme", "bob", "--reason", "<img src=x onerror=alert(1)>", "--over-cap")
    vault.ok("access", "revoke", "x-acme", "carol", "--reason", "left")
    vault.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    out = tmp_path / "report.html"
    vault.ok("audit", "report", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    parser = _Cells()
    parser.feed(html)
    assert parser.scripts == 0
    assert parser.external == [], "self-contained: no external resources"
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    matrix = {row[0]: row[1:] for row in parser.tables["matrix"][1:]}
    header = parser.tables["matrix"][0]
    column = header.index("x-acme")
    assert matrix["bob"][column - 1].startswith("holds")
    assert "EXPOSED" in matrix["carol"][column - 1]
    assert matrix["alice"][column - 1] == "custodian"
    assert any("overcap" in c for c in parser.classes)
    rotation = {row[0]: row for row in parser.tables["rotation"][1:]}
    assert rotation["x-acme"][2] == "exposed"
    assert "Verified:" in html
    for secret in (CANARY_PASSWORD, CANARY_SEED):
        assert secret not in html
