"""Audit services: reading, verifying, checkpointing, replaying and exporting the log.

Auditors and admins see every event. Members and managers see only events by or
about themselves and events of the accounts they hold.
"""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from audit.chain import EventRecord, verify_chain
from audit.checkpoint import make_checkpoint, read_checkpoint
from audit.errors import ChainError
from audit.export import jsonl_lines, verify_export
from audit.log import format_ts
from audit.stream import SealCursor, head, stream_events
from govern import validate
from govern.context import Context, reading, unlock, vault_meta
from govern.errors import Denied, NotFound
from govern.models import Account, Grant, KeyWrap, Person
from govern.services.common import get_account, grant_status, require_role
from govern.services.projection import Projection
from govern.timeutil import format_time

READ_ALL = ("admin", "auditor")


def event_view(event: EventRecord) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "ts": event.ts,
        "tx": event.tx,
        "actor": event.actor,
        "action": event.action,
        "account": event.account,
        "subject": event.subject,
        "reason": event.reason,
        "data": json.loads(event.data),
        "hash": event.hash,
    }


def _scope(session: Session, me: Person, now: datetime) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions limiting what ``me`` may read of the log."""
    if me.role in READ_ALL:
        return [], {}
    held = [
        account.slug
        for grant, account in session.exec(
            select(Grant, Account).where(Grant.person_id == me.id, Grant.account_id == Account.id)
        ).all()
        if grant_status(grant, now) == "live"
    ]
    params: dict[str, Any] = {"me": me.handle}
    names = []
    for i, slug in enumerate(sorted(set(held))):
        params[f"held{i}"] = slug
        names.append(f":held{i}")
    accounts = f" OR account IN ({', '.join(names)})" if names else ""
    return [f"(actor = :me OR subject = :me{accounts})"], params


def _filters(
    session: Session,
    me: Person,
    now: datetime,
    *,
    account: str | None,
    staff: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, dict[str, Any], bool]:
    """The WHERE clause for the filters and the actor's scope; True when it selects everything."""
    clauses, params = _scope(session, me, now)
    if account is not None:
        clauses.append("account = :account")
        params["account"] = validate.slug(account)
    if staff is not None:
        clauses.append("(actor = :staff OR subject = :staff)")
        params["staff"] = validate.handle(staff)
    if action is not None:
        clauses.append("action LIKE :action")
        params["action"] = validate.text(action, "action", max_length=64).replace("%", "") + "%"
    if since is not None:
        clauses.append("ts >= :since")
        params["since"] = format_ts(since)
    if until is not None:
        clauses.append("ts < :until")
        params["until"] = format_ts(until)
    return " AND ".join(clauses), params, not clauses


def query_events(
    ctx: Context,
    *,
    account: str | None = None,
    staff: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the events the actor may read, matching the filters, oldest first."""
    with reading(ctx) as (session, me):
        where, params, _everything = _filters(
            session, me, ctx.now(), account=account, staff=staff, action=action, since=since, until=until
        )
        for event in stream_events(session, where=where, params=params):
            yield event_view(event)


# -- verification --------------------------------------------------------------------------


def _compare_people(people: dict[str, Person], projection: Projection) -> list[str]:
    findings = []
    for handle, person in sorted(people.items()):
        expected = projection.people.get(handle)
        if expected is None:
            findings.append(f"person {handle} is not explained by the log")
            continue
        if person.role != expected.role:
            findings.append(f"{handle} is {person.role} in the tables but {expected.role} in the log")
        if person.status != expected.status:
            findings.append(f"{handle} is {person.status} in the tables but {expected.status} in the log")
    findings += [
        f"person {h} of the log is missing from the tables" for h in sorted(set(projection.people) - set(people))
    ]
    return findings


def _compare_grants(
    session: Session, handles: dict[int | None, str], accounts: dict[int | None, Account], projection: Projection
) -> list[str]:
    findings = []
    table_grants = list(session.exec(select(Grant).order_by(col(Grant.id))).all())
    for grant in table_grants:
        assert grant.id is not None
        expected = projection.grants.get(grant.id)
        slug = accounts[grant.account_id].slug if grant.account_id in accounts else "?"
        holder = handles.get(grant.person_id, "?")
        if expected is None:
            findings.append(f"grant {grant.id} ({holder} on {slug}) is not explained by the log")
        elif (expected.account, expected.handle) != (slug, holder):
            findings.append(f"grant {grant.id} names {holder} on {slug} but the log says {expected.handle}")
        elif (grant.revoked_at is None) != (expected.revoked is None):
            state = "live" if grant.revoked_at is None else "revoked"
            findings.append(f"grant {grant.id} ({holder} on {slug}) is {state} in the tables, not in the log")
    missing = set(projection.grants) - {g.id for g in table_grants}
    findings += [f"grant {grant_id} of the log is missing from the tables" for grant_id in sorted(missing)]
    return findings


def _compare_owners(
    handles: dict[int | None, str], accounts: dict[int | None, Account], projection: Projection
) -> list[str]:
    findings = []
    for account in sorted(accounts.values(), key=lambda a: a.slug):
        if account.slug not in projection.owners:
            findings.append(f"account {account.slug} is not explained by the log")
            continue
        owner = handles.get(account.owner_id) if account.owner_id is not None else None
        expected = projection.owners[account.slug]
        if owner != expected:
            findings.append(f"{account.slug} is owned by {owner} in the tables but by {expected} in the log")
    return findings


def _compare_tables(session: Session, projection: Projection) -> list[str]:
    """Rows of the tables that the log does not explain (or that the log expects and are gone)."""
    people = {p.handle: p for p in session.exec(select(Person)).all()}
    handles: dict[int | None, str] = {p.id: p.handle for p in people.values()}
    accounts: dict[int | None, Account] = {a.id: a for a in session.exec(select(Account)).all()}
    findings = _compare_people(people, projection)
    findings += _compare_grants(session, handles, accounts, projection)
    findings += _compare_owners(handles, accounts, projection)
    wraps = {(w.data_key_id, w.recipient_fingerprint) for w in session.exec(select(KeyWrap)).all()}
    for key_id, fingerprint in sorted(wraps - projection.wraps):
        findings.append(f"a wrap of data key {key_id} to key {fingerprint} is not explained by the log")
    for key_id, fingerprint in sorted(projection.wraps - wraps):
        findings.append(f"a wrap of data key {key_id} to key {fingerprint} of the log is missing from the tables")
    return findings


def verify_export_file(export: Path) -> dict[str, Any]:
    """Verify a JSONL export offline: no database, no passphrase."""
    header, result = verify_export(export)
    return {
        "source": str(export),
        "vault_id": header.get("vault_id"),
        "events": result.events,
        "transactions": result.transactions,
        "last_seq": result.last_seq,
        "head": result.head,
        "findings": [],
    }


def verify(ctx: Context, *, checkpoint: Path | None = None) -> dict[str, Any]:
    """Verify the chain, the checkpoint and the tables; raise ChainError at the first bad event."""
    with reading(ctx) as (session, _me):
        projection = Projection()

        def replaying() -> Iterator[EventRecord]:
            for event in stream_events(session):
                projection.apply(event)
                yield event

        result = verify_chain(replaying(), SealCursor(session))
        report: dict[str, Any] = {
            "source": "database",
            "vault_id": vault_meta(session).id,
            "events": result.events,
            "transactions": result.transactions,
            "last_seq": result.last_seq,
            "head": result.head,
        }
        if checkpoint is not None:
            report["checkpoint"] = _check_checkpoint(session, checkpoint, result.keys, result.last_seq)
        report["findings"] = projection.findings + _compare_tables(session, projection)
        return report


def _check_checkpoint(
    session: Session, path: Path, keys: dict[str, tuple[str, bytes]], last_seq: int
) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ChainError(f"cannot read the checkpoint {path}") from None
    body = read_checkpoint(text, keys)
    if body["vault_id"] != vault_meta(session).id:
        raise ChainError("the checkpoint belongs to another vault")
    seq = int(body["seq"])
    if seq > last_seq:
        raise ChainError(
            f"the log ends at event {last_seq} but the checkpoint saw event {seq}: truncated", last_seq + 1
        )
    row = next(stream_events(session, after=seq - 1, batch=1), None)
    if row is None or row.hash != body["head"]:
        raise ChainError("the event the checkpoint saw was changed", seq)
    return {"seq": seq, "head": body["head"], "ts": body["ts"], "signer": body["signer"], "ok": True}


def checkpoint(ctx: Context) -> dict[str, Any]:
    """The current head, signed by the acting admin or auditor."""
    with reading(ctx) as (session, me):
        require_role(me, READ_ALL, "sign audit checkpoints")
        unlocked = unlock(ctx, session, me)
        last = head(session)
        if last is None:
            raise NotFound("the audit log is empty")
        return make_checkpoint(
            vault_id=vault_meta(session).id,
            seq=last.seq,
            head=last.hash,
            ts=format_ts(ctx.now()),
            signer=me.handle,
            key=unlocked.key_fingerprint,
            sign=unlocked.sign,
        )


# -- questions over time -------------------------------------------------------------------


def _replay_until(session: Session, ts: str | None) -> Projection:
    projection = Projection()
    for event in stream_events(session):
        if ts is not None and event.ts > ts:
            break
        projection.apply(event)
    return projection


def _may_ask_about(session: Session, me: Person, account: Account, now: datetime) -> None:
    if me.role in READ_ALL:
        return
    live = session.exec(select(Grant).where(Grant.account_id == account.id, Grant.person_id == me.id)).all()
    if not any(grant_status(g, now) == "live" for g in live):
        raise Denied(f"{me.handle} may ask about {account.slug} only while holding it (auditors and admins always)")


def who_had(ctx: Context, slug: str, at: datetime) -> dict[str, Any]:
    """Who could decrypt ``slug`` at ``at``: holders by grant, and admins by role, from the log."""
    slug = validate.slug(slug)
    ts = format_ts(at)
    with reading(ctx) as (session, me):
        account = get_account(session, slug)
        _may_ask_about(session, me, account, ctx.now())
        projection = _replay_until(session, ts)
    people: list[dict[str, Any]] = []
    if slug in projection.owners:
        for grant in sorted(projection.grants.values(), key=lambda g: g.id):
            if grant.account == slug and grant.live_at(ts):
                people.append(
                    {
                        "handle": grant.handle,
                        "via": "grant",
                        "grant": grant.id,
                        "reason": grant.reason,
                        "granted_by": grant.by,
                        "from": grant.start,
                        "until": grant.until,
                    }
                )
        people += [{"handle": handle, "via": "admin role"} for handle in projection.admins_at(ts)]
    return {"account": slug, "at": format_time(at), "existed": slug in projection.owners, "people": people}


def history(ctx: Context, slug: str) -> dict[str, Any]:
    """Intervals of access per person, and the versions and rotations over time."""
    slug = validate.slug(slug)
    with reading(ctx) as (session, me):
        account = get_account(session, slug)
        _may_ask_about(session, me, account, ctx.now())
        projection = _replay_until(session, None)
    access = [
        {
            "handle": g.handle,
            "via": f"grant {g.id}",
            "from": g.start,
            "to": g.end(),
            "ended_by": "revoked" if g.revoked else ("expired" if g.end() else None),
            "reason": g.reason,
        }
        for g in sorted(projection.grants.values(), key=lambda g: (g.start, g.id))
        if g.account == slug
    ]
    for handle, periods in sorted(projection.admin_periods.items()):
        access += [{"handle": handle, "via": "admin role", "from": s, "to": e, "ended_by": None, "reason": None}
                   for s, e in periods]  # fmt: skip
    access.sort(key=lambda row: (row["from"], row["handle"]))
    return {"account": slug, "access": access, "versions": projection.versions.get(slug, [])}


# -- export --------------------------------------------------------------------------------


def count_events(ctx: Context, **filters: Any) -> int:
    """How many events an export with these filters will hold (for the progress bar)."""
    from sqlalchemy import text

    with reading(ctx) as (session, me):
        where, params, _everything = _filters(session, me, ctx.now(), **filters)
        # ``where`` is built only from fixed clauses with bound parameters (see _filters).
        query = "SELECT COUNT(*) FROM audit_event" + (f" WHERE {where}" if where else "")  # noqa: S608
        return int(session.connection().execute(text(query), params).scalar_one())


def export_lines(ctx: Context, fmt: str, **filters: Any) -> Iterator[str]:
    """The export, line by line, streamed from the database in batches (constant memory)."""
    from govern import __version__
    from govern.services.exports import csv_lines, ocsf_lines

    with reading(ctx) as (session, me):
        where, params, everything = _filters(session, me, ctx.now(), **filters)
        vault_id = vault_meta(session).id
        events = stream_events(session, where=where, params=params)
        if fmt == "jsonl":
            header = {
                "vault_id": vault_id,
                "exported_at": format_time(ctx.now()),
                "exported_by": me.handle,
                "complete": everything,
                "filters": {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in filters.items()},
            }
            yield from jsonl_lines(events, SealCursor(session), header, with_seals=everything)
        elif fmt == "csv":
            yield from csv_lines(events)
        else:
            yield from ocsf_lines(events, vault_id=vault_id, version=__version__)
