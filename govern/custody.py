"""Key custody: wrapping data keys to people and the recovery key, and opening them.

The associated data of a wrap binds vault, account, data key and recipient; the
associated data of a sealed field binds vault, account, field and version number.
"""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from govern.context import Unlocked, person_key, vault_meta
from govern.errors import Denied, IntegrityFailure
from govern.exposure import mark_exposed
from govern.models import Account, CredentialVersion, DataKey, KeyWrap, Person, PersonKey, VaultMeta, WrapHistory
from vault import IntegrityError, aad, new_data_key, open_sealed, seal, unwrap_key, wrap_key

if TYPE_CHECKING:
    from govern.db import WriteTx


def wrap_aad(vault_id: str, account_id: int, data_key_id: int, recipient_fingerprint: str) -> bytes:
    return aad("wrap", vault_id, account_id, data_key_id, recipient_fingerprint)


def field_aad(vault_id: str, account_id: int, field: str, version: int) -> bytes:
    return aad("field", vault_id, account_id, field, version)


def live_data_keys(session: Session, account: Account) -> list[DataKey]:
    return list(
        session.exec(
            select(DataKey)
            .where(DataKey.account_id == account.id, col(DataKey.retired_at).is_(None))
            .order_by(col(DataKey.id))
        ).all()
    )


def add_wrap(
    session: Session,
    meta: VaultMeta,
    account: Account,
    data_key: DataKey,
    secret: bytes,
    *,
    recipient_public: bytes,
    recipient_fingerprint: str,
    person: Person | None,
    now: datetime,
) -> KeyWrap:
    assert account.id is not None
    assert data_key.id is not None
    wrap = KeyWrap(
        data_key_id=data_key.id,
        person_id=None if person is None else person.id,
        recipient_fingerprint=recipient_fingerprint,
        blob=wrap_key(
            secret,
            recipient_public,
            wrap_aad(meta.id, account.id, data_key.id, recipient_fingerprint),
        ),
        created_at=now,
    )
    session.add(wrap)
    if person is not None:
        assert person.id is not None
        session.add(
            WrapHistory(
                data_key_id=data_key.id,
                person_id=person.id,
                recipient_fingerprint=recipient_fingerprint,
                wrapped_at=now,
            )
        )
    return wrap


def wrap_to_person(
    session: Session,
    meta: VaultMeta,
    account: Account,
    data_key: DataKey,
    secret: bytes,
    person: Person,
    key: PersonKey,
    now: datetime,
) -> KeyWrap:
    """Wrap ``secret`` (the data key) to ``person``'s X25519 key."""
    return add_wrap(
        session,
        meta,
        account,
        data_key,
        secret,
        recipient_public=key.x25519_public,
        recipient_fingerprint=key.fingerprint,
        person=person,
        now=now,
    )


def remove_wrap(session: Session, wrap: KeyWrap, now: datetime) -> None:
    """Delete a wrap; its history row records when (the history itself is never deleted)."""
    if wrap.person_id is not None:
        for row in session.exec(
            select(WrapHistory).where(
                WrapHistory.data_key_id == wrap.data_key_id,
                WrapHistory.person_id == wrap.person_id,
                col(WrapHistory.removed_at).is_(None),
            )
        ).all():
            row.removed_at = now
            session.add(row)
    session.delete(wrap)


def wrap_of(session: Session, data_key: DataKey, fingerprint: str) -> KeyWrap | None:
    return session.exec(
        select(KeyWrap).where(KeyWrap.data_key_id == data_key.id, KeyWrap.recipient_fingerprint == fingerprint)
    ).first()


def open_data_key(session: Session, meta: VaultMeta, account: Account, data_key: DataKey, me: Unlocked) -> bytes:
    """Unwrap ``data_key`` with the actor's private key. No wrap, no key: exit 4."""
    assert account.id is not None
    assert data_key.id is not None
    wrap = wrap_of(session, data_key, me.key_fingerprint)
    if wrap is None:
        raise Denied(f"no key of {account.slug} is wrapped to {me.handle}: you cannot decrypt it")
    try:
        return unwrap_key(wrap.blob, me.keys.x25519, wrap_aad(meta.id, account.id, data_key.id, me.key_fingerprint))
    except IntegrityError:
        raise IntegrityFailure(f"the key wrap of {account.slug} for {me.handle} failed to open") from None


def seal_field(meta: VaultMeta, account: Account, version: int, field: str, key: bytes, value: str) -> bytes:
    assert account.id is not None
    return seal(key, value.encode("utf-8"), field_aad(meta.id, account.id, field, version))


def open_field(
    meta: VaultMeta, account: Account, version: CredentialVersion, field: str, key: bytes, blob: bytes
) -> str:
    assert account.id is not None
    try:
        raw = open_sealed(key, blob, field_aad(meta.id, account.id, field, version.number))
        return raw.decode("utf-8")
    except (IntegrityError, UnicodeDecodeError):
        raise IntegrityFailure(
            f"the {field} of {account.slug} version {version.number} failed to open:"
            " it was altered or moved (the audit log and backups can tell when)"
        ) from None


def recipients(session: Session, account: Account, now: datetime) -> list[tuple[Person, PersonKey]]:
    """Everyone a new data key of ``account`` must be wrapped to: active admins and live holders."""
    from govern.models import Grant

    people: dict[int, Person] = {
        p.id: p
        for p in session.exec(select(Person).where(Person.role == "admin", Person.status == "active")).all()
        if p.id is not None
    }
    for grant in session.exec(
        select(Grant).where(Grant.account_id == account.id, col(Grant.revoked_at).is_(None))
    ).all():
        if grant.is_live(now):
            holder = session.get(Person, grant.person_id)
            if holder is not None and holder.status == "active" and holder.role != "auditor":
                people[grant.person_id] = holder
    out = []
    for person in people.values():
        key = person_key(session, person)
        if key is not None:
            out.append((person, key))
    return out


def add_data_key(tx: "WriteTx", account: Account) -> tuple[DataKey, bytes]:
    """A fresh data key for ``account``, wrapped to the recovery key, admins and live holders."""
    session = tx.session
    meta = session.exec(select(VaultMeta)).one()
    assert account.id is not None
    data_key = DataKey(account_id=account.id, created_at=tx.now)
    session.add(data_key)
    session.flush()
    secret = new_data_key()
    add_wrap(
        session, meta, account, data_key, secret,
        recipient_public=meta.recovery_public, recipient_fingerprint=meta.recovery_fingerprint,
        person=None, now=tx.now,
    )  # fmt: skip
    fingerprints = [meta.recovery_fingerprint]
    for person, key in recipients(session, account, tx.now):
        wrap_to_person(session, meta, account, data_key, secret, person, key, tx.now)
        fingerprints.append(key.fingerprint)
    tx.audit.append("key.created", account=account.slug, data={"data_key": data_key.id, "recipients": fingerprints})
    return data_key, secret


def retire_data_keys(tx: "WriteTx", account: Account, keep: DataKey) -> list[int]:
    """Retire every other live key of ``account``; only admins and the recovery key keep wraps of them.

    Also removes wraps of ``keep`` from anyone who is no longer a recipient, so the
    key that stays is wrapped only to the recovery key, admins and live holders.
    """
    session = tx.session
    admin_ids = {p.id for p in session.exec(select(Person).where(Person.role == "admin")).all()}
    allowed = {person.id for person, _key in recipients(session, account, tx.now)}
    retired: list[int] = []
    removed: list[list[object]] = []
    for old in live_data_keys(session, account):
        keeping = old.id == keep.id
        if not keeping:
            old.retired_at = tx.now
            session.add(old)
            assert old.id is not None
            retired.append(old.id)
        for wrap in session.exec(select(KeyWrap).where(KeyWrap.data_key_id == old.id)).all():
            if wrap.person_id is not None and wrap.person_id not in (allowed if keeping else admin_ids):
                removed.append([wrap.data_key_id, wrap.recipient_fingerprint])
                remove_wrap(session, wrap, tx.now)
    if retired or removed:
        tx.audit.append(
            "key.retired",
            account=account.slug,
            data={"data_keys": retired, "current": keep.id, "removed": removed},
        )
    return retired


def rekey(tx: "WriteTx", account: Account) -> tuple[DataKey, bytes]:
    """A fresh data key for ``account`` that replaces every older one.

    A former holder who kept an old data key learns nothing from versions sealed after.
    """
    data_key, secret = add_data_key(tx, account)
    retire_data_keys(tx, account, keep=data_key)
    return data_key, secret


def ensure_custodians(tx: "WriteTx", me: Unlocked) -> int:
    """Wrap every live data key to every enrolled admin that lacks one.

    Only an admin who can open the keys can do this, so a new admin receives their
    custodian wraps at the next write of any other admin (every write checks, cheaply).
    Returns the wraps added.
    """
    if me.person.role != "admin":
        return 0
    session = tx.session
    meta = vault_meta(session)
    admins = [
        (person, key)
        for person in session.exec(select(Person).where(Person.role == "admin", Person.status == "active")).all()
        if (key := person_key(session, person)) is not None
    ]
    # Fast path (runs on every admin write): one query per admin finds the live keys they lack.
    lacking: set[int] = set()
    for _person, key in admins:
        has = select(KeyWrap.data_key_id).where(KeyWrap.recipient_fingerprint == key.fingerprint)
        lacking.update(
            k.account_id
            for k in session.exec(
                select(DataKey).where(col(DataKey.retired_at).is_(None), col(DataKey.id).not_in(has))
            ).all()
        )
    if not lacking:
        return 0
    added = 0
    for account in session.exec(select(Account).where(col(Account.id).in_(lacking)).order_by(col(Account.id))).all():
        for data_key in live_data_keys(session, account):
            missing = [(p, k) for p, k in admins if wrap_of(session, data_key, k.fingerprint) is None]
            if not missing or wrap_of(session, data_key, me.key_fingerprint) is None:
                continue
            secret = open_data_key(session, meta, account, data_key, me)
            for person, key in missing:
                wrap_to_person(session, meta, account, data_key, secret, person, key, tx.now)
                tx.audit.append(
                    "key.wrapped",
                    account=account.slug,
                    subject=person.handle,
                    data={"data_key": data_key.id, "recipient": key.fingerprint, "as": "custodian"},
                )
                added += 1
    return added


def drop_wraps(
    tx: "WriteTx", person: Person, account: Account, reason: str, deadline: datetime | None = None
) -> list[int]:
    """Delete ``person``'s wraps of ``account``'s keys; mark what they may know as exposed.

    Exposure is computed from every key ever wrapped to them, not only the wraps
    deleted now. Returns the credential version numbers newly marked exposed.
    """
    session = tx.session
    key_ids = [k.id for k in session.exec(select(DataKey).where(DataKey.account_id == account.id)).all()]
    wraps = session.exec(
        select(KeyWrap).where(col(KeyWrap.data_key_id).in_(key_ids), KeyWrap.person_id == person.id)
    ).all()
    removed = sorted({w.data_key_id for w in wraps})
    pairs = sorted([w.data_key_id, w.recipient_fingerprint] for w in wraps)
    for wrap in wraps:
        remove_wrap(session, wrap, tx.now)
    session.flush()
    marked = mark_exposed(tx, account, person, reason, deadline)
    if wraps or marked:
        tx.audit.append(
            "key.unwrapped",
            account=account.slug,
            subject=person.handle,
            data={
                "data_keys": removed,
                "removed": pairs,
                "exposed": marked,
                "exposed_versions": sorted({m["version"] for m in marked}),
            },
        )
    return sorted({m["version"] for m in marked})
