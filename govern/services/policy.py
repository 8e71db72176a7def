"""The social media policy: published versions, acknowledgements, and who still owes one."""

import hashlib
from typing import Any

from sqlmodel import col, select

from govern import validate
from govern.context import Context, acting, reading
from govern.errors import Conflict, InvalidInput, NotFound
from govern.models import Person, Policy, PolicyAck
from govern.services.access import current_policy
from govern.services.common import require_role
from govern.timeutil import format_time

MAX_POLICY_BYTES = 512 * 1024


def policy_view(policy: Policy) -> dict[str, Any]:
    return {
        "version": policy.version,
        "sha256": policy.sha256,
        "published_by": policy.published_by,
        "published_at": format_time(policy.published_at),
        "characters": len(policy.text),
    }


def publish(ctx: Context, text: str, *, version: str) -> dict[str, Any]:
    version = validate.text(version, "policy version", max_length=64)
    if not text.strip():
        raise InvalidInput("the policy file is empty")
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise InvalidInput("the policy file is larger than 512 KiB")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "publish the policy")
        if tx.session.exec(select(Policy).where(Policy.version == version)).first() is not None:
            raise Conflict(f"policy version {version} is already published; choose a new version")
        policy = Policy(version=version, text=text, sha256=digest, published_by=me.handle, published_at=tx.now)
        tx.session.add(policy)
        tx.session.flush()
        tx.audit.append("policy.published", data={"version": version, "sha256": digest, "characters": len(text)})
        view = policy_view(policy)
    return view


def acknowledge(ctx: Context, *, version: str | None) -> dict[str, Any]:
    with acting(ctx) as (tx, me):
        session = tx.session
        if version is None:
            policy = current_policy(session)
            if policy is None:
                raise NotFound("no policy has been published")
        else:
            policy = session.exec(select(Policy).where(Policy.version == version)).first()
            if policy is None:
                raise NotFound(f"no policy version {version!r}: see 'govern policy status'")
        assert policy.id is not None
        assert me.person.id is not None
        already = session.exec(
            select(PolicyAck).where(PolicyAck.policy_id == policy.id, PolicyAck.person_id == me.person.id)
        ).first()
        if already is not None:
            raise Conflict(f"{me.handle} already acknowledged policy version {policy.version}")
        session.add(PolicyAck(policy_id=policy.id, person_id=me.person.id, acked_at=tx.now))
        tx.audit.append(
            "policy.acknowledged", subject=me.handle, data={"version": policy.version, "sha256": policy.sha256}
        )
        current = current_policy(session)
        view = {**policy_view(policy), "handle": me.handle, "current": current is not None and current.id == policy.id}
    return view


def status(ctx: Context) -> dict[str, Any]:
    """The current version and, for every active person, whether they acknowledged it."""
    with reading(ctx) as (session, _me):
        policy = current_policy(session)
        if policy is None:
            return {"policy": None, "acknowledged": [], "pending": []}
        acks = {a.person_id: a for a in session.exec(select(PolicyAck).where(PolicyAck.policy_id == policy.id)).all()}
        people = session.exec(
            select(Person).where(col(Person.status).in_(["active", "invited"])).order_by(col(Person.handle))
        ).all()
        acknowledged = [
            {"handle": p.handle, "role": p.role, "acked_at": format_time(acks[p.id].acked_at)}
            for p in people
            if p.id in acks
        ]
        pending = [{"handle": p.handle, "role": p.role, "status": p.status} for p in people if p.id not in acks]
        versions = [policy_view(p) for p in session.exec(select(Policy).order_by(col(Policy.id))).all()]
        return {"policy": policy_view(policy), "acknowledged": acknowledged, "pending": pending, "versions": versions}


def show(ctx: Context, *, version: str | None) -> tuple[dict[str, Any], str]:
    """The policy text (current, or a given version) with its metadata."""
    with reading(ctx) as (session, _me):
        if version is None:
            policy = current_policy(session)
            if policy is None:
                raise NotFound("no policy has been published")
        else:
            policy = session.exec(select(Policy).where(Policy.version == version)).first()
            if policy is None:
                raise NotFound(f"no policy version {version!r}")
        return policy_view(policy), policy.text
