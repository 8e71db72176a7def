"""``audit report --from --to``: a quarter of activity on an injected clock, and every figure of
the report checked against numbers the test works out itself from what it did."""

import csv
import io
import json
import statistics
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_PASSWORD, CANARY_URI, Govern
from test_rotation import OTHER_URI

DAY = timedelta(days=1)


def _ts(g: Govern, action: str, index: int = -1, **match: str) -> str:
    events = [
        e
        for e in g.ok("audit", "log", "--action", action, "--json").json()
        if all(e.get(k) == v for k, v in match.items())
    ]
    return str(events[index]["ts"])


def _at(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def _span(later: str, earlier: str) -> int:
    return int((_at(later) - _at(earlier)).total_seconds())


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def quarter(vault: Govern, tmp_path: Path) -> dict[str, Any]:
    """Ninety-one days of activity; returns what the test knows about it."""
    g = vault
    for handle in ("carol", "dave"):
        g.enrol(handle)
    g.ok("account", "add", "ig-acme", "--platform", "instagram", "--handle", "@acme")
    g.ok("secret", "set", "ig-acme", "--username", "acme-ig", "--password-stdin", input="ig-password-1234\n")
    g.later(timedelta(hours=1))
    # Day 0: the period starts with a rotation policy, a TOTP seed and a policy to acknowledge.
    g.ok("account", "set", "x-acme", "--rotate-every", "30d")
    start = _ts(g, "account.updated")
    g.ok("secret", "set", "x-acme", "--totp-uri", "-", input=CANARY_URI + "\n")
    policy = tmp_path / "policy.txt"
    policy.write_text("Be careful with the company's accounts.\n", encoding="utf-8")
    g.ok("policy", "publish", str(policy), "--version", "2026-q3")
    for handle in ("alice", "bob", "carol"):
        g.ok("policy", "ack", as_=handle)
    g.later(DAY)  # day 1
    g.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    g.ok("secret", "show", "x-acme", as_="bob")
    g.ok("secret", "show", "x-acme", "--field", "username", as_="bob")
    g.ok("totp", "x-acme", as_="bob")
    g.later(DAY)  # day 2
    request = g.ok("access", "request", "ig-acme", "--reason", "campaign", "--json", as_="carol").json()["id"]
    g.ok("access", "approve", str(request))
    g.ok("secret", "show", "ig-acme", as_="carol")
    g.later(DAY)  # day 3
    assert g("secret", "show", "x-acme", as_="dave").code == 4
    g.later(7 * DAY)  # day 10
    g.ok("access", "grant", "x-acme", "carol", "--reason", "cover", "--for", "5d")
    g.ok("secret", "show", "x-acme", as_="carol")
    g.later(10 * DAY)  # day 20: the expiry of day 15 is processed
    g.ok("sweep")
    g.later(5 * DAY)  # day 25: first rotation
    g.ok("rotation", "start", "x-acme")
    g.ok("rotation", "confirm", "x-acme")
    g.later(15 * DAY)  # day 40: an access review
    g.ok("review", "start", "--name", "Q3 2026")
    g.ok("review", "certify", "x-acme", "bob")
    g.ok("review", "certify", "ig-acme", "carol")
    g.ok("review", "close")
    g.later(25 * DAY)  # day 65: bob leaves the team (the rotation due on day 55 was missed)
    g.ok("access", "revoke", "x-acme", "bob", "--reason", "moved team")
    g.later(5 * DAY)  # day 70
    g.ok("rotation", "start", "x-acme")
    g.ok("rotation", "confirm", "x-acme")
    g.later(2 * DAY)  # day 72
    g.ok("secret", "set", "x-acme", "--totp-uri", "-", input=OTHER_URI + "\n")
    g.later(8 * DAY)  # day 80: carol leaves
    g.ok("offboard", "start", "carol", "--reason", "left the company")
    g.later(timedelta(hours=2))
    g.ok("rotation", "start", "ig-acme")
    g.ok("rotation", "confirm", "ig-acme")
    for step in g.ok("offboard", "status", "carol", "--json").json()["steps"]:
        if step["status"] == "open":
            g.ok("offboard", "done", "carol", str(step["step"]), "--note", "done by hand")
    g.later(11 * DAY)  # day 91
    g.ok("sweep")
    return {"start": start, "request": request, "g": g}


def test_the_quarter_report_figures(quarter: dict[str, Any], tmp_path: Path) -> None:
    g: Govern = quarter["g"]
    start = quarter["start"]
    out = tmp_path / "q3.json"
    g.ok("audit", "report", "--from", start, "--to", "now", "--format", "json", "--out", str(out))
    report = json.loads(out.read_text(encoding="utf-8"))
    log = g.ok("audit", "log", "--json").json()
    assert report["verification"]["ok"] is True
    assert report["verification"]["last_seq"] == log[-1]["seq"] == report["verification"]["events"]
    assert report["verification"]["head"] == log[-1]["hash"]

    accounts = {a["account"]: a for a in report["accounts"]}
    assert set(accounts) == {"x-acme", "ig-acme"}
    x, ig = accounts["x-acme"], accounts["ig-acme"]
    # Holders: who, how it started and ended (worked out from the scenario).
    x_rows = {(h["handle"], h["via"]): h for h in x["holders"]}
    assert set(x_rows) == {("alice", "admin role"), ("bob", "grant"), ("carol", "grant")}
    assert (x_rows["bob", "grant"]["started"], x_rows["bob", "grant"]["ended"]) == ("grant", "revoked")
    assert x_rows["bob", "grant"]["end_reason"] == "moved team"
    assert (x_rows["bob", "grant"]["reveals"], x_rows["bob", "grant"]["totp_codes"]) == (2, 1)
    carol_x = x_rows["carol", "grant"]
    assert (carol_x["ended"], carol_x["reveals"]) == ("expired", 1)
    assert _span(carol_x["until"], carol_x["from"]) == 5 * 86400
    assert x_rows["alice", "admin role"]["still_holds"] is True
    ig_rows = {(h["handle"], h["via"]): h for h in ig["holders"]}
    carol_ig = ig_rows["carol", "grant"]
    assert carol_ig["started"] == f"approval of request {quarter['request']}"
    assert (carol_ig["approvers"], carol_ig["ended"], carol_ig["reveals"]) == (["alice"], "offboarded", 1)
    # Use per person, refused attempts included.
    assert {u["handle"]: (u["reveals"], u["totp_codes"], u["denied"]) for u in x["use"]} == {
        "bob": (2, 1, 0),
        "carol": (1, 0, 0),
        "dave": (0, 0, 1),
    }
    assert {u["handle"]: (u["reveals"], u["denied"]) for u in ig["use"]} == {"carol": (1, 0)}
    assert (x["grants"], x["revocations"], x["expiries"]) == (2, 1, 1)
    assert (ig["grants"], ig["revocations"], ig["expiries"]) == (1, 1, 0)
    # Rotation of x-acme every 30 days from its creation: due on days ~30 (met by day 25),
    # ~55 (missed: nothing until day 70) and ~85 (met by day 70); two rotations done.
    assert x["rotation"] == {
        "rotate_every": "30d",
        "done": 2,
        "due": 3,
        "on_time": 2,
        "missed": 1,
        "compliance_pct": 66.7,
    }
    assert ig["rotation"]["compliance_pct"] is None
    assert ig["rotation"]["done"] == 1
    totals = report["totals"]
    assert totals == {
        "accounts": 2,
        "reveals": 4,
        "totp_codes": 1,
        "denied": 1,
        "grants": 3,
        "revocations": 2,
        "expiries": 1,
        "rotations_done": 3,
        "rotations_due": 3,
        "rotation_compliance_pct": 66.7,
    }
    # Exposures: carol's x-acme values from her expiry (day 20) to the rotation (day 25) and the
    # new seed (day 72); bob's from his revocation (day 65) to day 70 and day 72; carol's ig-acme
    # password from her offboarding (day 80) to its rotation two hours later.
    expired = _ts(g, "access.expired")
    rot25 = _ts(g, "rotation.confirmed", 0, account="x-acme")
    revoked_bob = _ts(g, "access.revoked", 0, subject="bob")
    rot70 = _ts(g, "rotation.confirmed", 1, account="x-acme")
    seed72 = _ts(g, "secret.set", -1, account="x-acme")
    off80 = _ts(g, "access.revoked", -1, subject="carol")
    rot_ig = _ts(g, "rotation.confirmed", -1, account="ig-acme")
    expected = sorted(
        [
            ("x-acme", "carol", "password", _span(rot25, expired)),
            ("x-acme", "carol", "totp", _span(seed72, expired)),
            ("x-acme", "bob", "password", _span(rot70, revoked_bob)),
            ("x-acme", "bob", "totp", _span(seed72, revoked_bob)),
            ("ig-acme", "carol", "password", _span(rot_ig, off80)),
        ]
    )
    exposures = report["exposures"]
    got = sorted((e["account"], e["handle"], e["kind"], e["time_to_rotate_s"]) for e in exposures["rows"])
    assert got == expected
    durations = [e[3] for e in expected]
    assert (exposures["opened"], exposures["closed"], exposures["open_at_end"]) == (5, 5, 0)
    assert exposures["median_time_to_rotate_s"] == int(statistics.median(durations))
    assert exposures["worst_time_to_rotate_s"] == max(durations) == _span(seed72, expired)
    # Offboarding: carol's case, revoked at once, closed within its 24-hour deadline.
    (case,) = report["offboarding"]
    started = _ts(g, "offboard.started")
    completed = _ts(g, "offboard.completed")
    assert (case["handle"], case["time_to_revoke_s"]) == ("carol", _span(off80, started))
    assert case["time_to_revoke_s"] < 60
    assert (case["closed"], case["time_to_close_s"]) == (completed, _span(completed, started))
    assert (case["met_deadline"], case["overdue"]) == (True, False)
    # Policy: alice, bob, dave active at the end (carol left); dave never acknowledged.
    assert report["policy"] == {
        "version": "2026-q3",
        "people": 3,
        "acknowledged": 2,
        "coverage_pct": 66.7,
        "pending": ["dave"],
    }
    (review,) = report["reviews"]
    assert (review["name"], review["certified"], review["revoked"]) == ("Q3 2026", 2, 0)
    assert review["closed"] is not None


def test_the_quarter_report_in_html_and_csv_carries_the_same_figures(quarter: dict[str, Any], tmp_path: Path) -> None:
    g: Govern = quarter["g"]
    paths = {fmt: tmp_path / f"q3.{fmt}" for fmt in ("json", "csv", "html")}
    for fmt, path in paths.items():
        g.ok("audit", "report", "--from", quarter["start"], "--to", "now", "--format", fmt, "--out", str(path))
        assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    raw = paths["csv"].read_bytes().decode("utf-8")
    assert raw.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows[0] == ["section", "account", "person", "figure", "value"]
    figures = {(r[0], r[1], r[2], r[3]): r[4] for r in rows[1:]}
    for name, value in data["totals"].items():
        assert figures["totals", "", "", name] == str(value)
    assert figures["rotation", "x-acme", "", "compliance_pct"] == "66.7"
    assert figures["use", "x-acme", "dave", "denied"] == "1"
    page = _Page()
    html = paths["html"].read_text(encoding="utf-8")
    page.feed(html)
    assert page.external == [], "the page loads nothing from outside"
    assert page.tags.get("script") is None
    assert page.tags["svg"] == 2, "one timeline chart per account"
    assert page.tags["rect"] >= 5
    text = " ".join(page.text)
    for needle in ("66.7%", "approval of request", "still holds", "moved team", "dave", "Q3 2026", "2026-q3"):
        assert needle in text, needle
    assert "break-before: page" in html
    assert "@media print" in html
    for path in paths.values():
        assert CANARY_PASSWORD not in path.read_text(encoding="utf-8")


def test_period_report_is_for_admins_and_auditors_and_needs_a_verified_log(vault: Govern, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    args = ["audit", "report", "--from", "2000-01-01", "--to", "now", "--out", str(out)]
    assert vault(*args, as_="bob").code == 4
    vault.enrol("aud", role="auditor")
    vault.ok(*args, as_="aud")
    assert vault("audit", "report", "--format", "json", "--out", str(tmp_path / "x.json")).code == 2
    assert (
        vault("audit", "report", "--from", "2030-01-01", "--to", "2020-01-01", "--out", str(tmp_path / "y")).code == 2
    )


@pytest.mark.tampers
def test_period_report_of_a_tampered_log_is_refused(vault: Govern, tmp_path: Path) -> None:
    from sqlhelp import sql

    vault.ok("access", "grant", "x-acme", "bob", "--reason", "runs X")
    sql(vault.db, "UPDATE audit_event SET reason = 'forged' WHERE action = 'access.granted'")
    out = tmp_path / "r.html"
    assert vault("audit", "report", "--from", "2000-01-01", "--to", "now", "--out", str(out)).code == 6
    assert not out.exists()


def test_hostile_text_in_the_period_report_is_escaped(vault: Govern, tmp_path: Path) -> None:
    vault.ok("access", "grant", "x-acme", "bob", "--reason", '<script>alert(1)</script><img src="http://evil/">')
    out = tmp_path / "r.html"
    vault.ok("audit", "report", "--from", "2000-01-01", "--to", "now", "--out", str(out))
    page = _Page()
    html = out.read_text(encoding="utf-8")
    page.feed(html)
    assert page.tags.get("script") is None
    assert page.tags.get("img") is None
    assert page.external == []
    assert "&lt;script&gt;" in html
