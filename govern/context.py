"""Who is acting, against which vault, and how they unlock their keys.

``Unlocked`` and ``vault_meta`` live in :mod:`govern.identity` (re-exported here).

The CLI builds one :class:`Context` per command; every service takes it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from audit.state import key_blob_digest
from govern.custody import ensure_custodians
from govern.db import Store, WriteTx
from govern.errors import AuthenticationFailed, IntegrityFailure
from govern.housekeeping import destroy_expired_versions, expire_due
from govern.identity import Unlocked, vault_meta
from govern.models import Person, PersonKey
from govern.timeutil import utcnow
from govern.trust import save_pin, trusted, verify_from_pin
from govern.unlock import PassphraseSource, StdinBroker, UnlockCache
from vault import BadPassphraseError, IntegrityError, PersonKeys, SealedKeyBlob

if TYPE_CHECKING:
    from audit.state import LogState

__all__ = ["Context", "Unlocked", "acting", "authenticate", "reading", "unlock", "vault_meta", "verified_reading"]


def _silent(_message: str) -> None:
    return None


def _wall_clock() -> datetime:
    return utcnow()


@dataclass
class Context:
    """Everything a service needs from outside: the store, the actor, the clock."""

    db_url: str
    actor: str
    passphrase: PassphraseSource = field(default_factory=lambda: PassphraseSource(StdinBroker()))
    notice: Callable[[str], None] = _silent
    clock: Callable[[], datetime] = _wall_clock
    opened_keys: dict[str, PersonKeys] = field(default_factory=dict, repr=False)
    # Called as (events verified, events to verify) while a client catches up with the log.
    progress: Callable[[int, int], None] | None = None

    @cached_property
    def store(self) -> Store:
        return Store.open(self.db_url)

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        """Release database connections and forget opened keys (idempotent)."""
        self.opened_keys.clear()
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.engine.dispose()


def authenticate(session: Session, handle: str, state: "LogState | None" = None) -> Person:
    """The active person called ``handle``; anyone else fails with exit 5.

    With ``state`` (the verified log), the status is the log's, never the row's.
    """
    person = session.exec(select(Person).where(Person.handle == handle)).first()
    status = None if person is None else person.status
    if state is not None:
        proven = state.people.get(handle)
        status = None if proven is None else proven.status
        if person is not None and status != person.status:
            raise IntegrityFailure(f"{handle}'s status in the tables is not the one the signed log gives")
    if person is None or status is None:
        raise AuthenticationFailed(f"unknown person {handle!r}: use --as HANDLE or GOVERN_USER")
    if status == "invited":
        raise AuthenticationFailed(f"{handle} has not enrolled yet: run 'govern staff enroll {handle} --code …'")
    if status != "active":
        raise AuthenticationFailed(f"{handle} is {status} and cannot act")
    return person


def person_key(session: Session, person: Person) -> PersonKey | None:
    """The person's active key pair, if they have enrolled."""
    return session.exec(
        select(PersonKey).where(PersonKey.person_id == person.id, PersonKey.active == True)  # noqa: E712
    ).first()


def active_key(session: Session, person: Person) -> PersonKey:
    row = person_key(session, person)
    if row is None:
        raise AuthenticationFailed(f"{person.handle} has no keys: they must enrol first")
    return row


def unlock(
    ctx: Context, session: Session, person: Person, state: "LogState | None" = None, *, cached: bool = True
) -> Unlocked:
    """Open ``person``'s private keys: from the keyring cache, else the passphrase.

    With ``state``, the key must be the one the signed log gives ``person``. ``cached=False``
    insists on the passphrase itself (``govern passwd``): no cached unlock stands for it.
    """
    key_row = active_key(session, person)
    if state is not None and state.people[person.handle].key != key_row.fingerprint:
        raise IntegrityFailure(f"the key of {person.handle} in the tables is not the one the signed log gives")
    if state is not None and state.people[person.handle].sealed not in (None, key_blob_digest(key_row.sealed_private)):
        raise IntegrityFailure(
            f"the private key blob of {person.handle} is not the one their last passphrase change sealed"
        )
    blob = SealedKeyBlob.parse(key_row.sealed_private)
    if blob.fingerprint != key_row.fingerprint:
        raise IntegrityFailure(f"the private key blob of {person.handle} does not match its public keys")
    opened = ctx.opened_keys.get(key_row.fingerprint)
    if opened is not None and cached:  # already unlocked by this command (a multi-transaction workflow)
        return Unlocked(person, key_row, opened)
    cache = UnlockCache(vault_meta(session).id, key_row.fingerprint, ctx.notice)
    if cache.unavailable is not None and cached:
        reason = cache.unavailable
        ctx.passphrase.say_before_prompt(lambda: ctx.notice(reason))
    cached_key = cache.get() if cached else None
    if cached_key is not None:
        try:
            keys = blob.open(cached_key)
            ctx.opened_keys[key_row.fingerprint] = keys
            return Unlocked(person, key_row, keys)
        except (BadPassphraseError, IntegrityError):
            cache.clear()
    passphrase = ctx.passphrase.get(f"Passphrase for {person.handle}")
    kek = blob.derive_kek(passphrase)
    try:
        keys = blob.open(kek)
    except BadPassphraseError:
        raise AuthenticationFailed(f"wrong passphrase for {person.handle}") from None
    except IntegrityError:
        raise IntegrityFailure(f"the private key blob of {person.handle} is corrupt") from None
    if cached:
        cache.put(kek)
    ctx.opened_keys[key_row.fingerprint] = keys
    return Unlocked(person, key_row, keys)


@contextmanager
def acting(ctx: Context) -> Iterator[tuple[WriteTx, Unlocked]]:
    """A write transaction by the unlocked actor, who signs its audit seal.

    The passphrase is asked and Argon2id runs *before* the writer lock is taken,
    so a slow prompt never blocks other writers; the actor is then checked again
    inside the transaction in case they were suspended meanwhile.
    """
    with ctx.store.read() as session:
        # Enough to know who is asking and which key they hold before the prompt; the rows are
        # compared with the log once, under the writer lock, before anything is decided.
        state = verify_from_pin(session, ctx.db_url, progress=ctx.progress)
        unlocked = unlock(ctx, session, authenticate(session, ctx.actor, state), state)
    with ctx.store.write(ctx.actor, ctx.now()) as tx:
        # Again under the writer lock: only what was appended since is verified.
        tx.believe(trusted(tx.session, ctx.db_url))
        person = authenticate(tx.session, ctx.actor, tx.trust)
        key_row = active_key(tx.session, person)
        if key_row.fingerprint != unlocked.key_fingerprint:
            raise AuthenticationFailed(f"the keys of {person.handle} changed while unlocking: try again")
        unlocked.person, unlocked.key_row = person, key_row
        tx.signer = unlocked
        tx.extras["expired"] = expire_due(tx)
        destroy_expired_versions(tx)
        ensure_custodians(tx, unlocked)
        yield tx, unlocked
    # Committed: the state followed every event this command wrote and signed, so the pin
    # moves past them (anyone who later rewrites them is caught at this sequence number).
    save_pin(tx.state, ctx.db_url)


@contextmanager
def reading(ctx: Context) -> Iterator[tuple[Session, Person]]:
    """A read session and the (authenticated by name) acting person.

    Listings read rows as they are; a decision needs :func:`verified_reading`.
    """
    with ctx.store.read() as session:
        yield session, authenticate(session, ctx.actor)


@contextmanager
def verified_reading(ctx: Context) -> Iterator[tuple[Session, Person, "LogState"]]:
    """A read session whose rows were checked against the verified log (checks that gate cron)."""
    with ctx.store.read() as session:
        state = trusted(session, ctx.db_url, progress=ctx.progress)
        yield session, authenticate(session, ctx.actor, state), state
