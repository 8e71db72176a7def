"""``govern notify``: each person's inbox digest, and the vault-wide one for admins, by e-mail
(SMTP with STARTTLS and authentication) and a Slack-compatible webhook.

Meant for cron. It reads on the verified path (no passphrase; an admin or an auditor runs
it, since it reads everyone's inbox), and it sends a line only when it is new or, for what
is still due, once a day: what was sent is remembered in a file in this client's state
directory (``state_dir()/notify/VAULT_ID.json``, 0600), never in the shared database,
whose rows anyone with database access could write. Request decisions, grants,
revocations and offboarding cases since the previous run are told to the people concerned.

Configuration: a TOML file (``GOVERN_CONFIG``, else ``config.toml`` in the platform's
config directory), validated strictly (exit 2 naming the key). Secrets (the SMTP password,
the webhook URL) come from an environment variable the file names, or from the file
itself only when nobody but its owner can read it; never from the command line.

Text people typed (reasons, notes) is hostile: header values never carry a line break,
body lines have every control character made visible, and for Slack ``&``, ``<`` and
``>`` are escaped (no links, mentions or ``<!channel>``) and the blocks are plain text.
"""

import ipaddress
import json
import os
import re
import smtplib
import ssl
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from audit.chain import EventRecord
from audit.state import LogState
from audit.stream import stream_events
from govern import validate
from govern.context import Context, verified_reading
from govern.errors import Denied, GovernError, IntegrityFailure, InvalidInput, Unavailable
from govern.models import Person
from govern.services.inbox import items_for, vault_items
from govern.settings import APP_NAME, state_dir
from govern.timeutil import format_time, parse_time

CONFIG_MAX_BYTES = 64 * 1024
REMIND_AFTER = timedelta(days=1)  # what is still due is told again at most once a day
FORGET_EVENTS_AFTER = timedelta(days=7)
SLACK_SECTION_MAX = 2900  # Slack: 3000 characters per section text
SLACK_BLOCKS_MAX = 45  # Slack: 50 blocks per message
WEBHOOK = "webhook"


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # starttls | tls | none (loopback hosts only)
    username: str | None
    password: str | None = field(repr=False)
    ca_file: str | None
    timeout: float


@dataclass(frozen=True)
class WebhookConfig:
    url: str = field(repr=False)
    ca_file: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NotifyConfig:
    path: Path
    sender: str | None
    smtp: SmtpConfig | None
    webhook: WebhookConfig | None
    people: dict[str, str]
    vault_digest_to: list[str]


def config_path() -> Path:
    """``GOVERN_CONFIG``, else ``config.toml`` in the platform's per-user config directory."""
    explicit = os.environ.get("GOVERN_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


class ConfigError(InvalidInput):
    """The notification config is missing or invalid (exit 2)."""


def _bad(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message} (see docs/notifications.md)")


def _table(path: Path, raw: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any] | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(path, f"[{name}] must be a table")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _bad(path, f"unknown key {name}.{unknown[0]}")
    return value


def _text(path: Path, table: dict[str, Any], where: str, key: str, *, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise _bad(path, f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value.strip() or re.search(r"[\x00-\x1f\x7f]", value):
        raise _bad(path, f"{where}.{key} must be a non-empty line of text")
    return value.strip()


def _number(path: Path, table: dict[str, Any], where: str, key: str, default: float, low: float, high: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(path, f"{where}.{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _address(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(path, f"{where} must be an e-mail address")
    try:
        return validate.email(value)
    except InvalidInput:
        raise _bad(path, f"{where} is not an e-mail address") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret(path: Path, table: dict[str, Any], where: str, key: str, private: bool, *, required: bool) -> str | None:
    """``key`` in the file (only if the file is private) or ``key_env``: the variable to read."""
    inline = table.get(key)
    env_name = _text(path, table, where, f"{key}_env")
    if inline is not None and env_name is not None:
        raise _bad(path, f"give {where}.{key} or {where}.{key}_env, not both")
    if inline is not None:
        if not isinstance(inline, str) or not inline:
            raise _bad(path, f"{where}.{key} must be text")
        if not private:
            raise _bad(
                path,
                f"{where}.{key} is a secret but the file can be read by others: chmod 600 it, or use {key}_env",
            )
        return inline
    if env_name is not None:
        value = os.environ.get(env_name)
        if not value:
            raise _bad(path, f"{where}.{key}_env names {env_name}, which is not set")
        return value
    if required:
        raise _bad(path, f"{where}.{key}_env (or {where}.{key} in a 0600 file) is required")
    return None


def _smtp_config(path: Path, raw: dict[str, Any], private: bool, sender: str | None) -> SmtpConfig | None:
    smtp_raw = _table(
        path,
        raw,
        "smtp",
        {"host", "port", "security", "username", "password", "password_env", "ca_file", "timeout"},
    )
    if smtp_raw is None:
        return None
    host = _text(path, smtp_raw, "smtp", "host", required=True)
    assert host is not None
    security = _text(path, smtp_raw, "smtp", "security") or "starttls"
    if security not in ("starttls", "tls", "none"):
        raise _bad(path, "smtp.security must be starttls, tls or none")
    if security == "none" and not _is_loopback(host):
        raise _bad(path, "smtp.security = none is allowed only to a loopback host: use starttls or tls")
    port = int(_number(path, smtp_raw, "smtp", "port", 465 if security == "tls" else 587, 1, 65535))
    username = _text(path, smtp_raw, "smtp", "username")
    password = _secret(path, smtp_raw, "smtp", "password", private, required=username is not None)
    if password is not None and username is None:
        raise _bad(path, "smtp.password needs smtp.username")
    if password is not None and security == "none":
        raise _bad(path, "a password is never sent without TLS: smtp.security must be starttls or tls")
    if sender is None:
        raise _bad(path, "notify.from is required to send e-mail")
    return SmtpConfig(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        ca_file=_text(path, smtp_raw, "smtp", "ca_file"),
        timeout=_number(path, smtp_raw, "smtp", "timeout", 30, 1, 600),
    )


def _webhook_config(path: Path, raw: dict[str, Any], private: bool) -> WebhookConfig | None:
    hook_raw = _table(path, raw, "webhook", {"url", "url_env", "ca_file", "timeout"})
    if hook_raw is None:
        return None
    url = _secret(path, hook_raw, "webhook", "url", private, required=True)
    assert url is not None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _bad(path, "the webhook URL must be an https:// URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise _bad(path, "the webhook URL must be https:// (plain http only to a loopback host)")
    return WebhookConfig(
        url=url,
        ca_file=_text(path, hook_raw, "webhook", "ca_file"),
        timeout=_number(path, hook_raw, "webhook", "timeout", 10, 1, 120),
    )


def _people(path: Path, raw: dict[str, Any]) -> dict[str, str]:
    people: dict[str, str] = {}
    people_raw = raw.get("people", {})
    if not isinstance(people_raw, dict):
        raise _bad(path, "[people] must map handles to e-mail addresses")
    for name, address in people_raw.items():
        try:
            handle = validate.handle(name)
        except InvalidInput:
            raise _bad(path, f"people: {name!r} is not a handle") from None
        people[handle] = _address(path, f"people.{handle}", address)
    return people


def load_config(path: Path | None = None) -> NotifyConfig:
    """Read and validate the notification config; every problem is exit 2, naming the key."""
    import tomllib

    path = path or config_path()
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ConfigError(
            f"no notification config at {path}: write one (see docs/notifications.md) or set GOVERN_CONFIG"
        ) from None
    except OSError as error:
        raise _bad(path, f"cannot read it ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise _bad(path, "is not a regular file")
    if info.st_size > CONFIG_MAX_BYTES:
        raise _bad(path, f"is larger than {CONFIG_MAX_BYTES} bytes")
    private = not info.st_mode & 0o077 and info.st_uid == os.getuid()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise _bad(path, f"is not valid TOML: {error}") from None
    except OSError as error:
        raise _bad(path, f"cannot read it ({error.strerror})") from None
    unknown = sorted(set(raw) - {"notify", "smtp", "webhook", "people"})
    if unknown:
        raise _bad(path, f"unknown table or key {unknown[0]}")
    notify = _table(path, raw, "notify", {"from", "vault_digest_to"}) or {}
    sender = _text(path, notify, "notify", "from")
    if sender is not None:
        sender = _address(path, "notify.from", sender)
    extra = notify.get("vault_digest_to", [])
    if not isinstance(extra, list):
        raise _bad(path, "notify.vault_digest_to must be a list of e-mail addresses")
    vault_digest_to = [_address(path, "notify.vault_digest_to", a) for a in extra]
    smtp = _smtp_config(path, raw, private, sender)
    webhook = _webhook_config(path, raw, private)
    people = _people(path, raw)
    if smtp is None and webhook is None:
        raise _bad(path, "configure [smtp], [webhook] or both: there is nowhere to send")
    return NotifyConfig(path, sender, smtp, webhook, people, vault_digest_to)


# -- hostile text --------------------------------------------------------------------------------

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """One line: every control character (CR and LF included) written as a visible escape."""
    return _CONTROLS.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def header(text: str) -> str:
    """A header value: no line break can start a new header (``plain`` escapes them all)."""
    return plain(text)


def slack(text: str) -> str:
    """Slack's own escaping: no ``<link|label>``, ``<@user>`` or ``<!channel>`` from data."""
    return plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- what to tell whom ---------------------------------------------------------------------------


@dataclass
class Line:
    key: str
    severity: str
    text: str


@dataclass
class Digest:
    recipient: str  # a handle, or "webhook"
    channel: str  # email | webhook
    address: str | None
    title: str
    lines: list[Line]
    vault_wide: bool = False


def _line_of(item: dict[str, Any]) -> Line:
    where = f"{item['account']}: " if item.get("account") else ""
    return Line(item["key"], item["severity"], f"[{item['severity']}] {where}{item['what']}")


def _signed_emails(state: LogState) -> dict[str, str]:
    """E-mail addresses from the signed ``staff.added`` events, as the verified log gives them.

    Never from the ``person`` rows, nor from the ``audit_event`` rows: a client verifies only
    what is new since its pin, so an older event's row rewritten behind its back (an attacker's
    address in someone's ``staff.added``) would be read but never checked again.
    """
    out: dict[str, str] = {}
    for handle, person in state.people.items():
        try:
            if person.email is not None:
                out[handle] = validate.email(person.email)
        except InvalidInput:
            continue
    return out


_NEWS = frozenset(
    {
        "access.approved",
        "access.denied",
        "access.granted",
        "access.revoked",
        "access.extended",
        "offboard.started",
        "offboard.completed",
    }
)


def _chained_to_head(session: Session, after: int, upto: int, head: str) -> list[EventRecord]:
    """The events ``after < seq <= upto``, each proven by the hash chain to lead to the verified head.

    A client verifies only what is new since its pin, so rows below it could have been
    rewritten since; each one here must hash to what the next one names as its ``prev``,
    up to the event at ``upto`` whose hash the verified state holds.
    """
    events = [e for e in stream_events(session, after=after) if e.seq <= upto]
    expected = head
    for event in reversed(events):
        if event.hash != expected or event.computed_hash() != event.hash:
            raise IntegrityFailure(f"event {event.seq} is not the one this client verified: the log was rewritten")
        expected = event.prev
    if [e.seq for e in events] != list(range(after + 1, upto + 1)):
        raise IntegrityFailure("the log has gaps since the last notification: it was rewritten")
    return events


def _event_lines(session: Session, after: int, upto: int, head: str) -> dict[str, list[Line]]:
    """What happened since the previous run that the people concerned should hear of."""
    out: dict[str, list[Line]] = {}
    admins = [
        p.handle for p in session.exec(select(Person).where(Person.role == "admin", Person.status == "active")).all()
    ]

    def tell(handles: list[str], seq: int, text: str) -> None:
        for handle in dict.fromkeys(handles):
            out.setdefault(handle, []).append(Line(f"event:{seq}", "info", f"[news] {text}"))

    rows = [event for event in _chained_to_head(session, after, upto, head) if event.action in _NEWS]
    for event in rows:
        try:
            data = json.loads(event.data)
        except ValueError:
            data = {}
        subject, account, actor = event.subject or "?", event.account or "?", event.actor
        reason = f": {event.reason}" if event.reason else ""
        request = data.get("request") if isinstance(data, dict) else None
        # A new request reaches whoever can decide it as a 'decide-request' line of their inbox.
        if event.action == "access.approved":
            tell([subject], event.seq, f"your request {request} for {account} was approved by {actor}")
        elif event.action == "access.denied":
            tell([subject], event.seq, f"your request {request} for {account} was denied by {actor}{reason}")
        elif event.action == "access.granted" and request is None:
            tell([subject], event.seq, f"{actor} granted you {account}{reason}")
        elif event.action == "access.revoked":
            tell([subject], event.seq, f"{actor} revoked your access to {account}{reason}")
        elif event.action == "access.extended":
            tell([subject], event.seq, f"your grant of {account} now ends at {data.get('until')}")
        elif event.action == "offboard.started":
            tell(admins, event.seq, f"{actor} started offboarding {subject} (case {data.get('case')}){reason}")
        elif event.action == "offboard.completed":
            tell(admins, event.seq, f"the offboarding of {subject} is complete (case {data.get('case')})")
    return out


def _merge(*groups: list[Line]) -> list[Line]:
    seen: dict[str, Line] = {}
    for group in groups:
        for line in group:
            seen.setdefault(line.key, line)
    return list(seen.values())


def plan(session: Session, state: LogState, last_seq: int | None, cfg: NotifyConfig, now: datetime) -> list[Digest]:
    """Every digest this run could send (before the memory of what was sent filters it)."""
    state_seq = state.seq
    emails = {**_signed_emails(state), **cfg.people}
    news = {} if last_seq is None else _event_lines(session, last_seq, state_seq, state.head)
    everything = [_line_of(i) for i in vault_items(session, now, state)]
    digests = []
    people = session.exec(select(Person).where(Person.status == "active").order_by(col(Person.handle))).all()
    for person in people:
        lines = [_line_of(i) for i in items_for(session, person, now, state)]
        if person.role == "admin":
            lines = _merge(lines, everything)
        lines = _merge(lines, news.get(person.handle, []))
        if cfg.smtp is not None:
            address = emails.get(person.handle)
            title = f"govern: {{n}} item(s) for {person.handle}"
            digests.append(Digest(person.handle, "email", address, title, lines, person.role == "admin"))
    if cfg.smtp is not None:
        for address in cfg.vault_digest_to:
            digests.append(
                Digest(f"vault:{address}", "email", address, "govern: {n} vault-wide item(s)", everything, True)
            )
    if cfg.webhook is not None:
        digests.append(Digest(WEBHOOK, "webhook", None, "govern: {n} vault-wide item(s)", everything, True))
    return digests


# -- what was sent (this client's state directory, never the database) -----------------------------


def _memory_path(vault_id: str) -> Path:
    if not validate.is_uuid(vault_id):
        raise InvalidInput(f"the vault id {vault_id!r} is not a UUID")
    directory = state_dir() / "notify"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (directory.parent, directory):
        if folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)
    return directory / f"{vault_id}.json"


@dataclass
class Memory:
    last_seq: int | None = None
    sent: dict[str, dict[str, str]] = field(default_factory=dict)  # recipient -> key -> when sent


def load_memory(vault_id: str) -> Memory:
    path = _memory_path(vault_id)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        last = raw.get("last_seq")
        sent = {str(r): {str(k): str(v) for k, v in keys.items()} for r, keys in dict(raw.get("sent", {})).items()}
        return Memory(last if isinstance(last, int) else None, sent)
    except FileNotFoundError:
        return Memory()
    except (OSError, ValueError, TypeError, AttributeError):
        # A damaged memory only means people may hear something again: start afresh, say so.
        return Memory()


def save_memory(vault_id: str, memory: Memory) -> None:
    path = _memory_path(vault_id)
    fd, tmp = tempfile.mkstemp(prefix=".notify-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"last_seq": memory.last_seq, "sent": memory.sent}, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def due_lines(digest: Digest, memory: Memory, now: datetime) -> list[Line]:
    """Lines not sent to this recipient before, or still due and last sent a day ago or more."""
    sent = memory.sent.get(digest.recipient, {})
    out = []
    for line in digest.lines:
        when = sent.get(line.key)
        still_due = line.severity in ("overdue", "due", "waiting")
        if when is None or (still_due and parse_time(when) <= now - REMIND_AFTER):
            out.append(line)
    return out


def remember(memory: Memory, digest: Digest, sent: list[Line], now: datetime) -> None:
    """Record what was sent; forget items that are gone (if they come back, they are news)."""
    previous = memory.sent.get(digest.recipient, {})
    current = {line.key for line in digest.lines}
    kept = {
        key: when
        for key, when in previous.items()
        if key in current or (key.startswith("event:") and parse_time(when) > now - FORGET_EVENTS_AFTER)
    }
    for line in sent:
        kept[line.key] = format_time(now) or ""
    memory.sent[digest.recipient] = kept


# -- delivery ------------------------------------------------------------------------------------


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise InvalidInput(f"cannot load the CA file {ca_file}: {error}") from None


def email_message(cfg: NotifyConfig, digest: Digest, lines: list[Line], now: datetime) -> EmailMessage:
    assert cfg.sender is not None
    assert digest.address is not None
    overdue = sum(1 for line in lines if line.severity == "overdue")
    subject = digest.title.format(n=len(lines)) + (f", {overdue} overdue" if overdue else "")
    message = EmailMessage()
    message["From"] = header(cfg.sender)
    message["To"] = header(digest.address)
    message["Subject"] = header(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=cfg.sender.rsplit("@", 1)[-1])
    message["Auto-Submitted"] = "auto-generated"
    body = [plain(line.text) for line in lines]
    footer = "the vault-wide list" if digest.vault_wide else "your full list"
    body += ["", f"Run 'govern inbox' for {footer}; this is sent by 'govern notify'."]
    message.set_content("\n".join(body) + "\n")
    return message


class LoginRefused(Exception):
    """The SMTP server did not accept the username and password."""


@contextmanager
def smtp_session(config: SmtpConfig) -> Iterator[smtplib.SMTP]:
    context = _tls_context(config.ca_file)
    client: smtplib.SMTP
    if config.security == "tls":
        client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    try:
        client.ehlo()
        if config.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.username is not None and config.password is not None:
            try:
                client.login(config.username, config.password)
            except (smtplib.SMTPAuthenticationError, smtplib.SMTPServerDisconnected):
                # Some servers hang up on a failed login instead of answering 535.
                raise LoginRefused from None
        yield client
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def webhook_payload(digest: Digest, lines: list[Line]) -> dict[str, Any]:
    """Slack-compatible: ``text`` and plain-text ``blocks`` (no mrkdwn), both with Slack's own
    escaping of ``&``, ``<`` and ``>`` (no links, mentions or ``<!channel>`` from data)."""
    title = digest.title.format(n=len(lines))
    chunks: list[str] = []
    current = ""
    for line in lines:
        text = slack(line.text)
        if current and len(current) + len(text) + 1 > SLACK_SECTION_MAX:
            chunks.append(current)
            current = ""
        current = f"{current}\n{text}" if current else text[:SLACK_SECTION_MAX]
    if current:
        chunks.append(current)
    if len(chunks) > SLACK_BLOCKS_MAX:
        chunks = [*chunks[: SLACK_BLOCKS_MAX - 1], "… more: run 'govern inbox'"]
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": slack(title), "emoji": False}}]
    blocks += [{"type": "section", "text": {"type": "plain_text", "text": c, "emoji": False}} for c in chunks]
    return {
        "text": slack(title) + "\n" + "\n".join(slack(line.text) for line in lines),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def post_webhook(config: WebhookConfig, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=True).encode("ascii")
    request = urllib.request.Request(  # noqa: S310 (https, or http to a loopback host: checked at load)
        config.url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    context = _tls_context(config.ca_file) if config.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=config.timeout, context=context) as response:  # noqa: S310 (as above)
            if not 200 <= response.status < 300:
                raise Unavailable(f"the webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as error:
        raise Unavailable(f"the webhook answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Unavailable(f"the webhook could not be reached ({type(reason).__name__})") from None


# -- the command ---------------------------------------------------------------------------------


def _send_emails(
    cfg: NotifyConfig,
    to_send: list[tuple[Digest, list[Line]]],
    report: list[dict[str, Any]],
    memory: Memory,
    now: datetime,
) -> list[str]:
    failures: list[str] = []
    if cfg.smtp is None or not any(d.channel == "email" and d.address is not None for d, _l in to_send):
        return failures
    try:
        with smtp_session(cfg.smtp) as client:
            for (digest, lines), entry in zip(to_send, report, strict=True):
                if digest.channel != "email" or digest.address is None:
                    continue
                try:
                    client.send_message(email_message(cfg, digest, lines, now))
                except smtplib.SMTPRecipientsRefused:
                    failures.append(f"the mail server refused the address of {digest.recipient}")
                    continue
                entry["sent"] = True
                remember(memory, digest, lines, now)
    except LoginRefused:
        failures.append("the mail server refused the SMTP username or password")
    except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
        failures.append(f"could not send e-mail via {cfg.smtp.host}:{cfg.smtp.port} ({type(error).__name__})")
    return failures


def _send_webhooks(
    cfg: NotifyConfig,
    to_send: list[tuple[Digest, list[Line]]],
    report: list[dict[str, Any]],
    memory: Memory,
    now: datetime,
) -> list[str]:
    failures: list[str] = []
    for (digest, lines), entry in zip(to_send, report, strict=True):
        if digest.channel != "webhook" or cfg.webhook is None:
            continue
        try:
            post_webhook(cfg.webhook, webhook_payload(digest, lines))
        except GovernError as error:
            failures.append(str(error))
            continue
        entry["sent"] = True
        remember(memory, digest, lines, now)
    return failures


def notify(ctx: Context, cfg: NotifyConfig, *, dry_run: bool) -> dict[str, Any]:
    """Send what is new or due; return what was (or, with ``dry_run``, would be) sent."""
    with verified_reading(ctx) as (session, me, state):
        if me.role not in ("admin", "auditor"):
            raise Denied(f"{me.handle} is {me.role}; notify reads everyone's inbox: an admin or an auditor runs it")
        assert state.vault_id is not None
        vault_id = state.vault_id
        now = ctx.now()
        memory = load_memory(vault_id)
        digests = plan(session, state, memory.last_seq, cfg, now)
        upto = state.seq
    report: list[dict[str, Any]] = []
    failures: list[str] = []
    to_send = [(d, due_lines(d, memory, now)) for d in digests]
    to_send = [(d, lines) for d, lines in to_send if lines]
    for digest, lines in to_send:
        entry = {
            "to": digest.recipient,
            "channel": digest.channel,
            "address": digest.address,
            "lines": [line.text for line in lines],
            "sent": False,
        }
        if digest.channel == "email" and digest.address is None:
            entry["skipped"] = f"no e-mail address for {digest.recipient}: add one under [people] in the config"
        report.append(entry)
    if not dry_run:
        failures += _send_emails(cfg, to_send, report, memory, now)
        failures += _send_webhooks(cfg, to_send, report, memory, now)
        # Digests with nothing new still forget items that are gone.
        for digest in digests:
            if all(digest is not d for d, _l in to_send):
                remember(memory, digest, [], now)
        if not failures:
            # Each news line is remembered per recipient, so holding the sequence back after a
            # failure resends news only to whoever did not get it.
            memory.last_seq = upto
        elif memory.last_seq is None:
            memory.last_seq = upto
        save_memory(vault_id, memory)
    result = {"at": format_time(now), "dry_run": dry_run, "messages": report, "failures": failures}
    if failures:
        result["error"] = "; ".join(failures)
    return result
