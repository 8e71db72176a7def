"""``govern import``: bring a password manager's export into the vault.

A plan is made first, without a passphrase: every entry is read, checked and given an
account slug; bad input stops everything before anything is written. ``apply`` then
writes the entries (account, data key, sealed version, signed events) in transactions of
``BATCH`` entries under one unlock, so an import that is interrupted can be run again:
what was committed exists and is skipped (or, with ``update``, found unchanged), the rest
is created. Every secret is sealed by
:func:`govern.services.secrets.seal_given`, exactly as ``secret set`` seals it.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from sqlmodel import select

from govern import validate
from govern.context import Context, Unlocked, acting, reading
from govern.db import WriteTx
from govern.errors import Conflict, InvalidInput
from govern.models import Account
from govern.platforms import broken_rules, rules_for
from govern.services.accounts import DEFAULT_MAX_HOLDERS, create_account
from govern.services.common import get_account, require_role
from govern.services.formats import Entry, read_export
from govern.services.secrets import seal_given
from govern.timeutil import parse_duration
from govern.totp import normalise_key, uri_from_key, validate_uri

# Hosts of each platform's login pages (and their subdomains).
PLATFORM_HOSTS: dict[str, tuple[str, ...]] = {
    "x": ("x.com", "twitter.com"),
    "instagram": ("instagram.com",),
    "facebook": ("facebook.com",),
    "linkedin": ("linkedin.com",),
    "tiktok": ("tiktok.com",),
    "youtube": ("youtube.com", "accounts.google.com"),
}
SLUG_PREFIX = {
    "x": "x",
    "instagram": "ig",
    "facebook": "fb",
    "linkedin": "li",
    "tiktok": "tt",
    "youtube": "yt",
    "other": "other",
}
WEAK_REASON = "imported as the export holds it"


def platform_of(url: str) -> str | None:
    """The social platform a login URL belongs to, or None."""
    text = url.strip()
    if not text:
        return None
    if "://" not in text:
        text = "https://" + text
    try:
        host = (urlparse(text).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    for platform, hosts in PLATFORM_HOSTS.items():
        for known in hosts:
            if host == known or host.endswith("." + known):
                return platform
    return None


def _slug_part(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lstrip("@").lower()).strip("-")[:40]


@dataclass
class Item:
    """One entry of the export and what the import does with it."""

    where: str
    action: str  # create, update, skip
    why: str = ""
    slug: str = ""
    platform: str = ""
    handle: str = ""
    fields: list[str] = field(default_factory=list)
    totp: bool = False
    weak: bool = False
    dropped: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """What the dry run shows: never a value."""
        return {
            "entry": self.where,
            "action": self.action,
            "account": self.slug or None,
            "platform": self.platform or None,
            "handle": self.handle or None,
            "fields": self.fields,
            "totp": self.totp,
            "weak_password": self.weak,
            "dropped": self.dropped,
            "why": self.why or None,
        }


@dataclass
class Plan:
    fmt: str
    sha256: str
    items: list[Item]

    @property
    def writes(self) -> list[Item]:
        return [i for i in self.items if i.action in ("create", "update")]


def _located(fmt: str, where: str, exc: InvalidInput) -> InvalidInput:
    return InvalidInput(f"{fmt}: {where}: {exc}")


def _totp_uri(fmt: str, entry: Entry, label: str) -> str:
    raw = entry.totp.strip()
    try:
        if raw.lower().startswith("otpauth://"):
            uri = validate_uri(raw)
            if "encoder=" in uri.lower():
                raise InvalidInput("a Steam or other encoded seed is not a standard TOTP seed")
            return uri
        if raw.lower().startswith("steam://"):
            raise InvalidInput("a Steam Guard seed is not a standard TOTP seed")
        normalise_key(raw, "the TOTP field")
        return uri_from_key(raw, label)
    except InvalidInput as exc:
        raise InvalidInput(f"{fmt}: {entry.where}: the TOTP field is not a valid 2FA seed: {exc}") from None


def _identity(fmt: str, entry: Entry, taken: set[str], *, include_all: bool) -> tuple[str, str, str] | str:
    """``(platform, slug, handle)`` of an entry, or why it is skipped."""
    if fmt == "csv":
        platform, slug, handle = entry.platform, entry.account, entry.handle
        try:
            platform = validate.platform(platform)
        except InvalidInput as exc:
            raise _located(fmt, entry.where, exc) from None
    else:
        platform = platform_of(entry.url) or ""
        if not platform:
            if not include_all:
                return "not a social platform (--all imports it as 'other')"
            platform = "other"
        # The handle is public (account lists, auditors): a login name, never an e-mail address,
        # which stays sealed in the username field; then the entry's title.
        login = entry.username.strip()
        handle = login if login and "@" not in login.lstrip("@") else entry.title.strip()
        base = f"{SLUG_PREFIX[platform]}-{_slug_part(handle) or 'account'}"[:60].strip("-")
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
    try:
        slug = validate.slug(slug)
        handle = validate.text(handle or slug, "platform handle")
    except InvalidInput as exc:
        raise _located(fmt, entry.where, exc) from None
    if slug in taken:
        raise InvalidInput(f"{fmt}: {entry.where}: account {slug} appears twice in the file")
    taken.add(slug)
    return platform, slug, handle


def _values(fmt: str, entry: Entry, slug: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The secret fields to seal, and the account settings only the generic CSV gives."""
    values: dict[str, str] = {}
    settings: dict[str, Any] = {}
    try:
        if entry.username.strip():
            values["username"] = validate.secret_value(entry.username.strip(), "username")
        if entry.password:
            values["password"] = validate.secret_value(entry.password, "password")
        settings["team"] = validate.text(entry.team, "team", max_length=100) if entry.team else None
        settings["owner"] = validate.handle(entry.owner) if entry.owner else None
        settings["rotate_every"] = parse_duration(entry.rotate_every) if entry.rotate_every else None
    except InvalidInput as exc:
        raise _located(fmt, entry.where, exc) from None
    if entry.totp.strip():
        values["totp-uri"] = _totp_uri(fmt, entry, slug)
    return values, settings


def _item(fmt: str, entry: Entry, existing: set[str], taken: set[str], *, include_all: bool, update: bool) -> Item:
    if entry.kind != "login":
        return Item(where=entry.where, action="skip", why=f"not a login ({entry.kind})")
    identity = _identity(fmt, entry, taken, include_all=include_all)
    if isinstance(identity, str):
        return Item(where=entry.where, action="skip", why=identity)
    platform, slug, handle = identity
    values, settings = _values(fmt, entry, slug)
    item = Item(
        where=entry.where,
        action="create",
        slug=slug,
        platform=platform,
        handle=handle,
        fields=[name for name in ("username", "password", "totp-uri") if name in values],
        totp="totp-uri" in values,
        weak=bool("password" in values and broken_rules(values["password"], rules_for(platform))),
        dropped=list(entry.dropped),
        values=values,
        settings={**settings, "platform": platform, "handle": handle},
    )
    if not values:
        item.action, item.why = "skip", "no username, password or 2FA seed"
    elif slug in existing and update:
        item.action, item.why = "update", "exists: a new version"
    elif slug in existing:
        item.action, item.why = "skip", "exists (--update adds a version)"
    return item


def plan(ctx: Context, fmt: str, raw: bytes, *, include_all: bool = False, update: bool = False) -> Plan:
    """Read and check the whole export; nothing is written and no passphrase is asked."""
    entries = read_export(fmt, raw)
    with reading(ctx) as (session, _me):
        existing = set(session.exec(select(Account.slug)).all())
    taken: set[str] = set()
    items = [_item(fmt, e, existing, taken, include_all=include_all, update=update) for e in entries]
    return Plan(fmt=fmt, sha256=hashlib.sha256(raw).hexdigest(), items=items)


# Entries written per transaction. Each transaction verifies the log, compares the tables with
# it and moves the client's pin, work that grows with the vault: one per entry made 1,000
# entries quadratic (bench/import.py). A batch commits whole or not at all, and a re-run skips
# what committed, so an interrupted import still finishes without duplicates.
BATCH = 25


def _write(tx: WriteTx, me: Unlocked, item: Item, source: dict[str, str]) -> str | None:
    """One entry inside a transaction: ``created``, ``updated``, ``unchanged`` or None (already there)."""
    session = tx.session
    exists = session.exec(select(Account.id).where(Account.slug == item.slug)).first() is not None
    extra = {"import": {**source, "entry": item.where}}
    if exists and item.action == "create":
        return None  # committed by an earlier, interrupted run of this import
    if exists:
        try:
            seal_given(tx, me, get_account(session, item.slug), item.values, allow_weak=WEAK_REASON, extra=extra)
        except Conflict as exc:
            if "nothing changed" not in str(exc):
                raise
            return "unchanged"  # this file's values are already the current ones
        return "updated"
    settings = item.settings
    account, _view = create_account(
        tx,
        me,
        item.slug,
        platform=settings["platform"],
        handle=settings["handle"],
        team=settings["team"],
        owner=settings["owner"],
        rotate_every=settings["rotate_every"],
        max_holders=DEFAULT_MAX_HOLDERS,
        with_key=False,  # sealing the first version creates it
    )
    seal_given(tx, me, account, item.values, allow_weak=WEAK_REASON, extra=extra)
    return "created"


def apply(ctx: Context, the_plan: Plan, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the plan in transactions of ``BATCH`` entries, one unlock for all; re-runnable.

    The last transaction also appends ``import.completed`` with the counts.
    """
    writes = the_plan.writes
    source = {"format": the_plan.fmt, "sha256": the_plan.sha256}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "already_there": 0}
    skipped = len(the_plan.items) - len(writes)
    batches = [writes[i : i + BATCH] for i in range(0, len(writes), BATCH)] or [[]]
    done = 0
    for number, batch in enumerate(batches, 1):
        with acting(ctx) as (tx, me):
            require_role(me.person, ["admin"], "import credentials")
            these = dict.fromkeys(counts, 0)
            for item in batch:
                these[_write(tx, me, item, source) or "already_there"] += 1
            if number == len(batches):
                total = {k: counts[k] + these[k] for k in counts}
                tx.audit.append(
                    "import.completed", data={**source, **total, "skipped": skipped, "entries": len(the_plan.items)}
                )
        counts = {k: counts[k] + these[k] for k in counts}
        done += len(batch)
        if progress is not None and writes:
            progress(done, len(writes))
    return {**source, **counts, "skipped": skipped, "entries": len(the_plan.items)}
