"""A person's own passphrase: ``govern passwd`` (re-seal) and ``govern lock`` (forget the cache)."""

from typing import Any

from sqlmodel import select

from audit.state import key_blob_digest
from govern.context import Context, acting, active_key, authenticate, unlock
from govern.errors import IntegrityFailure, InvalidInput
from govern.identity import vault_meta
from govern.models import PersonKey
from govern.services.vaultinit import creation_kdf_params
from govern.trust import verify_from_pin
from govern.unlock import UnlockCache
from vault import KdfParams, SealedKeyBlob


def raised_params(current: KdfParams, wanted: KdfParams) -> KdfParams:
    """Each Argon2id parameter at least as strong as both: a re-seal never weakens a blob."""
    return KdfParams(
        memory_kib=max(current.memory_kib, wanted.memory_kib),
        iterations=max(current.iterations, wanted.iterations),
        lanes=max(current.lanes, wanted.lanes),
    ).validate()


def change_passphrase(ctx: Context, *, new_from_stdin: bool) -> dict[str, Any]:
    """Re-seal the actor's private keys under a new passphrase; the public keys never change.

    The current passphrase itself is required (a cached unlock does not stand for it), the
    Argon2id parameters are raised to the current defaults (``GOVERN_KDF``), the change is
    logged as ``staff.passphrase_changed`` (fingerprint, parameters, a digest of the new blob:
    no key material) and the old
    cached unlock is dropped.
    """
    if new_from_stdin and ctx.passphrase.from_stdin:
        raise InvalidInput(
            "standard input can carry one passphrase: pass the current one another way"
            " (a prompt, GOVERN_PASSPHRASE_FILE)"
        )
    with ctx.store.read() as session:
        state = verify_from_pin(session, ctx.db_url, progress=ctx.progress)
        person = authenticate(session, ctx.actor, state)
        unlocked = unlock(ctx, session, person, state, cached=False)
        old_params = SealedKeyBlob.parse(unlocked.key_row.sealed_private).params
        vault_id = vault_meta(session).id
    new_passphrase = ctx.passphrase.get_new(f"New passphrase for {person.handle}", from_stdin=new_from_stdin)
    params = raised_params(old_params, creation_kdf_params())
    blob, _kek = unlocked.keys.seal(new_passphrase, params)
    fingerprint = unlocked.key_fingerprint
    if SealedKeyBlob.parse(blob).fingerprint != fingerprint:  # the same keys, sealed anew
        raise IntegrityFailure("re-sealing changed the key fingerprint")
    with acting(ctx) as (tx, me):
        key_row = active_key(tx.session, me.person)
        if key_row.fingerprint != fingerprint:
            raise IntegrityFailure(f"the key of {me.handle} changed during the passphrase change")
        key_row.sealed_private = blob
        tx.session.add(key_row)
        data = {"key": fingerprint, "kdf": params.to_dict(), "sealed": key_blob_digest(blob)}
        tx.audit.append("staff.passphrase_changed", subject=me.handle, data=data)
    UnlockCache(vault_id, fingerprint, ctx.notice).clear()
    return {
        "handle": person.handle,
        "key_fingerprint": fingerprint,
        "kdf": str(params),
        "previous_kdf": str(old_params),
    }


def lock(ctx: Context) -> dict[str, Any]:
    """Forget every cached unlock of this vault on this machine (no passphrase, idempotent)."""
    with ctx.store.read() as session:
        vault_id = vault_meta(session).id
        fingerprints = sorted(set(session.exec(select(PersonKey.fingerprint)).all()))
    forgotten = sum(UnlockCache(vault_id, fingerprint, ctx.notice).forget() for fingerprint in fingerprints)
    return {"vault_id": vault_id, "forgotten": forgotten}
