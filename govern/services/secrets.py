"""Secrets: credential versions, reveals, history and TOTP codes.

Every reveal appends an audit event in the same transaction as the read, and the
value is returned only after that transaction commits (fail closed).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from audit.state import RETENTION_S, sealed_digest
from govern import validate
from govern.context import Context, Unlocked, acting, reading, vault_meta
from govern.custody import check_sealed, key_check_value, open_data_key, open_field, rekey, seal_field
from govern.db import WriteTx
from govern.errors import Conflict, Denied, InvalidInput, NotFound
from govern.exposure import FIELD_KIND, clear_exposures
from govern.models import Account, CredentialVersion, DataKey, Exposure, SealedField
from govern.platforms import broken_rules, generate_password, rules_for
from govern.services.common import (
    account_state,
    current_version,
    get_account,
    handles_by_id,
    live_grant,
    pending_rotation,
)
from govern.timeutil import format_time
from govern.totp import TotpCode, code_at, validate_uri

# Order in which fields are listed; also the only names that may be stored.
FIELD_ORDER = ("username", "password", "totp-uri", "recovery-codes")
# Superseded versions stay recoverable by admins for this long, then are destroyed.
RETENTION = timedelta(seconds=RETENTION_S)  # the rule of secret.destroyed counts the same


@dataclass(frozen=True)
class Reveal:
    account: str
    version: int
    field: str
    value: str
    warnings: list[str]


def may_decrypt(session: Session, account: Account, me: Unlocked, now: datetime, doing: str) -> None:
    """Role and grant check; the crypto layer checks the wrap independently."""
    if me.person.role == "auditor":
        raise Denied(f"{me.handle} is an auditor; auditors can never {doing}")
    if me.person.role == "admin":
        return
    if live_grant(session, account, me.person, now) is None:
        raise Denied(f"{me.handle} holds no live grant for {account.slug}: ask with 'govern access request'")


def open_values(tx: WriteTx, me: Unlocked, account: Account, version: CredentialVersion) -> dict[str, str]:
    """Every field of ``version``, decrypted with the actor's wrap of its data key."""
    session = tx.session
    data_key = session.get(DataKey, version.data_key_id)
    if data_key is None:
        raise NotFound(f"the key of {account.slug} version {version.number} is gone")
    meta = vault_meta(session)
    check_sealed(session, tx.state, account, version)
    key = open_data_key(session, meta, account, data_key, me, tx.state)
    rows = session.exec(select(SealedField).where(SealedField.version_id == version.id)).all()
    return {row.field: open_field(meta, account, version, row.field, key, row.ciphertext) for row in rows}


def open_one(tx: WriteTx, me: Unlocked, account: Account, version: CredentialVersion, field: str) -> str:
    session = tx.session
    row = session.exec(
        select(SealedField).where(SealedField.version_id == version.id, SealedField.field == field)
    ).first()
    if row is None:
        raise NotFound(f"{account.slug} version {version.number} has no {field} (it has: {version.fields or 'none'})")
    data_key = session.get(DataKey, version.data_key_id)
    if data_key is None:
        raise NotFound(f"the key of {account.slug} version {version.number} is gone")
    meta = vault_meta(session)
    check_sealed(session, tx.state, account, version)
    key = open_data_key(session, meta, account, data_key, me, tx.state)
    return open_field(meta, account, version, field, key, row.ciphertext)


def write_version(
    tx: WriteTx,
    me: Unlocked,
    account: Account,
    values: dict[str, str],
    changed: list[str],
    *,
    status: str,
    data_key: DataKey,
    key: bytes,
) -> CredentialVersion:
    """Seal ``values`` as a new version under ``data_key`` (its secret is ``key``)."""
    session = tx.session
    meta = vault_meta(session)
    numbers = session.exec(select(CredentialVersion.number).where(CredentialVersion.account_id == account.id)).all()
    number = max(numbers, default=0) + 1
    names = [name for name in FIELD_ORDER if name in values]
    assert account.id is not None
    assert data_key.id is not None
    version = CredentialVersion(
        account_id=account.id,
        number=number,
        data_key_id=data_key.id,
        status=status,
        fields=",".join(names),
        changed=",".join(n for n in FIELD_ORDER if n in changed),
        created_by=me.handle,
        created_at=tx.now,
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    sealed = {name: seal_field(meta, account, number, name, key, values[name]) for name in names}
    for name in names:
        session.add(SealedField(version_id=version.id, field=name, ciphertext=sealed[name]))
    tx.extras[f"content:{version.id}"] = {
        "data_key": data_key.id,
        "sealed": sealed_digest(sealed),
        "kcv": key_check_value(key),
    }
    return version


def content_commitment(tx: WriteTx, version: CredentialVersion) -> dict[str, Any]:
    """What the signed event creating ``version`` commits to: its data key and sealed fields."""
    commitment: dict[str, Any] = tx.extras[f"content:{version.id}"]
    return commitment


def supersede(tx: WriteTx, version: CredentialVersion) -> None:
    version.status = "superseded"
    version.retain_until = tx.now + RETENTION
    tx.session.add(version)


def checked_values(
    *,
    username: str | None,
    password: str | None,
    totp_uri: str | None,
    recovery_codes: list[str] | None,
) -> dict[str, str]:
    """The fields a person gave, validated (before any unlock); never echoes a value."""
    given: dict[str, str] = {}
    if username is not None:
        given["username"] = validate.secret_value(username, "username")
    if password is not None:
        given["password"] = validate.secret_value(password, "password")
    if totp_uri is not None:
        given["totp-uri"] = validate_uri(totp_uri)
    if recovery_codes is not None:
        codes = [validate.secret_value(c.strip(), "recovery code") for c in recovery_codes if c.strip()]
        if not codes:
            raise InvalidInput("the recovery codes file holds no codes")
        given["recovery-codes"] = "\n".join(codes)
    return given


def seal_given(
    tx: WriteTx,
    me: Unlocked,
    account: Account,
    given: dict[str, str],
    *,
    generate: bool = False,
    allow_weak: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inside a write transaction: seal ``given`` as the new current version (what ``secret set`` does).

    ``generate`` makes the password from the platform's rules; a password given by a person
    that breaks them is refused unless ``allow_weak`` gives the reason, which the signed
    event records (with the rules broken, never the value). ``extra`` is added to the
    event's data (an import names its file's digest and format).
    """
    slug = account.slug
    session = tx.session
    may_decrypt(session, account, me, tx.now, "set secrets")
    if pending_rotation(session, account) is not None:
        raise Conflict(f"a rotation of {slug} is pending: confirm or abort it first")
    given = dict(given)
    rules = rules_for(account.platform)
    weak: list[str] = []
    if generate:
        given["password"] = generate_password(account.platform)
    elif "password" in given:
        weak = broken_rules(given["password"], rules)
        if weak and allow_weak is None:
            raise InvalidInput(
                f"the password breaks {rules.name}'s rules ({'; '.join(weak)}):"
                " use --generate, or --allow-weak REASON to keep it"
            )
    previous = current_version(session, account)
    values = {} if previous is None else open_values(tx, me, account, previous)
    changed = [name for name, value in given.items() if values.get(name) != value]
    if not changed:
        raise Conflict(f"{slug} already holds exactly those values: nothing changed")
    values.update(given)
    if previous is not None:
        supersede(tx, previous)
    data_key, key = rekey(tx, account)
    version = write_version(tx, me, account, values, changed, status="current", data_key=data_key, key=key)
    kinds = sorted({FIELD_KIND[name] for name in changed if name in FIELD_KIND})
    cleared = clear_exposures(tx, account, kinds, version) if kinds else 0
    data: dict[str, Any] = {
        "version": version.number,
        "previous_version": None if previous is None else previous.number,
        "fields_changed": version.changed.split(",") if version.changed else [],
        "fields": version.fields.split(","),
        "exposures_cleared": cleared,
        "content": content_commitment(tx, version),
    }
    if generate:
        data["generated"] = {"platform_rules": rules.name, "length": len(given["password"])}
    if weak and "password" in changed:
        data["weak_password"] = {"platform_rules": rules.name, "broken": weak, "reason": allow_weak}
    data.update(extra or {})
    tx.audit.append("secret.set", account=slug, data=data)
    return {
        "account": slug,
        "version": version.number,
        "fields": version.fields.split(","),
        "changed": version.changed.split(",") if version.changed else [],
        "generated": generate,
        "weak": bool(weak and "password" in changed),
        "set_by": me.handle,
        "set_at": format_time(tx.now),
    }


def set_secret(
    ctx: Context,
    slug: str,
    *,
    username: str | None,
    password: str | None,
    totp_uri: str | None,
    recovery_codes: list[str] | None,
    generate: bool = False,
    allow_weak: str | None = None,
) -> dict[str, Any]:
    """Seal a new credential version; fields not given are carried over from the current one."""
    slug = validate.slug(slug)
    given = checked_values(username=username, password=password, totp_uri=totp_uri, recovery_codes=recovery_codes)
    if generate and password is not None:
        raise InvalidInput("use either --generate or a password of your own")
    if allow_weak is not None:
        allow_weak = validate.reason(allow_weak)
        if password is None:
            raise InvalidInput("--allow-weak applies to a password you give (--password-stdin or --password-prompt)")
    if not given and not generate:
        raise InvalidInput(
            "nothing to set: pass --password-stdin, --generate, --username, --totp-uri, --totp-key"
            " or --recovery-codes-file"
        )
    with acting(ctx) as (tx, me):
        result = seal_given(tx, me, get_account(tx.session, slug), given, generate=generate, allow_weak=allow_weak)
    return result


def warnings_for(session: Session, account: Account, now: datetime) -> list[str]:
    """One-line warnings shown on stderr with a reveal: exposed or overdue credentials."""
    state = account_state(session, account, now)
    out = []
    if state["exposed"]:
        people = sorted({e["handle"] for e in state["exposed_to"]})
        out.append(f"{account.slug} is exposed to {', '.join(people)} (no longer holders): rotate it")
    if state["overdue"]:
        out.append(f"{account.slug} is overdue for rotation (due {state['due']})")
    return out


def _denied(tx: WriteTx, account: Account, field: str, why: str, refused: Denied) -> Denied:
    """Record a refused reveal (``secret.denied``) in the transaction; the caller commits it and
    then fails with ``refused`` (exit 4): an attempt leaves a trace even though nothing is shown."""
    tx.audit.append("secret.denied", account=account.slug, data={"field": field, "why": why})
    return refused


def _may_reveal(tx: WriteTx, me: Unlocked, account: Account, field: str, doing: str) -> Denied | None:
    try:
        may_decrypt(tx.session, account, me, tx.now, doing)
    except Denied as refused:
        return _denied(tx, account, field, "auditor" if me.person.role == "auditor" else "no-grant", refused)
    return None


def reveal(ctx: Context, slug: str, field: str, *, pending: bool = False, version_number: int | None = None) -> Reveal:
    outcome = _reveal(ctx, slug, field, pending=pending, version_number=version_number)
    if isinstance(outcome, Denied):
        raise outcome  # after the denial was committed
    return outcome


def _reveal(
    ctx: Context, slug: str, field: str, *, pending: bool = False, version_number: int | None = None
) -> Reveal | Denied:
    slug = validate.slug(slug)
    field = validate.field(field)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        refused = _may_reveal(tx, me, account, field, "reveal secrets")
        if refused is not None:
            return refused  # leaving the block normally commits the denial
        if pending:
            rotation = pending_rotation(session, account)
            if rotation is None:
                raise NotFound(f"no rotation of {slug} is pending")
            version = session.get(CredentialVersion, rotation.pending_version_id)
        elif version_number is not None:
            if me.person.role != "admin":
                refusal = Denied("only admins may reveal earlier versions (kept for recovery)")
                return _denied(tx, account, field, "earlier-version", refusal)
            version = session.exec(
                select(CredentialVersion).where(
                    CredentialVersion.account_id == account.id, CredentialVersion.number == version_number
                )
            ).first()
            if version is None or version.status in ("destroyed", "aborted"):
                raise NotFound(f"{slug} has no retrievable version {version_number}")
        else:
            version = current_version(session, account)
        if version is None:
            raise NotFound(f"no secret is stored for {slug}: set one with 'govern secret set {slug}'")
        value = open_one(tx, me, account, version, field)
        tx.audit.append(
            "secret.revealed",
            account=slug,
            data={"version": version.number, "field": field, "status": version.status},
        )
        warnings = warnings_for(session, account, tx.now) if version.status == "current" else []
    return Reveal(account=slug, version=version.number, field=field, value=value, warnings=warnings)


def totp(ctx: Context, slug: str) -> tuple[TotpCode, Reveal]:
    """The current TOTP code: the seed is opened, the code computed, the reveal audited."""
    outcome = _totp(ctx, slug)
    if isinstance(outcome, Denied):
        raise outcome  # after the denial was committed
    return outcome


def _totp(ctx: Context, slug: str) -> tuple[TotpCode, Reveal] | Denied:
    slug = validate.slug(slug)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        refused = _may_reveal(tx, me, account, "totp-code", "reveal TOTP codes")
        if refused is not None:
            return refused  # leaving the block normally commits the denial
        version = current_version(session, account)
        if version is None:
            raise NotFound(f"no secret is stored for {slug}")
        if "totp-uri" not in version.fields.split(","):
            raise NotFound(f"{slug} has no TOTP seed stored: add one with 'govern secret set {slug} --totp-uri -'")
        code = code_at(open_one(tx, me, account, version, "totp-uri"), tx.now)
        tx.audit.append("secret.revealed", account=slug, data={"version": version.number, "field": "totp-code"})
        warnings = warnings_for(session, account, tx.now)
    return code, Reveal(account=slug, version=version.number, field="totp-code", value=code.code, warnings=warnings)


def history(ctx: Context, slug: str) -> list[dict[str, Any]]:
    """Metadata of every version; never a value. Holders, admins and auditors only."""
    slug = validate.slug(slug)
    with reading(ctx) as (session, me):
        account = get_account(session, slug)
        if me.role not in ("admin", "auditor") and live_grant(session, account, me, ctx.now()) is None:
            raise Denied(f"{me.handle} holds no live grant for {slug}")
        versions = session.exec(
            select(CredentialVersion)
            .where(CredentialVersion.account_id == account.id)
            .order_by(col(CredentialVersion.number))
        ).all()
        handles = handles_by_id(session)
        out = []
        for version in versions:
            exposures = session.exec(
                select(Exposure).where(Exposure.version_id == version.id, col(Exposure.cleared_at).is_(None))
            ).all()
            out.append(
                {
                    "version": version.number,
                    "status": version.status,
                    "fields": version.fields.split(",") if version.fields else [],
                    "changed": version.changed.split(",") if version.changed else [],
                    "set_by": version.created_by,
                    "set_at": format_time(version.created_at),
                    "retain_until": format_time(version.retain_until),
                    "data_key": version.data_key_id,
                    "exposed_to": len(exposures),
                    "exposures": [{"handle": handles.get(e.person_id), "kind": e.kind} for e in exposures],
                }
            )
        return out
