"""Who is acting, against which vault, and how they unlock their keys.

``Unlocked`` and ``vault_meta`` live in :mod:`govern.identity` (re-exported here).

The CLI builds one :class:`Context` per command; every service takes it.
"""

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from sqlmodel import Session, select

import govern.unlock
from audit.state import key_blob_digest
from govern.custody import ensure_custodians
from govern.db import Store, WriteTx
from govern.errors import AuthenticationFailed, Denied, IntegrityFailure
from govern.housekeeping import destroy_expired_versions, expire_due
from govern.identity import Unlocked, vault_meta
from govern.models import Person, PersonKey
from govern.timeutil import utcnow
from govern.trust import (
    Start,
    confirmed,
    fingerprint_of,
    load_anchor,
    save_pin,
    trusted,
    verify_from_pin,
    vouch,
)
from govern.unlock import PassphraseSource, StdinBroker, UnlockCache
from vault import BadPassphraseError, IntegrityError, PersonKeys, SealedKeyBlob

if TYPE_CHECKING:
    from audit.chain import EventRecord
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

    Under the lock the log is verified from a cached state only if the actor's MAC vouches
    for it (else from the genesis). Until the actor confirmed the vault fingerprint on this
    client, the transaction wraps no key to anyone but the actor and the recovery key and
    signs no offboarding plan (:func:`_hold_back_unconfirmed`).
    """
    with ctx.store.read() as session:
        # Enough to know who is asking and which key they hold before the prompt; the rows are
        # compared with the log once, under the writer lock, before anything is decided.
        first_use = load_anchor(vault_meta(session).id) is None
        start = Start()
        state = verify_from_pin(session, ctx.db_url, progress=ctx.progress, save=False, start=start)
        unlocked = unlock(ctx, session, authenticate(session, ctx.actor, state), state)
        # Verified from a cache the actor's MAC vouches for (or the genesis): saved, so that the
        # verification under the lock has only what was appended meanwhile to do.
        vouch(start, state, ctx.db_url, unlocked.keys)
        answered = None
        if not confirmed(str(state.vault_id), state, unlocked.keys):
            answered = _ask_fingerprint(ctx, state, first_use)
    with ctx.store.write(ctx.actor, ctx.now()) as tx:
        # Again under the writer lock: only what was appended since is verified.
        tx.believe(trusted(tx.session, ctx.db_url, keys=unlocked.keys))
        person = authenticate(tx.session, ctx.actor, tx.trust)
        key_row = active_key(tx.session, person)
        if key_row.fingerprint != unlocked.key_fingerprint:
            raise AuthenticationFailed(f"the keys of {person.handle} changed while unlocking: try again")
        unlocked.person, unlocked.key_row = person, key_row
        tx.signer = unlocked
        fingerprint = fingerprint_of(tx.state)
        sure = answered == fingerprint or confirmed(str(tx.state.vault_id), tx.state, unlocked.keys)
        if not sure:
            _hold_back_unconfirmed(tx, unlocked, fingerprint)
        tx.extras["expired"] = expire_due(tx)
        destroy_expired_versions(tx)
        if sure:
            ensure_custodians(tx, unlocked)
        yield tx, unlocked
    # Committed: the state followed every event this command wrote and signed, so the pin
    # moves past them (anyone who later rewrites them is caught at this sequence number).
    save_pin(tx.state, ctx.db_url, unlocked.keys, confirm="terminal" if answered == fingerprint else None)


def _ask_fingerprint(ctx: Context, state: "LogState", first_use: bool) -> str | None:
    """Say "first use" (or "not confirmed") with the fingerprint; at a terminal, ask to confirm it.

    Only a person at the controlling terminal (``/dev/tty``) can answer: standard input, which
    may be a pipe or a script, never confirms. Returns the fingerprint confirmed, if any.
    """
    fingerprint = fingerprint_of(state)
    what = "first use of" if first_use else "not yet confirmed on this client:"
    ctx.notice(
        f"{what} vault {state.vault_id} ({state.org}), fingerprint {fingerprint}: compare it with the one your"
        " administrator gave you out of band, then run 'govern pin trust --fingerprint FP'; until then this client"
        " wraps no key for anyone but you and the recovery key, and signs no offboarding plan"
    )
    if not govern.unlock.terminal_available():
        return None
    return fingerprint if _yes_at_terminal(f"Is {fingerprint} the fingerprint you were given? [y/N] ") else None


def _yes_at_terminal(question: str) -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    try:
        if not os.isatty(fd):
            return False
        os.write(fd, question.encode("utf-8"))
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < 64:
            chunk = os.read(fd, 1)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(fd)
    return answer.strip().lower() in (b"y", b"yes")


def _hold_back_unconfirmed(tx: WriteTx, me: Unlocked, fingerprint: str) -> None:
    """Refuse (exit 4), before it is signed, any event that gives a key to another person or
    starts an offboarding plan while the vault fingerprint is not confirmed on this client."""
    allowed = {me.key_fingerprint, tx.state.recovery_fingerprint}
    inner = tx.audit.listener
    how = (
        f"confirm the vault fingerprint first: 'govern pin trust --fingerprint {fingerprint}' if it is the one your"
        " administrator gave you out of band"
    )

    def listen(record: "EventRecord") -> None:
        data = json.loads(record.data)
        given = data.get("recipients") if record.action == "key.created" else None
        if record.action == "key.wrapped":
            given = [data.get("recipient")]
        if isinstance(given, list) and any(recipient not in allowed for recipient in given):
            raise Denied(f"this client has not confirmed this vault, so it wraps no key for anyone else: {how}")
        if record.action == "offboard.started":
            raise Denied(f"this client has not confirmed this vault, so it signs no offboarding plan: {how}")
        if inner is not None:
            inner(record)

    tx.audit.listener = listen


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
        first_use = load_anchor(vault_meta(session).id) is None
        state = trusted(session, ctx.db_url, progress=ctx.progress)
        if first_use:
            ctx.notice(
                f"first use of vault {state.vault_id} ({state.org}) on this client, fingerprint"
                f" {fingerprint_of(state)}: compare it with the one your administrator gave you, then run"
                " 'govern pin trust --fingerprint FP'"
            )
        yield session, authenticate(session, ctx.actor, state), state
