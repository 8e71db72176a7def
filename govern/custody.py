"""Key custody: wrapping data keys to people and the recovery key, and opening them.

The associated data of a wrap binds vault, account, data key and recipient; the
associated data of a sealed field binds vault, account, field and version number.

Who receives a wrap, and with which public key, comes from the verified log
(:class:`audit.state.LogState`), never from the tables; an opened data key must match the
key-check value its signed ``key.created`` event committed to, and sealed fields the
digest their version's signed event committed to.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from audit.log import format_ts
from audit.state import LogState, sealed_digest
from govern.errors import Denied, IntegrityFailure
from govern.exposure import mark_exposed
from govern.identity import Unlocked, vault_meta
from govern.models import Account, CredentialVersion, DataKey, KeyWrap, Person, SealedField, VaultMeta, WrapHistory
from vault import IntegrityError, aad, new_data_key, open_sealed, seal, unwrap_key, wrap_key

if TYPE_CHECKING:
    from govern.db import WriteTx


@dataclass(frozen=True)
class Recipient:
    """A public key a data key may be wrapped to, as the verified log gives it."""

    handle: str
    fingerprint: str
    x25519_public: bytes


def trusted_key(state: LogState, handle: str) -> Recipient:
    """``handle``'s key from the verified log (never from the ``person_key`` table)."""
    person = state.people.get(handle)
    key = state.person_key(handle)
    if person is None or person.key is None or key is None:
        raise Denied(f"{handle} has no keys yet")
    return Recipient(handle=handle, fingerprint=person.key, x25519_public=key.x25519)


def key_check_value(key: bytes) -> str:
    """A 128-bit check value of a data key, committed to in its signed ``key.created`` event."""
    return hmac.new(key, b"govern-key-check/v1", hashlib.sha256).hexdigest()[:32]


def check_data_key(state: LogState, account: Account, data_key_id: int, key: bytes) -> bytes:
    """Refuse a data key that is not the one the log committed to (a substituted wrap)."""
    committed = state.data_keys.get(data_key_id)
    if committed is None or committed.account != account.slug:
        raise IntegrityFailure(f"data key {data_key_id} of {account.slug} is not one the signed log created")
    if not hmac.compare_digest(key_check_value(key), committed.kcv):
        raise IntegrityFailure(
            f"the data key {data_key_id} of {account.slug} is not the one its signed event committed to:"
            " its wrap was replaced"
        )
    return key


def check_sealed(session: Session, state: LogState, account: Account, version: CredentialVersion) -> None:
    """Refuse a version whose sealed fields or data key differ from its signed commitment."""
    committed = state.version(account.slug, version.number)
    if committed is None or committed.data_key != version.data_key_id:
        raise IntegrityFailure(f"{account.slug} version {version.number} is not the one the signed log records")
    rows = session.exec(select(SealedField).where(SealedField.version_id == version.id)).all()
    if sealed_digest({row.field: row.ciphertext for row in rows}) != committed.sealed:
        raise IntegrityFailure(
            f"the sealed fields of {account.slug} version {version.number} are not the ones its signed event"
            " commits to: they were replaced"
        )


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
    key: Recipient,
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


def open_data_key(
    session: Session, meta: VaultMeta, account: Account, data_key: DataKey, me: Unlocked, state: LogState
) -> bytes:
    """Unwrap ``data_key`` with the actor's private key. No wrap, no key: exit 4.

    The key is checked against the key-check value the signed log committed to.
    """
    assert account.id is not None
    assert data_key.id is not None
    wrap = wrap_of(session, data_key, me.key_fingerprint)
    if wrap is None:
        raise Denied(f"no key of {account.slug} is wrapped to {me.handle}: you cannot decrypt it")
    try:
        key = unwrap_key(wrap.blob, me.keys.x25519, wrap_aad(meta.id, account.id, data_key.id, me.key_fingerprint))
    except IntegrityError:
        raise IntegrityFailure(f"the key wrap of {account.slug} for {me.handle} failed to open") from None
    return check_data_key(state, account, data_key.id, key)


def seal_field(meta: VaultMeta, account: Account, version: int, field: str, key: bytes, value: str) -> bytes:
    assert account.id is not None
    return seal(key, value.encode("utf-8"), field_aad(meta.id, account.id, field, version))


def open_field(
    meta: VaultMeta, account: Account, version: CredentialVersion, field: str, key: bytes, blob: bytes
) -> str:
    """Open one sealed field (callers check the version's commitment first: :func:`check_sealed`)."""
    assert account.id is not None
    try:
        raw = open_sealed(key, blob, field_aad(meta.id, account.id, field, version.number))
        return raw.decode("utf-8")
    except (IntegrityError, UnicodeDecodeError):
        raise IntegrityFailure(
            f"the {field} of {account.slug} version {version.number} failed to open:"
            " it was altered or moved (the audit log and backups can tell when)"
        ) from None


def recipients(session: Session, state: LogState, account: Account, now: datetime) -> list[tuple[Person, Recipient]]:
    """Everyone a new data key of ``account`` must be wrapped to: active admins and live holders.

    Taken from the verified log: a role, grant or public key written into the tables
    by hand gives nobody a wrap.
    """
    ts = format_ts(now)
    out = []
    for handle in sorted(set(state.active_admins()) | set(state.live_holders(account.slug, ts))):
        person = session.exec(select(Person).where(Person.handle == handle)).one()
        out.append((person, trusted_key(state, handle)))
    return out


def add_data_key(tx: "WriteTx", account: Account) -> tuple[DataKey, bytes]:
    """A fresh data key for ``account``, wrapped to the recovery key, admins and live holders."""
    session = tx.session
    state = tx.state
    meta = session.exec(select(VaultMeta)).one()
    assert account.id is not None
    assert state.recovery_x25519 is not None
    assert state.recovery_fingerprint is not None
    data_key = DataKey(account_id=account.id, created_at=tx.now)
    session.add(data_key)
    session.flush()
    secret = new_data_key()
    add_wrap(
        session, meta, account, data_key, secret,
        recipient_public=state.recovery_x25519, recipient_fingerprint=state.recovery_fingerprint,
        person=None, now=tx.now,
    )  # fmt: skip
    fingerprints = [state.recovery_fingerprint]
    for person, key in recipients(session, state, account, tx.now):
        wrap_to_person(session, meta, account, data_key, secret, person, key, tx.now)
        fingerprints.append(key.fingerprint)
    tx.audit.append(
        "key.created",
        account=account.slug,
        data={"data_key": data_key.id, "recipients": fingerprints, "kcv": key_check_value(secret)},
    )
    return data_key, secret


def retire_data_keys(tx: "WriteTx", account: Account, keep: DataKey) -> list[int]:
    """Retire every other live key of ``account``; only admins and the recovery key keep wraps of them.

    Also removes wraps of ``keep`` from anyone who is no longer a recipient, so the
    key that stays is wrapped only to the recovery key, admins and live holders.
    """
    session = tx.session
    admin_ids = {
        p.id for p in session.exec(select(Person).where(col(Person.handle).in_(tx.state.active_admins()))).all()
    }
    allowed = {person.id for person, _key in recipients(session, tx.state, account, tx.now)}
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
    state = tx.state
    if me.handle not in state.active_admins():
        return 0
    session = tx.session
    meta = vault_meta(session)
    admins = [
        (session.exec(select(Person).where(Person.handle == handle)).one(), trusted_key(state, handle))
        for handle in state.active_admins()
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
            secret = open_data_key(session, meta, account, data_key, me, state)
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
