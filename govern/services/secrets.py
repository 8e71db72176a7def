"""Secrets: setting, revealing and listing credential versions; TOTP codes.

Every reveal appends an audit event in the same transaction as the read, and the
value is returned only after that transaction commits (fail closed).
"""

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from govern import validate
from govern.context import Context, Unlocked, acting, reading, vault_meta
from govern.custody import open_data_key, open_field, rekey, seal_field
from govern.db import WriteTx
from govern.errors import Denied, InvalidInput, NotFound
from govern.models import Account, CredentialVersion, DataKey, Exposure, SealedField
from govern.services.common import get_account, live_grant
from govern.timeutil import format_time
from govern.totp import TotpCode, code_at, validate_uri

# Order in which fields are listed; also the only names that may be stored.
FIELD_ORDER = ("username", "password", "totp-uri", "recovery-codes")


@dataclass(frozen=True)
class Reveal:
    account: str
    version: int
    field: str
    value: str
    warnings: list[str]


def _current(session: Session, account: Account) -> CredentialVersion | None:
    return session.exec(
        select(CredentialVersion).where(
            CredentialVersion.account_id == account.id, CredentialVersion.status == "current"
        )
    ).first()


def _may_decrypt(session: Session, account: Account, me: Unlocked, now: Any, doing: str) -> None:
    """Role and grant check; the crypto layer checks the wrap independently."""
    if me.person.role == "auditor":
        raise Denied(f"{me.handle} is an auditor; auditors can never {doing}")
    if me.person.role == "admin":
        return
    if live_grant(session, account, me.person, now) is None:
        raise Denied(f"{me.handle} holds no live grant for {account.slug}: ask with 'govern access request'")


def _open_version(
    tx: WriteTx, me: Unlocked, account: Account, version: CredentialVersion
) -> tuple[bytes, dict[str, bytes]]:
    session = tx.session
    data_key = session.get(DataKey, version.data_key_id)
    if data_key is None:
        raise NotFound(f"the key of {account.slug} version {version.number} is gone")
    key = open_data_key(session, vault_meta(session), account, data_key, me)
    fields = {
        row.field: row.ciphertext
        for row in session.exec(select(SealedField).where(SealedField.version_id == version.id)).all()
    }
    return key, fields


def set_secret(
    ctx: Context,
    slug: str,
    *,
    username: str | None,
    password: str | None,
    totp_uri: str | None,
    recovery_codes: list[str] | None,
) -> dict[str, Any]:
    """Seal a new credential version; fields not given are carried over from the current one."""
    slug = validate.slug(slug)
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
    if not given:
        raise InvalidInput("nothing to set: pass --password-stdin, --username, --totp-uri or --recovery-codes-file")
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        _may_decrypt(session, account, me, tx.now, "set secrets")
        meta = vault_meta(session)
        previous = _current(session, account)
        values: dict[str, str] = {}
        if previous is not None:
            old_key, old_fields = _open_version(tx, me, account, previous)
            for name, blob in old_fields.items():
                if name not in given:
                    values[name] = open_field(meta, account, previous, name, old_key, blob)
            previous.status = "superseded"
            session.add(previous)
        values.update(given)
        data_key, key = rekey(tx, account)
        assert data_key.id is not None
        assert account.id is not None
        if previous is not None and "password" in given:
            for exposure in session.exec(
                select(Exposure).where(Exposure.account_id == account.id, col(Exposure.cleared_at).is_(None))
            ).all():
                exposure.cleared_at = tx.now
                session.add(exposure)
        number = 1 if previous is None else previous.number + 1
        names = [name for name in FIELD_ORDER if name in values]
        version = CredentialVersion(
            account_id=account.id,
            number=number,
            data_key_id=data_key.id,
            status="current",
            fields=",".join(names),
            created_by=me.handle,
            created_at=tx.now,
        )
        session.add(version)
        session.flush()
        assert version.id is not None
        for name in names:
            session.add(
                SealedField(
                    version_id=version.id,
                    field=name,
                    ciphertext=seal_field(meta, account, number, name, key, values[name]),
                )
            )
        tx.audit.append(
            "secret.set",
            account=slug,
            data={
                "version": number,
                "previous_version": None if previous is None else previous.number,
                "fields_changed": [n for n in FIELD_ORDER if n in given],
                "fields": names,
            },
        )
    return {
        "account": slug,
        "version": number,
        "fields": names,
        "set_by": me.handle,
        "set_at": format_time(tx.now),
    }


def _warnings(session: Session, version: CredentialVersion) -> list[str]:
    exposures = session.exec(
        select(Exposure).where(Exposure.version_id == version.id, col(Exposure.cleared_at).is_(None))
    ).all()
    if exposures:
        return [f"this credential is exposed to {len(exposures)} former holder(s): rotate it"]
    return []


def reveal(ctx: Context, slug: str, field: str) -> Reveal:
    slug = validate.slug(slug)
    field = validate.field(field)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        _may_decrypt(session, account, me, tx.now, "reveal secrets")
        version = _current(session, account)
        if version is None:
            raise NotFound(f"no secret is stored for {slug}: set one with 'govern secret set {slug}'")
        key, fields = _open_version(tx, me, account, version)
        if field not in fields:
            raise NotFound(f"{slug} has no {field} stored (version {version.number} has: {version.fields})")
        value = open_field(vault_meta(session), account, version, field, key, fields[field])
        tx.audit.append("secret.revealed", account=slug, data={"version": version.number, "field": field})
        warnings = _warnings(session, version)
    return Reveal(account=slug, version=version.number, field=field, value=value, warnings=warnings)


def totp(ctx: Context, slug: str) -> tuple[TotpCode, Reveal]:
    """The current TOTP code: the seed is opened, the code computed, the reveal audited."""
    slug = validate.slug(slug)
    with acting(ctx) as (tx, me):
        session = tx.session
        account = get_account(session, slug)
        _may_decrypt(session, account, me, tx.now, "reveal TOTP codes")
        version = _current(session, account)
        if version is None:
            raise NotFound(f"no secret is stored for {slug}")
        key, fields = _open_version(tx, me, account, version)
        if "totp-uri" not in fields:
            raise NotFound(f"{slug} has no TOTP seed stored: add one with 'govern secret set {slug} --totp-uri -'")
        uri = open_field(vault_meta(session), account, version, "totp-uri", key, fields["totp-uri"])
        code = code_at(uri, tx.now)
        tx.audit.append("secret.revealed", account=slug, data={"version": version.number, "field": "totp-code"})
        warnings = _warnings(session, version)
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
        out = []
        for version in versions:
            exposures = session.exec(select(Exposure).where(Exposure.version_id == version.id)).all()
            out.append(
                {
                    "version": version.number,
                    "status": version.status,
                    "fields": version.fields.split(",") if version.fields else [],
                    "set_by": version.created_by,
                    "set_at": format_time(version.created_at),
                    "data_key": version.data_key_id,
                    "exposed_to": len([e for e in exposures if e.cleared_at is None]),
                }
            )
        return out
