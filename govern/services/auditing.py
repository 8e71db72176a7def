"""Audit services: reading, verifying, checkpointing, replaying and exporting the log.

Auditors and admins see every event. Members and managers see only events by or
about themselves and events of the accounts they hold.
"""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from audit.chain import EventRecord, VerifiedHead
from audit.checkpoint import make_checkpoint, read_checkpoint
from audit.contain import verify_contained
from audit.errors import ChainError
from audit.export import jsonl_lines, verify_export
from audit.fingerprint import normalise, same, vault_fingerprint
from audit.log import format_ts
from audit.state import LogState, iso_to_ts
from audit.stream import SealCursor, head, stream_events
from govern import validate
from govern.context import Context, acting, reading, unlock, vault_meta, verified_reading
from govern.errors import Conflict, Denied, IntegrityFailure, InvalidInput, NotFound
from govern.infile import read_text_file
from govern.models import Account, Grant, Person
from govern.services.common import get_account, grant_status, require_role
from govern.timeutil import format_time
from govern.trust import checkpoint_signer_refusal

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


def verify_export_file(
    export: Path,
    *,
    checkpoint: Path | None = None,
    keys: dict[str, tuple[str, bytes]] | None = None,
    roles: dict[str, tuple[str, str]] | None = None,
    expect: str | None = None,
) -> dict[str, Any]:
    """Verify a JSONL export offline: no database, no passphrase.

    An export alone proves only its own consistency. This client's pin of the vault (if it
    has one), a ``checkpoint`` signed by an admin or auditor of the vault, and ``expect`` (the
    vault fingerprint given out of band) anchor it: the export must hold the very events they
    saw, of the vault they name.
    """
    expected = None if expect is None else expected_fingerprint(expect)
    wanted: dict[int, str] = {}
    seen: dict[int, str] = {}

    def anchor(seq: int, digest: str) -> None:
        if seq in wanted:
            seen[seq] = digest

    checkpoint_body: dict[str, Any] | None = None
    pinned = _pin_of_export(export)
    if pinned is not None and pinned.seq:
        wanted[pinned.seq] = pinned.head
    if checkpoint is not None:
        text = read_text_file(checkpoint, "checkpoint", limit=64 * 1024)
        try:
            checkpoint_body = json.loads(text)
            wanted[int(checkpoint_body["seq"])] = str(checkpoint_body["head"])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ChainError(f"cannot read the checkpoint {checkpoint}") from None
    header, result = verify_export(export, anchor=anchor)
    anchored = []
    # Export times are whole seconds; event times carry microseconds: compare the seconds.
    exported_at = (iso_to_ts(header.get("exported_at")) or "")[:19]
    if result.state.last_ts[:19] > exported_at:
        raise ChainError("the export holds events later than the time it says it was made", result.last_seq)
    if pinned is not None and _anchored_by_pin(pinned, result, seen, exported_at):
        anchored.append(f"pin (event {pinned.seq})")
    fingerprint = fingerprint_of_log(result.state)
    if expected is not None and not same(fingerprint, expected):
        raise ChainError(
            f"this export is of the vault with fingerprint {fingerprint}, not the {expected} you expect:"
            " a look-alike vault (same id, names and handles, another genesis or recovery key)"
        )
    if checkpoint is not None:
        anchored.append(_export_checkpoint(text, result, seen))
    if keys is not None:
        keys.update(result.keys)  # for a caller that checks more signatures (an evidence pack)
    if roles is not None:  # (role, status) of each person at the export's head, as its log proves them
        roles.update({h: (p.role, p.status) for h, p in result.state.people.items()})
    return {
        "source": str(export),
        "vault_id": header.get("vault_id"),
        "fingerprint": fingerprint,
        "expected": None if expected is None else "matches",
        "exported_by": header.get("exported_by"),
        "events": result.events,
        "transactions": result.transactions,
        "last_seq": result.last_seq,
        "head": result.head,
        "anchored_by": ", ".join(anchored) if anchored else "nothing: this export proves only its own consistency",
        "findings": [],
    }


def _export_checkpoint(text: str, result: VerifiedHead, seen: dict[int, str]) -> str:
    """The checkpoint must be signed by an admin or auditor of the exported vault, and be in the export."""
    body = read_checkpoint(text, result.keys)
    if body["vault_id"] != result.state.vault_id:
        raise ChainError("the checkpoint belongs to another vault")
    refusal = checkpoint_signer_refusal(result.state, body)
    if refusal is not None:
        raise ChainError(refusal)
    seq = int(body["seq"])
    if seq > result.last_seq:
        raise ChainError(f"the export ends at event {result.last_seq} but the checkpoint saw event {seq}", seq)
    if seen.get(seq) != body["head"]:
        raise ChainError("the event the checkpoint saw was changed", seq)
    return f"checkpoint (event {seq})"


def _pin_of_export(export: Path) -> LogState | None:
    """This client's pin of the vault an export's header names, if any (the header is not yet trusted)."""
    from govern.trust import load_pin

    if not export.exists():
        raise NotFound(f"there is no export at {export}")
    if not export.is_file():
        raise InvalidInput(f"{export} is not a regular file: an export is a JSONL file")
    try:
        with export.open(encoding="utf-8") as handle:
            first = json.loads(handle.readline(1_000_000) or "{}")
        vault_id = str(first.get("vault_id")) if isinstance(first, dict) else ""
    except (OSError, ValueError, UnicodeDecodeError):
        vault_id = ""
    return load_pin(vault_id) if validate.is_uuid(vault_id) else None


def _anchored_by_pin(pinned: LogState, result: VerifiedHead, seen: dict[int, str], exported_at: str) -> bool:
    """Does the export hold what this client pinned? Raise if it contradicts the pin."""
    if pinned.genesis != result.state.genesis:
        raise ChainError("the export's genesis differs from the one this client pinned for its vault", 1)
    if pinned.seq <= result.last_seq:
        if seen.get(pinned.seq) != pinned.head:
            raise ChainError("not the event this client verified: the export was rewritten", pinned.seq)
        return True
    if pinned.last_ts[:19] < exported_at:
        # Complete when it was made, yet it ends before an event this client had already seen by then.
        raise ChainError(
            f"the export says it is complete at {exported_at} but ends before event {pinned.seq},"
            f" which this client verified and which is dated {pinned.last_ts}: it was cut",
            result.last_seq + 1,
        )
    return False  # an older export than the pin: consistent, but not anchored by it


def expected_fingerprint(typed: str) -> str:
    """A fingerprint given with ``--expect``, in its displayed form; exit 2 when it cannot be one."""
    fingerprint = normalise(typed)
    if fingerprint is None:
        raise InvalidInput("--expect takes a vault fingerprint: 32 characters A-Z and 2-7 (dashes ignored)")
    return fingerprint


def fingerprint_of_log(state: LogState) -> str:
    if state.genesis is None or state.recovery_fingerprint is None:
        raise ChainError("the log has no genesis event", 1)
    return vault_fingerprint(state.genesis, state.recovery_fingerprint)


def verify(ctx: Context, *, checkpoint: Path | None = None, expect: str | None = None) -> dict[str, Any]:
    """Verify the whole log from its genesis: chain, seals, the rules of the log, this client's
    pin, the checkpoint, and every governance row against the state the log proves.

    Raises ChainError at the first bad event; rows the log does not explain are findings.
    """
    from govern.trust import check_pin_against, load_anchor, not_after, pinned_vault_of, save_pin, unexplained_rows

    expected = None if expect is None else expected_fingerprint(expect)
    with reading(ctx) as (session, _me):
        total = count_all(session)
        done = 0

        def step(events: int) -> None:
            nonlocal done
            done += events
            if ctx.progress is not None:
                ctx.progress(done, total)

        result = verify_contained(
            LogState, lambda _seq: stream_events(session), SealCursor(session), not_after=not_after(), progress=step
        )
        state = result.state
        report: dict[str, Any] = {
            "source": "database",
            "vault_id": state.vault_id,
            "events": result.events,
            "transactions": result.transactions,
            "last_seq": result.last_seq,
            "head": result.head,
            "genesis": state.genesis,
            "fingerprint": fingerprint_of_log(state),
        }
        if expected is not None and not same(report["fingerprint"], expected):
            raise IntegrityFailure(
                f"this database holds the vault with fingerprint {report['fingerprint']}, not the {expected} you"
                " expect: a look-alike vault, or the wrong database"
            )
        known = pinned_vault_of(ctx.db_url)
        if known is not None and known != state.vault_id and load_anchor(str(state.vault_id)) is None:
            raise IntegrityFailure(
                f"this database held vault {known} when this client last used it; it now holds {state.vault_id}:"
                " refusing a swapped vault (after a deliberate move, run 'govern pin reset')"
            )
        # Transactions that broke a rule, contained (skipped) so the team keeps working: named
        # here until an admin records a decision (``govern audit acknowledge``).
        report["violations"] = [
            {"transaction": int(first), **violation} for first, violation in sorted(state.violations.items())
        ]
        report["pin"] = check_pin_against(session, state)
        if report["pin"] is None:
            ctx.notice(
                f"first use of vault {state.vault_id} on this client: fingerprint {report['fingerprint']}"
                " (compare it with the one you were given, or pass --expect)"
            )
        if checkpoint is not None:
            report["checkpoint"] = _check_checkpoint(session, checkpoint, result.keys, result.last_seq, state)
        report["findings"] = unexplained_rows(session, state)
        if vault_meta(session).id != state.vault_id:
            report["findings"].insert(0, f"the vault record says {vault_meta(session).id}, the log {state.vault_id}")
        if not report["findings"]:
            save_pin(state, ctx.db_url)
        return report


def acknowledge_violation(ctx: Context, transaction: int, *, reason: str) -> dict[str, Any]:
    """An admin's signed decision about a contained transaction: it stops being news."""
    reason = validate.reason(reason)
    with acting(ctx) as (tx, me):
        require_role(me.person, ["admin"], "acknowledge contained transactions")
        violation = tx.state.violations.get(str(transaction))
        if violation is None:
            raise NotFound(f"transaction {transaction} is not a contained violation: see 'govern audit verify'")
        if violation.get("acknowledged_by") is not None:
            raise Conflict(f"transaction {transaction} was already acknowledged by {violation['acknowledged_by']}")
        tx.audit.append("audit.violation_acknowledged", reason=reason, data={"transaction": transaction})
        return {"transaction": transaction, **violation, "acknowledged_by": me.handle, "reason": reason}


def count_all(session: Session) -> int:
    from sqlalchemy import text

    return int(session.connection().execute(text("SELECT COUNT(*) FROM audit_event")).scalar_one())


def _check_checkpoint(
    session: Session, path: Path, keys: dict[str, tuple[str, bytes]], last_seq: int, state: LogState
) -> dict[str, Any]:
    text = read_text_file(path, "checkpoint", limit=64 * 1024)
    body = read_checkpoint(text, keys)
    if body["vault_id"] != vault_meta(session).id:
        raise ChainError("the checkpoint belongs to another vault")
    refusal = checkpoint_signer_refusal(state, body)
    if refusal is not None:
        raise ChainError(refusal)
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
    with verified_reading(ctx) as (session, me, state):
        require_role(me, READ_ALL, "sign audit checkpoints")
        unlocked = unlock(ctx, session, me, state)
        last = head(session)
        if last is None:
            raise NotFound("the audit log is empty")
        if (last.seq, last.hash) != (state.seq, state.head):
            raise IntegrityFailure("the log's head is not the one just verified: try again")
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


def _replay_until(session: Session, ts: str | None) -> LogState:
    """The state the log proves at ``ts`` (whole transactions share one time), verified."""
    from govern.trust import not_after

    def events(_seq: int) -> Iterator[EventRecord]:
        return stream_events(session, where="ts <= :until", params={"until": ts}) if ts else stream_events(session)

    # Contained transactions (audit/contain.py) are left out, as every command leaves them out.
    return verify_contained(LogState, events, SealCursor(session), not_after=not_after()).state


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
    if slug in projection.accounts:
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
    return {"account": slug, "at": format_time(at), "existed": slug in projection.accounts, "people": people}


def history(ctx: Context, slug: str) -> dict[str, Any]:
    """Intervals of access per person, and the versions and rotations over time."""
    slug = validate.slug(slug)
    with reading(ctx) as (session, me):
        account = get_account(session, slug)
        _may_ask_about(session, me, account, ctx.now())
        projection = _replay_until(session, None)
    now = format_ts(ctx.now())
    access = []
    for g in sorted(projection.grants.values(), key=lambda g: (g.start, g.id)):
        if g.account != slug:
            continue
        end = g.end()
        # A planned end still ahead is not an end: the grant is live (``until`` says when it lapses).
        ended = end if end is not None and end <= now else None
        access.append(
            {
                "handle": g.handle,
                "via": f"grant {g.id}",
                "from": g.start,
                "to": ended,
                "until": g.until,
                "ended_by": None if ended is None else ("revoked" if g.revoked == ended else "expired"),
                "reason": g.reason,
            }
        )
    for handle, person in sorted(projection.people.items()):
        access += [{"handle": handle, "via": "admin role", "from": s, "to": e, "until": None,
                    "ended_by": None if e is None else "role ended", "reason": None}
                   for s, e in person.admin_periods]  # fmt: skip
    access.sort(key=lambda row: (row["from"], row["handle"]))
    versions = [
        {"version": v.number, "at": v.at, "by": v.by, "changed": v.changed, "how": v.how}
        for v in sorted(projection.versions.get(slug, {}).values(), key=lambda v: (v.at, v.number))
        if v.status not in ("pending", "aborted")
    ]
    return {"account": slug, "access": access, "versions": versions}


# -- export --------------------------------------------------------------------------------


def count_events(ctx: Context, **filters: Any) -> int:
    """How many events an export with these filters will hold (for the progress bar)."""
    from sqlalchemy import text

    with reading(ctx) as (session, me):
        where, params, _everything = _filters(session, me, ctx.now(), **filters)
        # ``where`` is built only from fixed clauses with bound parameters (see _filters).
        query = "SELECT COUNT(*) FROM audit_event" + (f" WHERE {where}" if where else "")  # noqa: S608
        return int(session.connection().execute(text(query), params).scalar_one())


def export_lines(ctx: Context, fmt: str, *, excel: bool = False, **filters: Any) -> Iterator[str]:
    """The export, line by line, streamed from the database in batches (constant memory)."""
    from govern import __version__
    from govern.services.exports import csv_lines, ocsf_lines

    # Verified first (from this client's pin): nobody signs an export of a rolled-back log.
    with verified_reading(ctx) if fmt == "jsonl" else reading(ctx) as (session, me, *_state):
        where, params, everything = _filters(session, me, ctx.now(), **filters)
        vault_id = vault_meta(session).id
        events = stream_events(session, where=where, params=params)
        if fmt == "jsonl":
            unlocked = unlock(ctx, session, me)
            genesis = next(stream_events(session, batch=1), None)
            header = {
                "vault_id": vault_id,
                "genesis": None if genesis is None else genesis.hash,
                "exported_at": format_time(ctx.now()),
                "exported_by": me.handle,
                "key": unlocked.key_fingerprint,
                "complete": everything,
                "filters": {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in filters.items()},
            }
            yield from jsonl_lines(events, SealCursor(session), header, sign=unlocked.sign, with_seals=everything)
        elif fmt == "csv":
            yield from csv_lines(events, excel=excel)
        else:
            yield from ocsf_lines(events, vault_id=vault_id, version=__version__)
