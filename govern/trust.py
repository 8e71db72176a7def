"""Who is believed: each client's pin of a vault, and the state the log proves.

Rows are a cache that anyone with database access can rewrite; signatures are the truth.
Before a command authorises anything, wraps a data key or reveals a value, it calls
:func:`trusted`, which

1. finds this client's pin of the vault (kept outside the database, in its own state
   directory, 0600): the vault id, the genesis hash, the recovery key's fingerprint, the
   highest head it has verified, and the state the log proved at that head;
2. refuses a vault whose genesis differs, or whose log at the pinned sequence number has
   another hash (a rollback, a rewrite, a truncation below the pin);
3. verifies only what is new (chain, signatures, rules, replay) from the pinned head;
4. compares every governance row with that verified state and refuses (exit 6, naming
   the first row) anything the log does not explain;
5. advances the pin, and returns the state, from which callers take roles, statuses,
   public keys, live grants, owners, caps, the recovery key and the commitments.

A client that has never seen a vault verifies it all from the genesis and pins it (trust
on first use), except at enrolment, where the one-time code binds the genesis hash.
"""

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from audit.chain import EventRecord
from audit.contain import verify_contained
from audit.errors import ChainError
from audit.log import format_ts
from audit.state import MAX_SKEW_S, Case, LogState, key_blob_digest, sealed_digest, text_digest
from audit.stream import SealCursor, head, stream_events
from govern import timeutil, validate
from govern.errors import IntegrityFailure
from govern.models import (
    AccessRequest,
    Account,
    CredentialVersion,
    DataKey,
    Exposure,
    Grant,
    KeyWrap,
    KnowledgeRecord,
    OffboardCase,
    OffboardStep,
    Person,
    PersonKey,
    Policy,
    PolicyAck,
    Review,
    ReviewItem,
    Rotation,
    SealedField,
    VaultMeta,
)
from govern.settings import state_dir
from govern.timeutil import format_duration
from vault import PublicKeys, RecoveryKey

PIN_FORMAT = "govern-pin"
PIN_VERSION = 1
Progress = Callable[[int, int], None]  # (events done, events to verify)


# -- the pin file ------------------------------------------------------------------------------


def _pins_dir() -> Path:
    directory = state_dir() / "pins"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (directory.parent, directory):
        if folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)
    return directory


def _pin_path(vault_id: str) -> Path:
    # The id comes from the database or from a log someone else made: never a path of their choosing.
    if not validate.is_uuid(vault_id):
        raise IntegrityFailure(f"the vault id {vault_id!r} is not a UUID: this is not a vault made by govern")
    return _pins_dir() / f"{vault_id}.json"


def _databases_path() -> Path:
    return _pins_dir() / "databases.json"


def _write_private(path: Path, body: dict[str, Any]) -> None:
    """Write ``body`` as JSON to ``path`` atomically, mode 0600 (a crash leaves the old file)."""
    fd, tmp = tempfile.mkstemp(prefix=".pin-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, separators=(",", ":"), sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IntegrityFailure(f"cannot read this client's pin {path}: {exc.strerror}") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise IntegrityFailure(f"this client's pin {path} is corrupt: move it away and re-pin") from None
    if not isinstance(body, dict):
        raise IntegrityFailure(f"this client's pin {path} is corrupt: move it away and re-pin")
    return body


@dataclass(frozen=True)
class Anchor:
    """What a pin holds on to: the genesis, and the event at the highest verified sequence number."""

    vault_id: str
    genesis: str
    seq: int
    head: str


def load_anchor(vault_id: str) -> Anchor | None:
    """This client's anchor for ``vault_id``; a malformed one is refused (exit 6), never ignored."""
    return _load(vault_id)[0]


def _load(vault_id: str) -> tuple[Anchor | None, LogState | None]:
    """The pin file read once: its anchor, and the cached state if it is readable and matches."""
    body = _read_json(_pin_path(vault_id))
    if body is None:
        return None, None
    try:
        if body.get("format") != PIN_FORMAT or body.get("v") != PIN_VERSION or body.get("vault_id") != vault_id:
            raise ValueError
        anchor = Anchor(vault_id, body["genesis"], body["seq"], body["head"])
        if not (isinstance(anchor.genesis, str) and isinstance(anchor.head, str) and type(anchor.seq) is int):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise IntegrityFailure(
            f"this client's pin of vault {vault_id} is corrupt: move it away and re-pin ('govern pin reset')"
        ) from None
    try:
        state = LogState.from_json(body["state"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return anchor, None
    if (state.vault_id, state.genesis, state.seq, state.head) != (vault_id, anchor.genesis, anchor.seq, anchor.head):
        return anchor, None
    return anchor, state


def load_pin(vault_id: str) -> LogState | None:
    """The state this client verified and pinned for ``vault_id``, if any and if still readable.

    The state beside the anchor is a cache: one written by another version of govern is
    ignored (the log is then verified from its genesis, and must still reach the anchor).
    """
    return _load(vault_id)[1]


def save_pin(state: LogState, db_url: str) -> None:
    """Advance the pin to ``state`` (never backwards) and remember which database holds the vault."""
    assert state.vault_id is not None
    path = _pin_path(state.vault_id)
    existing = _read_json(path)
    if existing is not None and isinstance(existing.get("seq"), int) and existing["seq"] > state.seq:
        return  # another command of this client verified further meanwhile
    _write_private(
        path,
        {
            "format": PIN_FORMAT,
            "v": PIN_VERSION,
            "vault_id": state.vault_id,
            "genesis": state.genesis,
            "recovery_fingerprint": state.recovery_fingerprint,
            "seq": state.seq,
            "head": state.head,
            "state": state.to_json(),
        },
    )
    remember_database(db_url, state.vault_id)


def forget_pin(vault_id: str) -> bool:
    try:
        _pin_path(vault_id).unlink()
    except FileNotFoundError:
        return False
    return True


def _database_key(db_url: str) -> str:
    return hashlib.sha256(db_url.encode("utf-8")).hexdigest()


def remember_database(db_url: str, vault_id: str) -> None:
    path = _databases_path()
    known = _read_json(path) or {}
    if known.get(_database_key(db_url)) != vault_id:
        known[_database_key(db_url)] = vault_id
        _write_private(path, known)


def pinned_vault_of(db_url: str) -> str | None:
    known = _read_json(_databases_path()) or {}
    value = known.get(_database_key(db_url))
    return value if isinstance(value, str) else None


def pin_view(state: LogState) -> dict[str, Any]:
    return {
        "vault_id": state.vault_id,
        "org": state.org,
        "genesis": state.genesis,
        "recovery_fingerprint": state.recovery_fingerprint,
        "seq": state.seq,
        "head": state.head,
        "path": str(_pin_path(str(state.vault_id))),
    }


# -- verification ------------------------------------------------------------------------------


def _vault_id(session: Session) -> str:
    meta = session.exec(select(VaultMeta)).first()
    if meta is None:
        raise IntegrityFailure("the vault record is missing: this database was not made by 'govern init'")
    return meta.id


def _event_at(session: Session, seq: int) -> EventRecord | None:
    return next(stream_events(session, after=seq - 1, batch=1), None)


def _count_after(session: Session, seq: int) -> int:
    return int(
        session.connection().execute(text("SELECT COUNT(*) FROM audit_event WHERE seq > :s"), {"s": seq}).scalar_one()
    )


def verify_from_pin(
    session: Session,
    db_url: str,
    *,
    progress: Progress | None = None,
    genesis_tag: str | None = None,
    save: bool = True,
) -> LogState:
    """The state the log proves now, verified from this client's pin (or the genesis).

    ``genesis_tag``, when given (at enrolment, from the one-time code), must match the log's.
    Raises :class:`IntegrityFailure` (exit 6) for a broken chain, a broken rule, a vault
    other than the one pinned for this database, or a log that does not extend the pin.
    """
    vault_id = _vault_id(session)
    known = pinned_vault_of(db_url)
    anchor, pinned = _load(vault_id)
    if known is not None and known != vault_id and anchor is None:
        raise IntegrityFailure(
            f"this database held vault {known} when this client last used it; it now holds {vault_id}:"
            " refusing a swapped vault (after a deliberate move, run 'govern pin reset')"
        )
    state = pinned if pinned is not None else LogState()
    # ``state`` is ``pinned``, advanced in place: remember where it started (-1: cache to rebuild).
    pinned_seq = None if anchor is None else (anchor.seq if pinned is not None else -1)
    if anchor is not None:
        _check_extends(session, anchor)
    todo = _count_after(session, state.seq)
    done = 0

    def step(events: int) -> None:
        nonlocal done
        done += events
        if progress is not None:
            progress(done, todo)

    starts = [state]

    def fresh() -> LogState:
        # The pinned state, and again (re-read) for each contained transaction found (audit/contain.py).
        if starts:
            return starts.pop()
        again = _load(vault_id)[1]
        return again if again is not None else LogState()

    try:
        state = verify_contained(
            fresh,
            lambda seq: stream_events(session, after=seq),
            SealCursor(session, after=state.seq),
            not_after=not_after(),
            progress=step if progress is not None else None,
        ).state
    except ChainError as error:
        raise IntegrityFailure(f"the audit log does not verify: {error}") from None
    if state.vault_id != vault_id:
        raise IntegrityFailure(f"the vault record says {vault_id} but the signed log is of vault {state.vault_id}")
    if anchor is not None and (state.genesis != anchor.genesis or state.seq < anchor.seq):
        raise IntegrityFailure("the signed log does not extend what this client pinned: rolled back or rewritten")
    if genesis_tag is not None and (state.genesis is None or tag_of(state.genesis) != genesis_tag):
        raise IntegrityFailure(
            "this vault's genesis differs from the one your enrolment code names: this is not the vault you were"
            " invited to"
        )
    if save and (pinned_seq is None or state.seq > pinned_seq):
        save_pin(state, db_url)
    elif save:
        remember_database(db_url, vault_id)
    return state


def not_after() -> str:
    """The latest time an event may carry: this client's clock plus the allowed skew (issue 19)."""
    return format_ts(timeutil.utcnow() + timedelta(seconds=MAX_SKEW_S))


def _check_extends(session: Session, pinned: Anchor) -> None:
    """The log must still hold, at the pinned sequence number, the event this client verified."""
    if pinned.seq == 0:
        return
    last = head(session)
    if last is None or last.seq < pinned.seq:
        ends = 0 if last is None else last.seq
        raise IntegrityFailure(
            f"the log ends at event {ends} but this client verified it up to event {pinned.seq}:"
            " it was rolled back or truncated (a restored backup? see 'govern pin show'; after a deliberate"
            " restore, 'govern pin reset --reason …')"
        )
    row = _event_at(session, pinned.seq)
    if row is None or row.hash != pinned.head or row.computed_hash() != row.hash:
        raise IntegrityFailure(
            f"event {pinned.seq} is not the one this client verified: the log was rewritten or rolled back"
        )
    genesis = _event_at(session, 1)
    if genesis is None or genesis.hash != pinned.genesis:
        raise IntegrityFailure("this vault's genesis event differs from the one this client pinned")


def check_pin_against(session: Session, state: LogState) -> dict[str, Any] | None:
    """For a full verification: does the verified log extend what this client pinned?"""
    assert state.vault_id is not None
    pinned = load_anchor(state.vault_id)
    if pinned is None:
        return None
    if pinned.genesis != state.genesis:
        raise ChainError("this vault's genesis differs from the one this client pinned", 1)
    if state.seq < pinned.seq:
        raise ChainError(
            f"the log ends at event {state.seq} but this client verified it up to event {pinned.seq}:"
            " rolled back or truncated",
            state.seq + 1,
        )
    row = _event_at(session, pinned.seq) if pinned.seq else None
    if pinned.seq and (row is None or row.hash != pinned.head):
        raise ChainError("not the event this client verified: the log was rewritten", pinned.seq)
    return {"seq": pinned.seq, "head": pinned.head, "ok": True}


# -- rows against the verified state -----------------------------------------------------------


def _name(key: Any) -> str:
    return " ".join(str(part) for part in key) if isinstance(key, tuple) else str(key)


def _diff(label: str, rows: dict[Any, Any], expected: dict[Any, Any], fields: tuple[str, ...] = ()) -> list[str]:
    """One finding per row the log does not explain, per row of the log that is gone, per difference."""
    out = []
    for key in sorted(set(rows) | set(expected), key=_name):
        if key not in expected:
            out.append(f"{label} {_name(key)} is not explained by the log")
        elif key not in rows:
            out.append(f"{label} {_name(key)} of the log is missing from the tables")
        elif rows[key] != expected[key]:
            differs = [
                f"{name} is {got} in the tables but {want} in the log"
                for name, got, want in zip(
                    fields,
                    rows[key] if isinstance(rows[key], tuple) else (rows[key],),
                    expected[key] if isinstance(expected[key], tuple) else (expected[key],),
                    strict=False,
                )
                if got != want
            ]
            detail = "; ".join(differs) if differs else f"{rows[key]} in the tables, {expected[key]} in the log"
            out.append(f"{label} {_name(key)}: {detail}")
    return out


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else format_ts(moment)


def unexplained_rows(session: Session, state: LogState) -> list[str]:
    """Every governance row that the verified state does not explain (empty when all agree)."""
    findings: list[str] = []
    meta = session.exec(select(VaultMeta)).one()
    if meta.recovery_public != state.recovery_x25519 or meta.recovery_fingerprint != state.recovery_fingerprint:
        findings.append("the vault's recovery key in the tables is not the one the log names")
    if RecoveryKey.fingerprint_of(meta.recovery_public) != meta.recovery_fingerprint:
        findings.append("the vault's recovery key fingerprint does not match its public key")

    people = {p.id: p for p in session.exec(select(Person)).all()}
    handle = {pid: p.handle for pid, p in people.items()}
    findings += _diff(
        "person",
        {p.handle: (p.role, p.status) for p in people.values()},
        {h: (p.role, p.status) for h, p in state.people.items()},
        ("role", "status"),
    )
    key_rows: dict[str, tuple[str, bool]] = {}
    for key in session.exec(select(PersonKey)).all():
        owner = handle.get(key.person_id, "?")
        recomputed = PublicKeys(x25519=key.x25519_public, ed25519=key.ed25519_public).fingerprint
        known = state.keys.get(key.fingerprint)
        if recomputed != key.fingerprint or known is None:
            findings.append(f"key {key.fingerprint} of {owner} is not a key the log introduced")
            continue
        if (known.owner, known.x25519, known.ed25519) != (owner, key.x25519_public, key.ed25519_public):
            findings.append(f"key {key.fingerprint} of {owner} differs from the one the log gives {known.owner}")
        proven = state.people.get(known.owner)
        if (
            proven is not None
            and proven.key == key.fingerprint
            and proven.sealed not in (None, key_blob_digest(key.sealed_private))
        ):
            findings.append(f"the private key blob of {owner} is not the one their last passphrase change sealed")
        key_rows[key.fingerprint] = (owner, key.active)
    findings += _diff(
        "key",
        {fp: owner for fp, (owner, active) in key_rows.items() if active},
        {p.key: h for h, p in state.people.items() if p.key is not None and p.status != "offboarded"},
        ("owner",),
    )

    accounts = {a.id: a for a in session.exec(select(Account)).all()}
    slug = {aid: a.slug for aid, a in accounts.items()}
    findings += _diff(
        "account",
        {
            a.slug: (
                handle.get(a.owner_id) if a.owner_id is not None else None,
                a.max_holders,
                None if a.rotate_every_s is None else format_duration(timedelta(seconds=a.rotate_every_s)),
                a.platform,
            )
            for a in accounts.values()
        },
        {s: (a.owner, a.max_holders, a.rotate_every, a.platform) for s, a in state.accounts.items()},
        ("owner", "max holders", "rotate every", "platform"),
    )
    findings += _diff(
        "grant",
        {
            g.id: (
                slug.get(g.account_id),
                handle.get(g.person_id),
                _ts(g.ends_at),
                g.revoked_at is None,
                g.expired_at is None,
                g.granted_by,
                g.reason,
            )
            for g in session.exec(select(Grant)).all()
        },
        {
            i: (g.account, g.handle, g.until, g.revoked is None, g.expired is None, g.by, g.reason)
            for i, g in state.grants.items()
        },
        # Who granted it and why are shown to people deciding (and in notifications): the log's words.
        ("account", "holder", "end", "unrevoked", "unexpired", "granted by", "reason"),
    )
    key_account = {k.id: (slug.get(k.account_id), k.retired_at is not None) for k in session.exec(select(DataKey))}
    findings += _diff(
        "data key", key_account, {i: (k.account, k.retired) for i, k in state.data_keys.items()}, ("account", "retired")
    )
    wraps: dict[tuple[int, str], str | None] = {}
    for wrap in session.exec(select(KeyWrap)).all():
        recipient = None if wrap.person_id is None else handle.get(wrap.person_id, "?")
        wraps[(wrap.data_key_id, wrap.recipient_fingerprint)] = recipient
    expected_wraps = {
        pair: (None if pair[1] == state.recovery_fingerprint else _owner_of(state, pair[1])) for pair in state.wraps
    }
    findings += _diff("wrap of data key", wraps, expected_wraps, ("recipient",))
    findings += _versions(session, state, slug)
    findings += _diff(
        "open exposure",
        {
            (slug.get(e.account_id), number, handle.get(e.person_id), e.kind): True
            for e, number in session.exec(
                select(Exposure, CredentialVersion.number).where(
                    Exposure.version_id == CredentialVersion.id,
                    Exposure.cleared_at == None,  # noqa: E711
                )
            ).all()
        },
        dict.fromkeys(state.exposures, True),
    )
    requests = session.exec(select(AccessRequest)).all()
    findings += _diff(
        "request",
        {r.id: (slug.get(r.account_id), handle.get(r.person_id), r.status) for r in requests},
        {i: tuple(r) for i, r in state.requests.items()},
        ("account", "requester", "status"),
    )
    findings += [
        f"request {r.id}: its reason is not the one its signed access.requested carries"
        for r in requests
        if r.id in state.request_reasons and text_digest(r.reason or "") != state.request_reasons[r.id]
    ]
    findings += _diff(
        "rotation",
        {r.id: r.status for r in session.exec(select(Rotation)).all()},
        {i: r[2] for i, r in state.rotations.items()},
        ("status",),
    )
    policies = session.exec(select(Policy)).all()
    findings += _diff(
        "policy",
        {p.version: hashlib.sha256(p.text.encode("utf-8")).hexdigest() for p in policies},
        dict(state.policies),
        ("text sha256",),
    )
    version_of = {p.id: p.version for p in policies}
    findings += _diff(
        "policy acknowledgement",
        {(version_of.get(a.policy_id), handle.get(a.person_id)): True for a in session.exec(select(PolicyAck))},
        dict.fromkeys(state.acks, True),
    )
    findings += _diff(
        "review", {r.id: r.status for r in session.exec(select(Review)).all()}, dict(state.reviews), ("status",)
    )
    findings += _diff(
        "review decision",
        {
            f"{item.review_id}:{item.grant_id}": item.decision
            for item in session.exec(select(ReviewItem)).all()
            if item.decision in ("certified", "revoked")
        },
        dict(state.review_decisions),
        ("decision",),
    )
    findings += _diff(
        "knowledge record",
        {(slug.get(k.account_id), handle.get(k.person_id)): True for k in session.exec(select(KnowledgeRecord))},
        dict.fromkeys(state.knowledge, True),
    )
    findings += _cases(session, state, handle)
    return findings


def _owner_of(state: LogState, fingerprint: str) -> str | None:
    key = state.keys.get(fingerprint)
    return None if key is None else key.owner


def _versions(session: Session, state: LogState, slug: dict[int | None, str]) -> list[str]:
    rows = session.exec(select(CredentialVersion)).all()
    sealed: dict[int, dict[str, bytes]] = {}
    for field in session.exec(select(SealedField)).all():
        sealed.setdefault(field.version_id, {})[field.field] = field.ciphertext
    findings = _diff(
        "credential version",
        {(slug.get(v.account_id), v.number): (v.data_key_id, v.status, _ts(v.created_at)) for v in rows},
        {(s, n): (v.data_key, v.status, v.created) for s, vs in state.versions.items() for n, v in vs.items()},
        ("data key", "status", "created at"),
    )
    for version in rows:
        account = slug.get(version.account_id)
        expected = state.version(str(account), version.number)
        if expected is None or version.status in ("destroyed", "aborted"):
            continue
        if sealed_digest(sealed.get(version.id or -1, {})) != expected.sealed:
            findings.append(
                f"the sealed fields of {account} version {version.number} are not the ones its signed event commits to"
            )
    return findings


def _cases(session: Session, state: LogState, handle: dict[int | None, str]) -> list[str]:
    cases = session.exec(select(OffboardCase)).all()
    findings = _diff(
        "offboarding case",
        {c.id: (handle.get(c.person_id), c.status, format_ts(c.deadline)[:19]) for c in cases},
        {i: (c.handle, c.status, c.deadline[:19]) for i, c in state.cases.items()},
        ("leaver", "status", "deadline"),
    )
    closed: dict[tuple[int, int], str] = {}
    counts: dict[int, int] = {}
    slug = {a.id: a.slug for a in session.exec(select(Account)).all()}
    exposure_of = {
        e.id: (slug.get(e.account_id), handle.get(e.person_id)) for e in session.exec(select(Exposure)).all()
    }
    titles: dict[int, list[tuple[int, str]]] = {}
    for step in session.exec(select(OffboardStep)).all():
        counts[step.case_id] = counts.get(step.case_id, 0) + 1
        titles.setdefault(step.case_id, []).append((step.number, step.title))
        case = state.cases.get(step.case_id)
        if case is not None:
            findings += _step_plan(step, case, slug.get(step.account_id), exposure_of)
        if case is not None and step.deadline is not None and format_ts(step.deadline)[:19] != case.deadline[:19]:
            findings.append(
                f"offboarding step {step.case_id} {step.number}: its deadline {format_ts(step.deadline)[:19]} is not"
                f" the case's {case.deadline[:19]} in the log"
            )
        if step.status != "open":
            closed[(step.case_id, step.number)] = step.status
    for case_id, case in state.cases.items():
        shown = [title for _n, title in sorted(titles.get(case_id, []))]
        if case.titles and case_id in titles and text_digest(shown) != case.titles:
            findings.append(f"offboarding case {case_id}: its step titles are not the ones its signed plan commits to")
        if case_id in counts and counts[case_id] != case.steps:
            findings.append(
                f"offboarding case {case_id} has {counts[case_id]} steps in the tables, {case.steps} in the log"
            )
    findings += _diff(
        "closed offboarding step",
        closed,
        {(i, int(n)): how for i, c in state.cases.items() for n, how in c.closed_steps.items()},
        ("status",),
    )
    return findings


# Steps ``offboard start`` carries out itself (offboarding/plan.py); every other kind waits for a
# rotation (closes itself) or for a person (manual).
AUTOMATIC_STEPS = frozenset({"suspend", "cancel-requests", "reassign-owner", "remove-access"})


def _step_plan(
    step: OffboardStep,
    case: Case,
    account: str | None,
    exposure_of: dict[int | None, tuple[str | None, str | None]],
) -> list[str]:
    """A step row must be the step the signed plan (``offboard.started``) names.

    The commands read a step's kind, account and exposure from its row to decide what to
    do (revoke which account's access, whether a person may close it by hand, which
    rotation closes it), so a row relabelled behind govern's back would have an admin
    close a rotation step as a manual one, or revoke the wrong account.
    """
    number = str(step.number)
    label = f"offboarding step {step.case_id} {step.number}"
    if number not in case.step_kinds:
        return [] if not case.step_kinds else [f"{label} is not in the case's signed plan"]
    findings = []
    want = (case.step_kinds[number], case.step_accounts.get(number))
    if (step.kind, account) != want or step.automatic != (want[0] in AUTOMATIC_STEPS):
        findings.append(
            f"{label}: it is {step.kind} of {account} in the tables but {want[0]} of {want[1]} in the signed plan"
        )
    if step.exposure_id is not None and exposure_of.get(step.exposure_id) != (want[1], case.handle):
        findings.append(f"{label} waits for an exposure that is not {case.handle}'s of {want[1]}")
    return findings


def trusted(
    session: Session, db_url: str, *, progress: Progress | None = None, genesis_tag: str | None = None
) -> LogState:
    """Verify from the pin, then refuse if any governance row is not explained by the log."""
    state = verify_from_pin(session, db_url, progress=progress, genesis_tag=genesis_tag)
    findings = unexplained_rows(session, state)
    if findings:
        more = f" (and {len(findings) - 1} more: run 'govern audit verify')" if len(findings) > 1 else ""
        raise IntegrityFailure(f"refusing to act on state the signed log does not explain: {findings[0]}{more}")
    return state


def tag_of(genesis: str) -> str:
    """Eight base32 characters of the genesis hash, carried by enrolment codes."""
    return base64.b32encode(bytes.fromhex(genesis)[:5]).decode("ascii")
