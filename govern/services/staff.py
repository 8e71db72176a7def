"""Staff: adding people, one-time enrolment codes, enrolment, roles."""

import base64
import hmac
import secrets
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlmodel import Session, col, select

from audit.log import format_ts
from audit.state import LogState, enrolment_message
from govern import validate
from govern.context import Context, Unlocked, acting, person_key, reading
from govern.custody import drop_wraps, ensure_custodians
from govern.db import WriteTx
from govern.errors import AuthenticationFailed, Conflict, Denied
from govern.models import Account, Enrolment, Grant, Person, PersonKey
from govern.services.common import get_person, live_grant, require_role
from govern.services.vaultinit import creation_kdf_params, public_keys_event
from govern.timeutil import format_time
from govern.trust import tag_of
from vault import PersonKeys

ENROLMENT_VALIDITY = timedelta(hours=72)


CODE_SECRET_BYTES = 20  # 160 bits; the code also carries 40 bits of the vault's genesis hash


def _new_code(genesis: str) -> tuple[str, bytes]:
    """A one-time code: a random secret, then a tag of the genesis hash the person must find."""
    secret = secrets.token_bytes(CODE_SECRET_BYTES)
    raw = base64.b32encode(secret).decode("ascii") + tag_of(genesis)
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4)), secret


def parse_code(code: str) -> tuple[bytes, str]:
    """``(secret, genesis tag)`` of a typed code; any malformation is a wrong code (exit 5)."""
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    body, tag = cleaned[:-8], cleaned[-8:]
    try:
        secret = base64.b32decode(body, casefold=False)
    except ValueError:
        raise AuthenticationFailed("that is not an enrolment code (check for typos)") from None
    if len(secret) != CODE_SECRET_BYTES or len(tag) != 8:
        raise AuthenticationFailed("that is not an enrolment code (check for typos)")
    return secret, tag


def code_signing_key(secret: bytes, genesis: str, vault_id: str, handle: str) -> Ed25519PrivateKey:
    """The Ed25519 key derived from a one-time code, bound to the vault's genesis and the person.

    The invitation commits to its public half; the enrolment is signed by it. A database
    writer who does not know the code cannot derive it, and a vault with another genesis
    derives another key, so the code cannot be replayed into a look-alike vault.
    """
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=bytes.fromhex(genesis),
        info=b"govern-enrolment-key/v1\n" + f"{vault_id}\n{handle}".encode(),
    ).derive(secret)
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def person_view(person: Person, key: PersonKey | None = None) -> dict[str, Any]:
    return {
        "handle": person.handle,
        "name": person.name,
        "email": person.email,
        "team": person.team,
        "role": person.role,
        "status": person.status,
        "created_at": format_time(person.created_at),
        "created_by": person.created_by,
        "key_fingerprint": None if key is None else key.fingerprint,
    }


def _issue_code(tx: WriteTx, person: Person, actor: str) -> tuple[str, Enrolment]:
    assert person.id is not None
    for open_code in tx.session.exec(
        select(Enrolment).where(Enrolment.person_id == person.id, col(Enrolment.used_at).is_(None))
    ).all():
        open_code.expires_at = min(open_code.expires_at, tx.now)
        tx.session.add(open_code)
    state = tx.state
    assert state.genesis is not None
    assert state.vault_id is not None
    code, secret = _new_code(state.genesis)
    enrol_key = _public(code_signing_key(secret, state.genesis, state.vault_id, person.handle))
    enrolment = Enrolment(
        person_id=person.id,
        code_hash=enrol_key.hex(),  # the public key the code derives; the code itself is never stored
        created_at=tx.now,
        expires_at=tx.now + ENROLMENT_VALIDITY,
        created_by=actor,
    )
    tx.session.add(enrolment)
    tx.audit.append(
        "staff.invited",
        subject=person.handle,
        data={"expires_at": format_time(enrolment.expires_at), "enrol_key": base64.b64encode(enrol_key).decode()},
    )
    return code, enrolment


def add_person(
    ctx: Context, handle: str, *, name: str, email: str | None, team: str | None, role: str
) -> dict[str, Any]:
    handle = validate.handle(handle)
    name = validate.text(name, "name")
    email = validate.email(email) if email else None
    team = validate.text(team, "team", max_length=100) if team else None
    role = validate.role(role)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "add staff")
        if tx.session.exec(select(Person).where(Person.handle == handle)).first() is not None:
            raise Conflict(f"{handle} already exists: see 'govern staff show {handle}'")
        person = Person(
            handle=handle,
            name=name,
            email=email,
            team=team,
            role=role,
            status="invited",
            created_at=tx.now,
            created_by=me.handle,
        )
        tx.session.add(person)
        tx.session.flush()
        tx.audit.append("staff.added", subject=handle, data={"name": name, "email": email, "team": team, "role": role})
        code, enrolment = _issue_code(tx, person, me.handle)
    return {
        **person_view(person),
        "enrolment_code": code,
        "code_expires_at": format_time(enrolment.expires_at),
    }


def reissue_code(ctx: Context, handle: str) -> dict[str, Any]:
    handle = validate.handle(handle)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "issue enrolment codes")
        person = get_person(tx.session, handle)
        if person.status != "invited":
            raise Conflict(f"{handle} is {person.status}, not waiting to enrol")
        code, enrolment = _issue_code(tx, person, me.handle)
    return {"handle": handle, "enrolment_code": code, "code_expires_at": format_time(enrolment.expires_at)}


def enroll(ctx: Context, handle: str, code: str) -> dict[str, Any]:
    """The person sets their passphrase; their key pairs are made and sealed under it.

    Trust is anchored by the code, not by the database: the code names the genesis of the
    vault the person was invited to, so the whole log is verified from that genesis and
    pinned, and the invitation found in the verified log must commit to the key the code
    derives. The enrolment is signed by that key and by the person's new key.
    """
    from govern.trust import confirm, trusted

    handle = validate.handle(handle)
    secret, tag = parse_code(code)
    now = ctx.now()

    def check(session: Session, *, fresh: bool = False) -> tuple[Person, Enrolment, Ed25519PrivateKey, LogState]:
        # Under the writer lock, from the genesis: no cached state of this client decides an enrolment.
        state = trusted(session, ctx.db_url, progress=ctx.progress, genesis_tag=tag, fresh=fresh)
        proven = state.people.get(handle)
        if proven is None or proven.status != "invited" or proven.invite_key is None:
            raise AuthenticationFailed(f"{handle} has no enrolment waiting")
        assert state.genesis is not None
        assert state.vault_id is not None
        signing = code_signing_key(secret, state.genesis, state.vault_id, handle)
        if not hmac.compare_digest(_public(signing), proven.invite_key):
            raise AuthenticationFailed("wrong enrolment code")
        if proven.invite_expires is not None and format_ts(now) > proven.invite_expires:
            raise AuthenticationFailed("this enrolment code has expired: ask an admin for a new one")
        person = session.exec(select(Person).where(Person.handle == handle)).one()
        enrolment = session.exec(
            select(Enrolment).where(
                Enrolment.person_id == person.id,
                col(Enrolment.used_at).is_(None),
                Enrolment.code_hash == proven.invite_key.hex(),
            )
        ).first()
        if enrolment is None:
            raise AuthenticationFailed("wrong enrolment code")
        return person, enrolment, signing, state

    with ctx.store.read() as session:
        check(session)
    passphrase = ctx.passphrase.get(f"Choose a passphrase for {handle}", new=True)
    params = creation_kdf_params()
    keys = PersonKeys.generate()
    blob, _kek = keys.seal(passphrase, params)
    with ctx.store.write(handle, now) as tx:
        person, enrolment, signing, state = check(tx.session, fresh=True)
        assert person.id is not None
        assert state.vault_id is not None
        tx.believe(state)
        enrolment.used_at = now
        person.status = "active"
        key_row = PersonKey(
            person_id=person.id,
            fingerprint=keys.public.fingerprint,
            x25519_public=keys.public.x25519,
            ed25519_public=keys.public.ed25519,
            sealed_private=blob,
            created_at=now,
        )
        tx.session.add_all([enrolment, person, key_row])
        signature = signing.sign(enrolment_message(state.vault_id, handle, keys.public.fingerprint))
        data = {**public_keys_event(keys, params), "code_signature": base64.b64encode(signature).decode("ascii")}
        tx.audit.append("staff.enrolled", subject=handle, data=data)
        tx.signer = Unlocked(person, key_row, keys)
    # The code named this vault's genesis, and the log verified from it: the fingerprint is confirmed.
    confirm(state, ctx.db_url, keys, "enrolment")
    return person_view(person, key_row)


def list_people(ctx: Context) -> list[dict[str, Any]]:
    with reading(ctx) as (session, _me):
        people = session.exec(select(Person).order_by(col(Person.handle))).all()
        keys = {k.person_id: k for k in session.exec(select(PersonKey).where(PersonKey.active == True)).all()}  # noqa: E712
        return [person_view(p, keys.get(p.id or -1)) for p in people]


def show_person(ctx: Context, handle: str) -> dict[str, Any]:
    handle = validate.handle(handle)
    with reading(ctx) as (session, _me):
        person = get_person(session, handle)
        view = person_view(person, person_key(session, person))
        grants = session.exec(
            select(Grant, Account)
            .where(Grant.person_id == person.id, Grant.account_id == Account.id)
            .order_by(col(Grant.id))
        ).all()
        view["grants"] = [
            {
                "account": account.slug,
                "reason": grant.reason,
                "until": format_time(grant.ends_at),
                "live": live_grant(session, account, person, ctx.now()) is grant,
            }
            for grant, account in grants
            if grant.revoked_at is None
        ]
        return view


def set_role(ctx: Context, handle: str, role: str) -> dict[str, Any]:
    handle = validate.handle(handle)
    role = validate.role(role)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "change roles")
        person = get_person(tx.session, handle)
        old = person.role
        if old == role:
            raise Conflict(f"{handle} is already {role}")
        if person.status in ("suspended", "offboarded"):
            raise Denied(f"{handle} is {person.status}; their role cannot change")
        if old == "admin":
            admins = tx.session.exec(select(Person).where(Person.role == "admin", Person.status == "active")).all()
            if len(admins) <= 1:
                raise Denied(f"{handle} is the last active admin; make someone else admin first")
        live = [
            g for g in tx.session.exec(select(Grant).where(Grant.person_id == person.id)).all() if g.is_live(tx.now)
        ]
        if role == "auditor" and live:
            raise Denied(f"{handle} holds {len(live)} grant(s); auditors never decrypt, so revoke them first")
        person.role = role
        tx.session.add(person)
        tx.audit.append("staff.role_changed", subject=handle, data={"from": old, "to": role})
        if old == "admin":
            held = {g.account_id for g in live}
            for account in tx.session.exec(select(Account)).all():
                if account.id not in held:
                    drop_wraps(tx, person, account, f"no longer admin ({role})")
        if role == "admin":
            ensure_custodians(tx, me)
    return person_view(person)
