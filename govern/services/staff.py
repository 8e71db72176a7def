"""Staff: adding people, one-time enrolment codes, enrolment, roles."""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from govern import validate
from govern.context import Context, Unlocked, acting, person_key, reading
from govern.custody import drop_wraps, ensure_custodians
from govern.db import WriteTx
from govern.errors import AuthenticationFailed, Conflict, Denied
from govern.models import Account, Enrolment, Grant, Person, PersonKey
from govern.services.common import get_person, live_grant, require_role
from govern.services.vaultinit import creation_kdf_params, public_keys_event
from govern.timeutil import format_time
from vault import PersonKeys

ENROLMENT_VALIDITY = timedelta(hours=72)


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _code_hash(code: str) -> str:
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(b"govern-enrolment/v1\n" + normalised.encode("ascii", "replace")).hexdigest()


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
    code = _new_code()
    enrolment = Enrolment(
        person_id=person.id,
        code_hash=_code_hash(code),
        created_at=tx.now,
        expires_at=tx.now + ENROLMENT_VALIDITY,
        created_by=actor,
    )
    tx.session.add(enrolment)
    tx.audit.append("staff.invited", subject=person.handle, data={"expires_at": format_time(enrolment.expires_at)})
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
    """The person sets their passphrase; their key pairs are made and sealed under it."""
    handle = validate.handle(handle)
    digest = _code_hash(code)
    now = ctx.now()

    def check(session: Session) -> tuple[Person, Enrolment]:
        person = session.exec(select(Person).where(Person.handle == handle)).first()
        if person is None or person.status != "invited":
            raise AuthenticationFailed(f"{handle} has no enrolment waiting")
        candidates = session.exec(
            select(Enrolment).where(Enrolment.person_id == person.id, col(Enrolment.used_at).is_(None))
        ).all()
        for enrolment in candidates:
            if hmac.compare_digest(enrolment.code_hash, digest):
                if enrolment.expires_at <= now:
                    raise AuthenticationFailed("this enrolment code has expired: ask an admin for a new one")
                return person, enrolment
        raise AuthenticationFailed("wrong enrolment code")

    with ctx.store.read() as session:
        check(session)
    passphrase = ctx.passphrase.get(f"Choose a passphrase for {handle}", new=True)
    params = creation_kdf_params()
    keys = PersonKeys.generate()
    blob, _kek = keys.seal(passphrase, params)
    with ctx.store.write(handle, now) as tx:
        person, enrolment = check(tx.session)
        assert person.id is not None
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
        tx.audit.append("staff.enrolled", subject=handle, data=public_keys_event(keys, params))
        tx.signer = Unlocked(person, key_row, keys)
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
