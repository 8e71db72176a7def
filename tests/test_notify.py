"""``govern notify`` against a real SMTP server (aiosmtpd, STARTTLS and AUTH with a certificate
made here) and a real local HTTP server standing in for a Slack-compatible webhook."""

import datetime as dt
import email
import email.policy
import ipaddress
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlhelp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from conftest import CANARY_PASSWORD, Govern
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "govern-notify"
SMTP_PASSWORD = "CANARY-smtp-5d1e-do-not-leak"
WEBHOOK_TOKEN = "CANARY-hook-91ab"
HOSTILE = "cover\r\nBcc: mallory@evil.example\r\n\r\n<https://evil.example|click> <!channel> *bold*"


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it as its CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "govern test smtp")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=36500))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(([str(r) for r in envelope.rcpt_tos], message))
        return "250 OK"

    def authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            self.logins.append(SMTP_USER)
        return AuthResult(success=ok)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=mailbox.authenticate,
    )
    controller.start()
    try:
        yield mailbox, port, cert
    finally:
        controller.stop()


class Hook:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200


@pytest.fixture
def webhook_server() -> Iterator[tuple[Hook, str]]:
    hook = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            if self.path == f"/hooks/{WEBHOOK_TOKEN}":
                hook.posts.append(json.loads(body))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook, f"http://127.0.0.1:{server.server_address[1]}/hooks/{WEBHOOK_TOKEN}"
    finally:
        server.shutdown()
        server.server_close()


def _config(tmp_path: Path, port: int, cert: Path, *, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[notify]
from = "govern@acme.example"

[smtp]
host = "127.0.0.1"
port = {port}
security = "starttls"
username = "{SMTP_USER}"
password_env = "TEST_SMTP_PASSWORD"
ca_file = "{cert}"
timeout = 10

[webhook]
url_env = "TEST_WEBHOOK_URL"

[people]
alice = "alice@acme.example"
bob = "bob@acme.example"
{extra}
""",
        encoding="utf-8",
    )
    os.chmod(path, 0o600)
    return path


def _enrol_with_email(g: Govern, handle: str, address: str) -> None:
    added = g.ok("staff", "add", handle, "--name", handle.title(), "--email", address, "--json").json()
    g.ok("staff", "enroll", handle, "--code", added["enrolment_code"], as_=handle)


@pytest.fixture
def notified(
    vault: Govern,
    tmp_path: Path,
    smtp_server: tuple[Mailbox, int, Path],
    webhook_server: tuple[Hook, str],
) -> tuple[Govern, Mailbox, Hook, dict[str, str]]:
    """carol (e-mail from her signed staff.added) owns and holds x-acme; alice and bob are
    mapped in the config; the first notify run has sent what was there before."""
    mailbox, port, cert = smtp_server
    hook, url = webhook_server
    env = {
        "GOVERN_CONFIG": str(_config(tmp_path, port, cert)),
        "TEST_SMTP_PASSWORD": SMTP_PASSWORD,
        "TEST_WEBHOOK_URL": url,
    }
    _enrol_with_email(vault, "carol", "carol@acme.example")
    vault.ok("account", "set", "x-acme", "--owner", "carol")
    vault.ok("access", "grant", "x-acme", "carol", "--reason", "owner runs it")
    return vault, mailbox, hook, env


def _notify(g: Govern, env: dict[str, str], *args: str, as_: str = "alice", code: int = 0) -> dict[str, Any]:
    result = g("notify", "--json", *args, as_=as_, passphrase=None, env=env)
    assert result.code == code, result.err
    assert SMTP_PASSWORD not in result.out + result.err
    assert WEBHOOK_TOKEN not in result.out + result.err
    data: dict[str, Any] = json.loads(result.out) if result.out else {}
    return data


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def test_digests_arrive_by_smtp_and_webhook_once(notified: tuple[Govern, Mailbox, Hook, dict[str, str]]) -> None:
    g, mailbox, hook, env = notified
    _notify(g, env)  # the first run: what is there now; no news from before it
    mailbox.messages.clear()
    hook.posts.clear()
    request = g.ok("access", "request", "x-acme", "--reason", "cover <https://evil.example|click> <!channel>",
                   as_="bob").out.strip()  # fmt: skip
    # govern refuses control characters in a reason; a database writer who puts them in the row
    # is refused since issue 19 (the row's reason must be the signed event's): exit 6, nothing sent.
    original = sqlhelp.sql(g.db, "SELECT reason FROM access_request WHERE id = :i", i=int(request))[0][0]
    sqlhelp.sql(g.db, "UPDATE access_request SET reason = :r WHERE id = :i", r=HOSTILE, i=int(request))
    _notify(g, env, code=6)
    assert mailbox.messages == []
    sqlhelp.sql(g.db, "UPDATE access_request SET reason = :r WHERE id = :i", r=original, i=int(request))
    sent = _notify(g, env)
    assert mailbox.logins, "it authenticated (after STARTTLS: the server refuses AUTH before it)"
    (to_carol,) = mailbox.to("carol@acme.example")
    assert to_carol["Subject"].startswith("govern: ")
    assert "for carol" in to_carol["Subject"]
    body = _body(to_carol)
    assert f"request {request}: bob asks for x-acme" in body
    # Hostile text: no header injected, no raw CR/LF in the body's line.
    assert to_carol["Bcc"] is None
    assert all(m["Bcc"] is None for _r, m in mailbox.messages)
    assert all(rcpts != ["mallory@evil.example"] for rcpts, _m in mailbox.messages)
    (to_bob,) = mailbox.to("bob@acme.example")
    assert f"your request {request} waits for carol (the owner of x-acme)" in _body(to_bob)
    (to_alice,) = mailbox.to("alice@acme.example")
    assert "vault-wide" in _body(to_alice) or f"request {request}" in _body(to_alice)
    (post,) = hook.posts
    assert "&lt;https://evil.example|click&gt; &lt;!channel&gt;" in post["text"]
    assert "<!channel>" not in json.dumps(post)
    assert "<https://evil.example" not in json.dumps(post)
    assert all(b["text"]["type"] == "plain_text" for b in post["blocks"])
    assert post["unfurl_links"] is False
    assert {m["to"] for m in sent["messages"] if m["sent"]} >= {"carol", "bob", "alice", "webhook"}
    assert CANARY_PASSWORD not in json.dumps([_body(m) for _r, m in mailbox.messages]) + json.dumps(hook.posts)
    # Nothing changed: nothing is sent again the same day.
    mailbox.messages.clear()
    hook.posts.clear()
    again = _notify(g, env)
    assert again["messages"] == []
    assert mailbox.messages == []
    assert hook.posts == []
    # A decision is news for the requester on the next run.
    g.ok("access", "deny", request, "--reason", "not this week", as_="carol")
    _notify(g, env)
    (to_bob,) = mailbox.to("bob@acme.example")
    assert f"your request {request} for x-acme was denied by carol: not this week" in _body(to_bob)
    assert mailbox.to("carol@acme.example") == [], "nothing new for carol"
    # What is still due is told again, once a day.
    g.ok("access", "grant", "x-acme", "bob", "--reason", "launch", "--for", "3d")
    mailbox.messages.clear()
    _notify(g, env)
    assert "your grant of x-acme ends at" in _body(mailbox.to("bob@acme.example")[0])
    mailbox.messages.clear()
    _notify(g, env)
    assert mailbox.to("bob@acme.example") == []
    g.later(timedelta(hours=25))
    _notify(g, env)
    assert "your grant of x-acme ends at" in _body(mailbox.to("bob@acme.example")[0]), "reminded a day later"


def test_addresses_come_from_the_signed_log_not_the_rows(
    notified: tuple[Govern, Mailbox, Hook, dict[str, str]],
) -> None:
    g, mailbox, _hook, env = notified
    sqlhelp.sql(g.db, "UPDATE person SET email = 'mallory@evil.example' WHERE handle = 'carol'")
    g.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    _notify(g, env)
    assert mailbox.to("carol@acme.example"), "carol's address is the one her signed staff.added gives"
    assert mailbox.to("mallory@evil.example") == []


def test_offboarding_is_news_for_admins(notified: tuple[Govern, Mailbox, Hook, dict[str, str]]) -> None:
    g, mailbox, _hook, env = notified
    _notify(g, env)
    mailbox.messages.clear()
    g.ok("offboard", "start", "carol", "--reason", "left the company")
    _notify(g, env)
    body = _body(mailbox.to("alice@acme.example")[0])
    assert "alice started offboarding carol" in body
    assert "offboarding of carol, step" in body


def test_notify_is_for_admins_and_auditors(notified: tuple[Govern, Mailbox, Hook, dict[str, str]]) -> None:
    g, _mailbox, _hook, env = notified
    refused = g("notify", as_="bob", passphrase=None, env=env)
    assert refused.code == 4
    g.enrol("audrey", role="auditor")
    _notify(g, env, as_="audrey")


def test_dry_run_sends_and_records_nothing(notified: tuple[Govern, Mailbox, Hook, dict[str, str]]) -> None:
    g, mailbox, hook, env = notified
    g.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    dry = _notify(g, env, "--dry-run")
    assert dry["messages"]
    assert not any(m["sent"] for m in dry["messages"])
    assert mailbox.messages == []
    assert hook.posts == []
    real = _notify(g, env)
    assert len(real["messages"]) == len(dry["messages"]), "the dry run remembered nothing"


def test_wrong_smtp_password_is_exit_9_without_the_secret(
    notified: tuple[Govern, Mailbox, Hook, dict[str, str]],
) -> None:
    g, mailbox, hook, env = notified
    g.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    wrong = {**env, "TEST_SMTP_PASSWORD": "CANARY-wrong-smtp-password"}
    result = g("notify", as_="alice", passphrase=None, env=wrong)
    assert result.code == 9
    assert "refused the SMTP username or password" in result.err
    assert "CANARY-wrong-smtp-password" not in result.err + result.out
    assert mailbox.messages == []
    assert hook.posts, "the webhook still got its digest"
    hook.posts.clear()
    _notify(g, env)
    assert mailbox.messages, "the e-mails that failed are sent on the next run"
    assert hook.posts == [], "the webhook digest is not sent twice"


def test_webhook_failure_is_exit_9_without_the_url(notified: tuple[Govern, Mailbox, Hook, dict[str, str]]) -> None:
    g, _mailbox, hook, env = notified
    g.ok("access", "request", "x-acme", "--reason", "cover", as_="bob")
    hook.status = 500
    result = g("notify", as_="alice", passphrase=None, env=env)
    assert result.code == 9
    assert "the webhook answered HTTP 500" in result.err
    assert WEBHOOK_TOKEN not in result.err


@pytest.mark.parametrize(
    ("body", "mode", "message"),
    [
        (None, 0o600, "no notification config at"),
        ("[smtp\n", 0o600, "is not valid TOML"),
        ("[notify]\nfrom = 'a@b.example'\n[smtp]\nhost = 'mail.example'\nbogus = 1\n", 0o600, "unknown key smtp.bogus"),
        ("[notify]\nfrom = 'a@b.example'\n[smtp]\nhost = 'mail.example'\nusername = 'u'\npassword = 'CANARY-inline'\n",
         0o644, "can be read by others"),
        ("[notify]\nfrom = 'a@b.example'\n[smtp]\nhost = 'mail.example'\nsecurity = 'none'\n", 0o600,
         "only to a loopback host"),
        ("[webhook]\nurl = 'http://hooks.example/x'\n", 0o600, "must be https://"),
        ("[webhook]\nurl_env = 'NOT_SET_ANYWHERE'\n", 0o600, "which is not set"),
        ("[notify]\nfrom = 'a@b.example'\n", 0o600, "there is nowhere to send"),
        ("[people]\nbob = 'not an address\\r\\nBcc: x@y'\n", 0o600, "is not an e-mail address"),
    ],
)  # fmt: skip
def test_config_errors_are_exit_2_and_name_the_problem(
    vault: Govern, tmp_path: Path, body: str | None, mode: int, message: str
) -> None:
    path = tmp_path / "bad.toml"
    if body is not None:
        path.write_text(body, encoding="utf-8")
        os.chmod(path, mode)
    result = vault("notify", as_="alice", passphrase=None, env={"GOVERN_CONFIG": str(path)})
    assert result.code == 2, result.err
    assert message in result.err
    assert "CANARY-inline" not in result.err


def _digest(text: str) -> tuple[Any, list[Any]]:
    from govern.services.notify import Digest, Line

    line = Line("decide-request:1", "waiting", text)
    return Digest("carol", "email", "carol@acme.example", "govern: {n} item(s) for carol", [line]), [line]


def test_crlf_in_a_reason_injects_no_email_header(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from govern.services.notify import NotifyConfig, email_message

    config = NotifyConfig(tmp_path / "c.toml", "govern@acme.example", None, None, {}, [])
    digest, lines = _digest(HOSTILE)
    raw = email_message(config, digest, lines, datetime(2026, 11, 29, tzinfo=UTC)).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert sorted(parsed.keys()) == sorted(["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
                                            "Content-Type", "Content-Transfer-Encoding", "MIME-Version"])  # fmt: skip
    assert b"\r\nBcc:" not in raw.split(b"\n\n", 1)[0]
    assert "\\x0d\\x0aBcc: mallory@evil.example" in _body(parsed)  # type: ignore[arg-type]


def test_slack_markup_in_a_reason_is_neutralised() -> None:
    from govern.services.notify import webhook_payload

    digest, lines = _digest("<https://evil.example|click here> <!channel> <@U0123> & more")
    payload = json.dumps(webhook_payload(digest, lines))
    for raw in ("<https://", "<!channel>", "<@U0123>", "|click here>"):
        assert raw not in payload
    assert "&lt;!channel&gt;" in payload
    assert "&amp; more" in payload
