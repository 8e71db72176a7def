"""End-to-end through the installed entry point (issue 11, part A): withdraw, who decides,
extend, short grants, inbox without a passphrase, several offboarding steps closed by an
owner, and a digest arriving at a real SMTP server and a real webhook."""

import os
from pathlib import Path

import pytest
from conftest import CANARY_PASSWORD
from test_e2e import Shell
from test_notify import (  # noqa: F401 (fixtures)
    SMTP_PASSWORD,
    WEBHOOK_TOKEN,
    Hook,
    Mailbox,
    _body,
    _config,
    smtp_server,
    webhook_server,
)

pytestmark = pytest.mark.e2e


def test_daily_team_use_through_the_entry_point(
    db_url: str,
    tmp_path: Path,
    smtp_server: tuple[Mailbox, int, Path],  # noqa: F811 (the fixture imported above)
    webhook_server: tuple[Hook, str],  # noqa: F811 (the fixture imported above)
) -> None:
    mailbox, port, cert = smtp_server
    hook, url = webhook_server
    sh = Shell(db_url, tmp_path)
    sh.run("init", "--org", "Acme", "--admin", "alice", "--name", "Alice", "--recovery-file", str(tmp_path / "rk"))
    for handle in ("bob", "carol"):
        added = sh.json("staff", "add", handle, "--name", handle.title(), "--email", f"{handle}@acme.example")
        sh.run("staff", "enroll", handle, "--code", added["enrolment_code"], who=handle)
    sh.run("account", "add", "x-acme", "--platform", "x", "--handle", "@acme", "--owner", "carol")
    sh.run("secret", "set", "x-acme", "--password-stdin", stdin=CANARY_PASSWORD + "\n")
    env = {
        "GOVERN_CONFIG": str(_config(tmp_path, port, cert)),
        "TEST_SMTP_PASSWORD": SMTP_PASSWORD,
        "TEST_WEBHOOK_URL": url,
    }
    first = sh.run("notify", who="alice", GOVERN_PASSPHRASE="", **env)
    assert SMTP_PASSWORD not in first.stderr + first.stdout

    # Requests: who decides, and withdrawing.
    asked = sh.run("access", "request", "x-acme", "--reason", "cover", who="bob")
    assert "an admin (alice) decides it" in asked.stderr, "carol owns x-acme but does not hold it"
    sh.run("access", "approve", asked.stdout.strip(), who="carol", code=4)
    sh.run("access", "withdraw", asked.stdout.strip(), who="carol", code=4)
    sh.run("access", "withdraw", asked.stdout.strip(), who="bob")
    sh.run("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    again = sh.run("access", "request", "x-acme", "--reason", "cover", "--for", "30m", who="bob")
    assert "carol (the owner of x-acme) decides it" in again.stderr
    assert "lasts only 30m" in again.stderr

    # The inbox needs no passphrase; notify tells carol by e-mail and the team by webhook.
    inbox = sh.json("inbox", who="carol", GOVERN_PASSPHRASE="")
    assert [i["kind"] for i in inbox["items"]] == ["decide-request"]
    sh.run("notify", who="alice", GOVERN_PASSPHRASE="", **env)
    (to_carol,) = mailbox.to("carol@acme.example")
    assert f"request {again.stdout.strip()}: bob asks for x-acme for 30m: cover" in _body(to_carol)
    assert hook.posts, "the vault-wide digest reached the webhook"
    approved = sh.run("access", "approve", again.stdout.strip(), who="carol")
    assert "lasts under an hour" in approved.stderr
    extended = sh.json("access", "extend", "x-acme", "bob", "--for", "2d", who="carol")
    assert extended["previous_until"] < extended["until"]
    assert sh.run("secret", "show", "x-acme", who="bob").stdout == CANARY_PASSWORD + "\n"
    mailbox.messages.clear()
    sh.run("notify", who="alice", GOVERN_PASSPHRASE="", **env)
    news = _body(mailbox.to("bob@acme.example")[0])
    assert "was approved by carol" in news
    assert "your grant of x-acme now ends at" in news
    assert sh.run("inbox", "--check", who="bob", GOVERN_PASSPHRASE="").returncode == 0

    # Offboarding: carol closes the manual steps of x-acme in one command.
    sh.run("offboard", "start", "bob", "--reason", "left the company")
    steps = sh.json("offboard", "status", "bob", "--open")["steps"]
    manual = [str(s["step"]) for s in steps if s["kind"] == "manual"]
    sh.run("inbox", "--check", who="carol", GOVERN_PASSPHRASE="", code=7)  # x-acme is exposed to bob
    sh.run("offboard", "done", "bob", *manual, "--note", "removed at X", who="carol")
    left = sh.json("offboard", "status", "bob", "--open")["steps"]
    assert [s["kind"] for s in left] == ["rotate-password"]
    table = sh.run("offboard", "status", "bob", "--open").stdout
    assert all(len(line.expandtabs(8)) <= 80 for line in table.splitlines()[-len(left) - 1 :])
    sh.run("rotation", "start", "x-acme", who="carol")
    sh.run("rotation", "confirm", "x-acme", who="carol")
    assert sh.json("offboard", "status", "bob")["status"] == "closed"
    assert sh.run("inbox", "--check", who="carol", GOVERN_PASSPHRASE="").returncode == 0
    sh.run("audit", "verify")
    every = "".join(sh.transcript)
    assert SMTP_PASSWORD not in every
    assert WEBHOOK_TOKEN not in every
    assert CANARY_PASSWORD not in every
    assert os.environ.get("GOVERN_CONFIG") is None, "the test's config never leaks into the environment"
