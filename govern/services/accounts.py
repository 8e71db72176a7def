"""Accounts: registering corporate social media accounts and their settings."""

from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from govern import validate
from govern.context import Context, Unlocked, acting, reading
from govern.custody import live_data_keys, rekey
from govern.db import WriteTx
from govern.errors import Conflict, Denied, InvalidInput
from govern.models import Account, Grant, Person
from govern.services.common import current_version, get_account, get_person, grant_status, require_role
from govern.timeutil import format_duration, format_time

DEFAULT_MAX_HOLDERS = 3


def account_view(session: Session, account: Account) -> dict[str, Any]:
    owner = session.get(Person, account.owner_id) if account.owner_id is not None else None
    current = current_version(session, account)
    return {
        "account": account.slug,
        "platform": account.platform,
        "handle": account.handle,
        "team": account.team,
        "owner": None if owner is None else owner.handle,
        "rotate_every": None
        if account.rotate_every_s is None
        else format_duration(timedelta(seconds=account.rotate_every_s)),
        "max_holders": account.max_holders,
        "current_version": None if current is None else current.number,
        "secret_set_at": None if current is None else format_time(current.created_at),
        "created_at": format_time(account.created_at),
        "created_by": account.created_by,
    }


def _owner(session: Session, handle: str | None) -> Person | None:
    if handle is None:
        return None
    person = get_person(session, validate.handle(handle))
    if person.role == "auditor":
        raise Denied(f"{handle} is an auditor and cannot own an account")
    if person.status not in ("active", "invited"):
        raise Denied(f"{handle} is {person.status} and cannot own an account")
    return person


def add_account(
    ctx: Context,
    slug: str,
    *,
    platform: str,
    handle: str,
    team: str | None,
    owner: str | None,
    rotate_every: timedelta | None,
    max_holders: int | None,
) -> dict[str, Any]:
    slug = validate.slug(slug)
    platform = validate.platform(platform)
    handle = validate.text(handle, "platform handle")
    team = validate.text(team, "team", max_length=100) if team else None
    holders = validate.max_holders(max_holders) if max_holders is not None else DEFAULT_MAX_HOLDERS
    with acting(ctx) as (tx, me):
        _account, view = create_account(
            tx,
            me,
            slug,
            platform=platform,
            handle=handle,
            team=team,
            owner=owner,
            rotate_every=rotate_every,
            max_holders=holders,
        )
    return view


def create_account(
    tx: WriteTx,
    me: Unlocked,
    slug: str,
    *,
    platform: str,
    handle: str,
    team: str | None,
    owner: str | None,
    rotate_every: timedelta | None,
    max_holders: int,
    with_key: bool = True,
) -> tuple[Account, dict[str, Any]]:
    """Inside a write transaction: register an account (arguments already validated).

    ``with_key`` creates its first data key now; a caller that seals a version in the same
    transaction passes False (sealing creates the key).
    """
    require_role(me.person, ["admin"], "register accounts")
    session = tx.session
    if session.exec(select(Account).where(Account.slug == slug)).first() is not None:
        raise Conflict(f"account {slug} already exists")
    owner_person = _owner(session, owner)
    account = Account(
        slug=slug,
        platform=platform,
        handle=handle,
        team=team,
        owner_id=None if owner_person is None else owner_person.id,
        rotate_every_s=None if rotate_every is None else int(rotate_every.total_seconds()),
        max_holders=max_holders,
        created_at=tx.now,
        created_by=me.handle,
    )
    session.add(account)
    session.flush()
    assert account.id is not None
    view = account_view(session, account)
    tx.audit.append("account.added", account=slug, data={k: v for k, v in view.items() if k != "account"})
    if with_key:
        rekey(tx, account)
    return account, view


def update_account(
    ctx: Context,
    slug: str,
    *,
    platform: str | None,
    handle: str | None,
    team: str | None,
    owner: str | None,
    rotate_every: timedelta | None,
    max_holders: int | None,
) -> dict[str, Any]:
    slug = validate.slug(slug)
    if all(v is None for v in (platform, handle, team, owner, rotate_every, max_holders)):
        raise InvalidInput("nothing to change: pass at least one option (see 'govern account set --help')")
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "change accounts")
        session = tx.session
        account = get_account(session, slug)
        before = account_view(session, account)
        if platform is not None:
            account.platform = validate.platform(platform)
        if handle is not None:
            account.handle = validate.text(handle, "platform handle")
        if team is not None:
            account.team = validate.text(team, "team", max_length=100) or None
        if owner is not None:
            owner_person = _owner(session, owner)
            account.owner_id = None if owner_person is None else owner_person.id
        if rotate_every is not None:
            account.rotate_every_s = int(rotate_every.total_seconds())
        if max_holders is not None:
            account.max_holders = validate.max_holders(max_holders)
        session.add(account)
        session.flush()
        after = account_view(session, account)
        changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        if not changes:
            raise Conflict(f"{slug} already has those settings")
        tx.audit.append("account.updated", account=slug, data={"changes": changes})
    return after


def list_accounts(ctx: Context) -> list[dict[str, Any]]:
    with reading(ctx) as (session, _me):
        rows = []
        for account in session.exec(select(Account).order_by(col(Account.slug))).all():
            view = account_view(session, account)
            view["holders"] = sum(
                1
                for g in session.exec(select(Grant).where(Grant.account_id == account.id)).all()
                if grant_status(g, ctx.now()) == "live"
            )
            rows.append(view)
        return rows


def show_account(ctx: Context, slug: str) -> dict[str, Any]:
    slug = validate.slug(slug)
    with reading(ctx) as (session, _me):
        account = get_account(session, slug)
        view = account_view(session, account)
        holders = session.exec(
            select(Grant, Person)
            .where(Grant.account_id == account.id, Grant.person_id == Person.id)
            .order_by(col(Grant.id))
        ).all()
        view["holders"] = [
            {"handle": person.handle, "reason": grant.reason, "until": format_time(grant.ends_at)}
            for grant, person in holders
            if grant_status(grant, ctx.now()) == "live"
        ]
        view["data_keys"] = [k.id for k in live_data_keys(session, account)]
        return view
