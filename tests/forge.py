"""The attacker's toolbox: what a database writer can do with raw SQL and a few lines of Python.

Nothing here knows a passphrase unless a test hands one over (attack 1 uses a member's
real keys). Every write goes straight to the tables, behind govern's back.
"""

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from conftest import CANARY_PASSWORD, Result, passphrase_of
from sqlalchemy import create_engine, delete, insert, select
from sqlalchemy.engine import Connection
from sqlhelp import sql
from sqlmodel import SQLModel

import govern.models  # noqa: F401  (registers every table in SQLModel.metadata)
from audit.chain import EventRecord, SealRecord, canonical_json
from audit.log import format_ts
from govern.custody import field_aad, wrap_aad
from govern.timeutil import utcnow
from vault import MINIMUM_PARAMS, IntegrityError, PersonKeys, SealedKeyBlob, new_data_key, seal, unwrap_key, wrap_key


def clean(result: Result) -> Result:
    """No traceback, no 'this is a bug', no canary password: whatever the exit code."""
    assert "Traceback" not in result.err, result.err
    assert "this is a bug" not in result.err, f"exit {result.code}: {result.err}"
    assert CANARY_PASSWORD not in result.out + result.err
    return result


def refused(result: Result, code: int = 6) -> Result:
    clean(result)
    assert result.code == code, f"expected exit {code}, got {result.code}: {result.err or result.out}"
    return result


def signer_of(db: str, handle: str) -> dict[str, Any]:
    """``append_transaction``'s signer arguments for ``handle``'s real key (an insider)."""
    keys = keys_of(db, handle)
    return {"signer": handle, "key": keys.public.fingerprint, "sign": keys.sign}


@contextmanager
def connection(db_url: str) -> Iterator[Connection]:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def keys_of(db_url: str, handle: str, passphrase: str | None = None) -> PersonKeys:
    """A person's real private keys, opened from their person_key row with their passphrase."""
    blob = sql(
        db_url,
        "SELECT k.sealed_private FROM person_key k JOIN person p ON p.id = k.person_id"
        " WHERE p.handle = :h AND k.active = :t",
        h=handle,
        t=True,
    )[0][0]
    assert isinstance(blob, bytes)
    parsed = SealedKeyBlob.parse(blob)
    return parsed.open(parsed.derive_kek(passphrase or passphrase_of(handle)))


def person_id(db_url: str, handle: str) -> int:
    value = sql(db_url, "SELECT id FROM person WHERE handle = :h", h=handle)[0][0]
    assert isinstance(value, int)
    return value


def fingerprint_of(db_url: str, handle: str) -> str:
    value = sql(
        db_url,
        "SELECT k.fingerprint FROM person_key k JOIN person p ON p.id = k.person_id WHERE p.handle = :h",
        h=handle,
    )[0][0]
    assert isinstance(value, str)
    return value


def now_ts() -> str:
    return format_ts(utcnow())


def head(db_url: str) -> tuple[int, str]:
    rows = sql(db_url, "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    return (0, "0" * 64) if not rows else (int(rows[0][0]), str(rows[0][1]))  # type: ignore[call-overload]


@dataclass
class Forged:
    """An event the attacker writes: the fields of an EventRecord except the chain's."""

    actor: str
    action: str
    account: str | None = None
    subject: str | None = None
    reason: str | None = None
    data: dict[str, Any] | None = None


def append_transaction(
    db_url: str,
    events: list[Forged],
    *,
    signer: str,
    key: str,
    sign: Callable[[bytes], bytes],
    ts: str | None = None,
) -> list[EventRecord]:
    """Append ``events`` as one transaction, correctly hash-chained and sealed with ``sign``."""
    seq, prev = head(db_url)
    tx = str(uuid.uuid4())
    ts = ts or now_ts()
    records = []
    for forged in events:
        seq += 1
        record = EventRecord(
            seq=seq,
            tx=tx,
            ts=ts,
            actor=forged.actor,
            action=forged.action,
            account=forged.account,
            subject=forged.subject,
            reason=forged.reason,
            data=canonical_json(forged.data or {}),
            prev=prev,
            hash="",
        )
        record = replace(record, hash=record.computed_hash())
        prev = record.hash
        records.append(record)
    unsigned = SealRecord(
        tx=tx,
        first_seq=records[0].seq,
        last_seq=records[-1].seq,
        head=records[-1].hash,
        signer=signer,
        key=key,
        ts=ts,
        signature="",
    )
    seal_row = replace(unsigned, signature=base64.b64encode(sign(unsigned.message())).decode("ascii"))
    with connection(db_url) as conn:
        events_table = SQLModel.metadata.tables["audit_event"]
        seals_table = SQLModel.metadata.tables["audit_seal"]
        conn.execute(insert(events_table), [asdict(r) for r in records])
        conn.execute(insert(seals_table), [asdict(seal_row)])
    return records


def events_from(db_url: str, seq: int) -> list[EventRecord]:
    rows = sql(
        db_url,
        "SELECT seq, tx, ts, actor, action, account, subject, reason, data, prev, hash"
        " FROM audit_event WHERE seq >= :s ORDER BY seq",
        s=seq,
    )
    return [EventRecord(*row) for row in rows]  # type: ignore[arg-type]


def cut_from(db_url: str, seq: int) -> None:
    """Delete every event from ``seq`` on, and every seal that covered any of them."""
    sql(db_url, "DELETE FROM audit_seal WHERE last_seq >= :s", s=seq)
    sql(db_url, "DELETE FROM audit_event WHERE seq >= :s", s=seq)


def as_forged(event: EventRecord) -> Forged:
    return Forged(
        actor=event.actor,
        action=event.action,
        account=event.account,
        subject=event.subject,
        reason=event.reason,
        data=event.data_object(),
    )


def seq_of(db_url: str, action: str, actor: str | None = None) -> int:
    """The last event with ``action`` (by ``actor``)."""
    if actor is None:
        rows = sql(db_url, "SELECT seq FROM audit_event WHERE action = :a ORDER BY seq DESC", a=action)
    else:
        rows = sql(
            db_url, "SELECT seq FROM audit_event WHERE action = :a AND actor = :w ORDER BY seq DESC", a=action, w=actor
        )
    assert rows, f"no {action} event"
    value = rows[0][0]
    assert isinstance(value, int)
    return value


def public_keys_data(keys: PersonKeys) -> dict[str, Any]:
    """The ``public_keys`` of a ``staff.enrolled`` event, as govern writes them."""
    return {
        "fingerprint": keys.public.fingerprint,
        "x25519": base64.b64encode(keys.public.x25519).decode("ascii"),
        "ed25519": base64.b64encode(keys.public.ed25519).decode("ascii"),
    }


def sealed_private(keys: PersonKeys, passphrase: str) -> bytes:
    """Private keys sealed under a passphrase the attacker chose (the floor KDF, to stay fast)."""
    blob, _kek = keys.seal(passphrase, MINIMUM_PARAMS)
    return blob


# -- wraps ---------------------------------------------------------------------------------------


def wraps_to(db_url: str, fingerprint: str) -> int:
    value = sql(db_url, "SELECT COUNT(*) FROM key_wrap WHERE recipient_fingerprint = :f", f=fingerprint)[0][0]
    assert isinstance(value, int)
    return value


def vault_id(db_url: str) -> str:
    value = sql(db_url, "SELECT id FROM vault")[0][0]
    assert isinstance(value, str)
    return value


def openable_wraps(db_url: str, keys: PersonKeys) -> list[int]:
    """Every key_wrap row whose blob ``keys`` can open (trying it as any recipient it names)."""
    vid = vault_id(db_url)
    opened = []
    rows = sql(
        db_url,
        "SELECT w.id, w.blob, w.data_key_id, w.recipient_fingerprint, d.account_id"
        " FROM key_wrap w JOIN data_key d ON d.id = w.data_key_id",
    )
    for wrap_id, blob, key_id, fingerprint, account_id in rows:
        try:
            unwrap_key(blob, keys.x25519, wrap_aad(vid, account_id, key_id, fingerprint))  # type: ignore[arg-type]
        except IntegrityError:
            continue
        opened.append(int(wrap_id))  # type: ignore[call-overload]
    return opened


def reseal_version(db_url: str, slug: str, number: int, password: str, recipients: list[str]) -> bytes:
    """Seal ``password`` as version ``number``'s password under a data key the attacker made,
    and replace the wraps of that version's data key for ``recipients`` (handles) with wraps
    of the attacker's key to their public keys (taken from the person_key rows). Returns the key."""
    vid = vault_id(db_url)
    account_id, version_id, key_id = sql(
        db_url,
        "SELECT a.id, v.id, v.data_key_id FROM credential_version v JOIN account a ON a.id = v.account_id"
        " WHERE a.slug = :s AND v.number = :n",
        s=slug,
        n=number,
    )[0]
    key = new_data_key()
    ciphertext = seal(key, password.encode("utf-8"), field_aad(vid, account_id, "password", number))  # type: ignore[arg-type]
    sql(
        db_url,
        "UPDATE sealed_field SET ciphertext = :c WHERE version_id = :v AND field = 'password'",
        c=ciphertext,
        v=version_id,
    )
    for handle in recipients:
        fingerprint, public = sql(
            db_url,
            "SELECT k.fingerprint, k.x25519_public FROM person_key k JOIN person p ON p.id = k.person_id"
            " WHERE p.handle = :h",
            h=handle,
        )[0]
        blob = wrap_key(key, public, wrap_aad(vid, account_id, key_id, fingerprint))  # type: ignore[arg-type]
        sql(
            db_url,
            "UPDATE key_wrap SET blob = :b WHERE data_key_id = :k AND recipient_fingerprint = :f",
            b=blob,
            k=key_id,
            f=fingerprint,
        )
    return key


# -- backups -------------------------------------------------------------------------------------


def snapshot(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table govern knows: a backup, as a database writer can take one."""
    out: dict[str, list[dict[str, Any]]] = {}
    with connection(db_url) as conn:
        for table in SQLModel.metadata.sorted_tables:
            out[table.name] = [dict(row._mapping) for row in conn.execute(select(table))]
    return out


def restore(db_url: str, backup: dict[str, list[dict[str, Any]]]) -> None:
    """Put a snapshot back: delete every row (children first), insert the old ones (parents first)."""
    tables = SQLModel.metadata.sorted_tables
    with connection(db_url) as conn:
        for table in reversed(tables):
            conn.execute(delete(table))
        for table in tables:
            if backup[table.name]:
                conn.execute(insert(table), backup[table.name])
