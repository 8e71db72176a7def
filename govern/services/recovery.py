"""Recovery with the organisation recovery key: a new admin when every holder is gone.

The recovery key opens every data key (each was wrapped to it). ``recover`` enrols a
new admin and wraps every key still in use to them. The transaction starts with a
``vault.recovered`` event signed by the recovery key's derived Ed25519 key over the
vault, the transaction and the new admin's key fingerprint, so ``audit verify`` can
tell a real recovery from a forged one. There is no other way in: no back door in
the code, only the key kept offline.
"""

import base64
from typing import Any

from sqlmodel import col, select

from audit.state import LogState, recovery_message
from govern import validate
from govern.context import Context, Unlocked, vault_meta
from govern.custody import Recipient, check_data_key, wrap_aad, wrap_to_person
from govern.db import WriteTx
from govern.errors import AuthenticationFailed, Conflict, IntegrityFailure
from govern.models import Account, CredentialVersion, DataKey, KeyWrap, Person, PersonKey, VaultMeta
from govern.services.vaultinit import creation_kdf_params, public_keys_event
from vault import IntegrityError, PersonKeys, RecoveryKey, unwrap_key


def recover(ctx: Context, recovery_text: str, *, admin: str, name: str, email: str | None) -> dict[str, Any]:
    admin = validate.handle(admin)
    name = validate.text(name, "name")
    email = validate.email(email) if email else None
    try:
        recovery = RecoveryKey.load(recovery_text)
    except IntegrityError:
        raise AuthenticationFailed("that is not a valid recovery key (check for typos)") from None
    from govern.trust import save_pin, trusted

    with ctx.store.read() as session:
        state = trusted(session, ctx.db_url, progress=ctx.progress)
        if recovery.fingerprint != state.recovery_fingerprint:
            raise AuthenticationFailed("that recovery key does not belong to this vault")
        if session.exec(select(Person).where(Person.handle == admin)).first() is not None:
            raise Conflict(f"{admin} already exists: choose a new handle for the recovering admin")
    passphrase = ctx.passphrase.get(f"New passphrase for {admin}", new=True)
    params = creation_kdf_params()
    keys = PersonKeys.generate()
    blob, _kek = keys.seal(passphrase, params)
    with ctx.store.write(admin, ctx.now()) as tx:
        session = tx.session
        state = trusted(session, ctx.db_url, fresh=True)  # from the genesis: no cache decides a recovery
        tx.believe(state)
        meta = vault_meta(session)
        signature = recovery.sign(recovery_message(meta.id, tx.audit.tx, admin, keys.public.fingerprint))
        person = Person(
            handle=admin,
            name=name,
            email=email,
            role="admin",
            status="active",
            created_at=tx.now,
            created_by="recovery",
        )
        session.add(person)
        session.flush()
        assert person.id is not None
        key_row = PersonKey(
            person_id=person.id,
            fingerprint=keys.public.fingerprint,
            x25519_public=keys.public.x25519,
            ed25519_public=keys.public.ed25519,
            sealed_private=blob,
            created_at=tx.now,
        )
        session.add(key_row)
        tx.audit.append(
            "vault.recovered",
            subject=admin,
            data={
                "recovery_key": recovery.fingerprint,
                "admin_key": keys.public.fingerprint,
                "signature": base64.b64encode(signature).decode("ascii"),
            },
        )
        tx.audit.append(
            "staff.added", subject=admin, data={"name": name, "email": email, "team": None, "role": "admin"}
        )
        tx.audit.append("staff.enrolled", subject=admin, data=public_keys_event(keys, params))
        recovered = _wrap_everything(tx, meta, recovery, person, key_row, state)
        tx.signer = Unlocked(person, key_row, keys)
    save_pin(state, ctx.db_url, keys)
    return {"admin": admin, "key_fingerprint": keys.public.fingerprint, "data_keys": recovered}


def _wrap_everything(
    tx: WriteTx, meta: VaultMeta, recovery: RecoveryKey, person: Person, key_row: PersonKey, state: LogState
) -> int:
    """Wrap to the new admin every data key that still protects something: live keys and
    the keys of versions still retained."""
    session = tx.session
    in_use = {
        v.data_key_id
        for v in session.exec(
            select(CredentialVersion).where(col(CredentialVersion.status).in_(["pending", "current", "superseded"]))
        ).all()
    }
    keys = session.exec(select(DataKey).order_by(col(DataKey.id))).all()
    count = 0
    for data_key in keys:
        if data_key.retired_at is not None and data_key.id not in in_use:
            continue
        account = session.get(Account, data_key.account_id)
        assert account is not None
        assert account.id is not None
        assert data_key.id is not None
        wrap = session.exec(
            select(KeyWrap).where(
                KeyWrap.data_key_id == data_key.id, KeyWrap.recipient_fingerprint == meta.recovery_fingerprint
            )
        ).first()
        if wrap is None:
            raise IntegrityFailure(f"data key {data_key.id} of {account.slug} is not wrapped to the recovery key")
        try:
            secret = unwrap_key(
                wrap.blob, recovery.private, wrap_aad(meta.id, account.id, data_key.id, meta.recovery_fingerprint)
            )
        except IntegrityError:
            raise IntegrityFailure(f"the recovery wrap of {account.slug} failed to open") from None
        check_data_key(state, account, data_key.id, secret)
        key = Recipient(handle=person.handle, fingerprint=key_row.fingerprint, x25519_public=key_row.x25519_public)
        wrap_to_person(session, meta, account, data_key, secret, person, key, tx.now)
        tx.audit.append(
            "key.wrapped",
            account=account.slug,
            subject=person.handle,
            data={"data_key": data_key.id, "recipient": key.fingerprint, "as": "recovery"},
        )
        count += 1
    return count
