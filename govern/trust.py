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

A client that has never seen a vault verifies it all from the genesis and pins it, but
until its person confirms the vault fingerprint (``init``, enrolment, ``pin trust``, or yes
at the terminal) it gives no key to anyone else (govern.context). The cached state beside
the pin counts for a command that signs or wraps only under its actor's MAC.
"""

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import stat
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
from audit.fingerprint import same, vault_fingerprint
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
from vault import PersonKeys, PublicKeys, RecoveryKey

PIN_FORMAT = "govern-pin"
PIN_VERSION = 2  # 2: vault fingerprint, per-person confirmations and MACs of the cached state
Progress = Callable[[int, int], None]  # (events done, events to verify)


# -- the pin file ------------------------------------------------------------------------------
#
# One JSON file per vault, 0600 in a 0700 folder this user owns (refused otherwise):
#
# - the anchor: vault id, genesis hash, recovery key fingerprint, vault fingerprint, and the
#   highest sequence number and head this client verified. It only ever makes a command refuse
#   more (a log must extend it), so it is a floor that needs no key to be useful;
# - ``confirmed``: the vault fingerprint this client's person confirmed (init, enrolment,
#   ``pin trust --fingerprint`` or yes at the terminal), and how. Until it names the fingerprint
#   of the verified log, no key is wrapped to anyone but the actor and the recovery key;
# - ``state``: the verified state at some head, a cache so that only what is new is verified;
# - ``macs``: per person key fingerprint, HMAC-SHA256 over the cached state, the vault's
#   identity and the confirmation, under a key only that person's unlock yields
#   (:meth:`vault.PersonKeys.local_key`). A command that signs or wraps uses the cached state
#   and the confirmation only when its actor's MAC verifies; otherwise it verifies the log
#   from the genesis again and re-MACs it. Commands that do not unlock use the cache as it is,
#   for what they show.


def _owned_private_folder(folder: Path, *, create: bool) -> None:
    """Refuse (exit 6) a state folder another user owns, or others may write; create it 0700."""
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise IntegrityFailure(f"cannot inspect this client's state folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise IntegrityFailure(f"this client's state folder {folder} is not a folder (a link or a file): refusing it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise IntegrityFailure(
            f"this client's state folder {folder} belongs to another user (uid {info.st_uid}): refusing to trust"
            " pins someone else can write (use your own GOVERN_STATE_DIR)"
        )
    if info.st_mode & 0o022:
        raise IntegrityFailure(
            f"this client's state folder {folder} is writable by other users: refusing to trust its pins"
            f" (chmod 700 {folder})"
        )
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)


def _pins_dir() -> Path:
    directory = state_dir() / "pins"
    _owned_private_folder(directory.parent, create=True)
    _owned_private_folder(directory, create=True)
    return directory


def _pin_path(vault_id: str) -> Path:
    # The id comes from the database or from a log someone else made: never a path of their choosing.
    if not validate.is_uuid(vault_id):
        raise IntegrityFailure(f"the vault id {vault_id!r} is not a UUID: this is not a vault made by govern")
    return _pins_dir() / f"{vault_id}.json"


def pin_path(vault_id: str) -> Path:
    """Where this client keeps its pin of ``vault_id``."""
    return _pin_path(vault_id)


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
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            raise IntegrityFailure(f"this client's pin {path} is not a file of yours: move it away and re-pin")
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


@dataclass(frozen=True)
class Pin:
    """A pin file as read: its anchor, its cached state, and what the acting person vouched for."""

    anchor: Anchor
    state: LogState | None
    authenticated: bool  # the acting person's MAC verified the cached state
    confirmed: str | None  # the vault fingerprint the acting person confirmed (MAC verified), if any
    confirmed_how: str | None
    confirmed_by: tuple[str, ...]  # how each confirmation on this client was made (for display)
    fingerprint: str | None  # the vault fingerprint of the pinned genesis and recovery key
    body: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)  # as read


@dataclass
class Start:
    """Where a verification started (filled by :func:`verify_from_pin` when asked)."""

    pin: Pin | None = None
    from_cache: bool = False


def _mac_key(keys: PersonKeys, vault_id: str) -> bytes:
    return keys.local_key(b"pin-mac\n" + vault_id.encode("ascii"))


def _tagged(key: bytes, label: bytes, value: Any) -> str:
    message = b"govern-pin-mac/v1\n" + label + b"\n" + json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _state_mac(key: bytes, body: dict[str, Any]) -> str:
    names = ("vault_id", "genesis", "recovery_fingerprint", "state")
    return _tagged(key, b"state", {name: body.get(name) for name in names})


def _confirm_mac(key: bytes, vault_id: str, fingerprint: str, how: str) -> str:
    return _tagged(key, b"confirmed", [vault_id, fingerprint, how])


def read_pin(vault_id: str, keys: PersonKeys | None = None, *, with_state: bool = True) -> Pin | None:
    """This client's pin of ``vault_id``; a malformed anchor is refused (exit 6), never ignored.

    With ``keys`` (the actor unlocked), the cached state and the confirmation count only if
    the actor's MACs verify them; without, the state is returned as it is (for display) and no
    confirmation counts.
    """
    body = _read_json(_pin_path(vault_id))
    if body is None:
        return None
    try:
        if (
            body.get("format") != PIN_FORMAT
            or body.get("v") not in (1, PIN_VERSION)
            or body.get("vault_id") != vault_id
        ):
            raise ValueError
        anchor = Anchor(vault_id, body["genesis"], body["seq"], body["head"])
        if not (isinstance(anchor.genesis, str) and isinstance(anchor.head, str) and type(anchor.seq) is int):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise IntegrityFailure(
            f"this client's pin of vault {vault_id} is corrupt: move it away and re-pin ('govern pin reset')"
        ) from None
    state: LogState | None = None
    if with_state:
        try:
            state = LogState.from_json(body["state"])
        except (KeyError, TypeError, ValueError, AttributeError):
            state = None
        if state is not None and (state.vault_id, state.genesis) != (vault_id, anchor.genesis):
            state = None
    confirmations = body.get("confirmed")
    confirmations = confirmations if isinstance(confirmations, dict) else {}
    shown = tuple(sorted({str(c.get("how")) for c in confirmations.values() if isinstance(c, dict)}))
    authenticated, confirmed, how = False, None, None
    if keys is not None:
        authenticated = with_state and _mac_verifies(body, keys, vault_id)
        if not authenticated:
            state = None
        mine = confirmations.get(keys.public.fingerprint)
        if isinstance(mine, dict) and isinstance(mine.get("fingerprint"), str) and isinstance(mine.get("how"), str):
            expected = _confirm_mac(_mac_key(keys, vault_id), vault_id, mine["fingerprint"], mine["how"])
            if isinstance(mine.get("mac"), str) and hmac.compare_digest(mine["mac"], expected):
                confirmed, how = mine["fingerprint"], mine["how"]
    recovery = body.get("recovery_fingerprint")
    try:
        pinned_fp = vault_fingerprint(anchor.genesis, recovery) if isinstance(recovery, str) else None
    except ValueError:
        pinned_fp = None
    return Pin(anchor, state, authenticated, confirmed, how, shown, pinned_fp, body)


def load_anchor(vault_id: str) -> Anchor | None:
    """This client's anchor for ``vault_id``; a malformed one is refused (exit 6), never ignored."""
    pin = read_pin(vault_id)
    return None if pin is None else pin.anchor


def load_pin(vault_id: str) -> LogState | None:
    """The state this client cached for ``vault_id``, if any and still readable; not authenticated.

    The state beside the anchor is a cache: one written by another version of govern is
    ignored (the log is then verified from its genesis, and must still reach the anchor).
    """
    pin = read_pin(vault_id)
    return None if pin is None else pin.state


def save_pin(
    state: LogState,
    db_url: str,
    keys: PersonKeys | None = None,
    *,
    confirm: str | None = None,
) -> None:
    """Advance the pin to ``state`` (never backwards) and remember which database holds the vault.

    ``keys``: the acting person, unlocked, who verified ``state`` from a cache their MAC vouched
    for (or from the genesis): their MAC then vouches for the new cache. Without keys the cache
    is replaced only where no MAC vouched for the one there. ``confirm`` (with ``keys``, or
    ``"-"`` for a client with no person in the vault): how the fingerprint was confirmed.
    """
    assert state.vault_id is not None
    fingerprint = fingerprint_of(state)
    path = _pin_path(state.vault_id)
    existing = _read_json(path)
    if existing is not None and existing.get("genesis") != state.genesis:
        existing = None  # a pin of another genesis is never merged (callers refused it already)
    body: dict[str, Any] = dict(existing) if existing is not None else {}
    old_seq = body.get("seq")
    if not (isinstance(old_seq, int) and old_seq > state.seq):
        body.update({"seq": state.seq, "head": state.head})
    body.update(
        {
            "format": PIN_FORMAT,
            "v": PIN_VERSION,
            "vault_id": state.vault_id,
            "genesis": state.genesis,
            "recovery_fingerprint": state.recovery_fingerprint,
            "fingerprint": fingerprint,
        }
    )
    found = body.get("macs")
    macs: dict[str, Any] = found if isinstance(found, dict) else {}
    cached = body.get("state")
    cached_seq = cached.get("seq") if isinstance(cached, dict) else None
    newer = not (isinstance(cached_seq, int) and cached_seq >= state.seq)
    if keys is not None:
        key = _mac_key(keys, state.vault_id)
        if newer or macs.get(keys.public.fingerprint) != _state_mac(key, body):
            body["state"] = state.to_json()
            body["macs"] = {keys.public.fingerprint: _state_mac(key, body)}
    elif not macs and newer:
        body["state"] = state.to_json()
        body["macs"] = {}
    if confirm is not None:
        listed = body.get("confirmed")
        confirmations: dict[str, Any] = listed if isinstance(listed, dict) else {}
        if keys is not None:
            mac = _confirm_mac(_mac_key(keys, state.vault_id), state.vault_id, fingerprint, confirm)
            entry = {"fingerprint": fingerprint, "how": confirm, "mac": mac}
            confirmations = {**confirmations, keys.public.fingerprint: entry}
        else:
            confirmations = {**confirmations, "-": {"fingerprint": fingerprint, "how": confirm}}
        body["confirmed"] = confirmations
    _write_private(path, body)
    remember_database(db_url, state.vault_id)


def rewind_pin(session: Session, vault_id: str) -> None:
    """For ``pin reset``: back to the genesis, keeping the confirmations when the genesis is the same.

    A restore keeps the vault's genesis (its fingerprint is the same: what people confirmed
    still holds); a database that now holds another genesis loses the pin entirely.
    """
    path = _pin_path(vault_id)
    body = _read_json(path)
    genesis = _event_at(session, 1)
    if body is None or genesis is None or body.get("genesis") != genesis.hash:
        forget_pin(vault_id)
        return
    for name in ("state", "macs"):
        body.pop(name, None)
    body.update({"seq": 0, "head": "0" * 64})
    _write_private(path, body)


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


def fingerprint_of(state: LogState) -> str:
    """The vault fingerprint of the verified log (:mod:`audit.fingerprint`)."""
    if state.genesis is None or state.recovery_fingerprint is None:
        raise IntegrityFailure("the log has no genesis: there is no vault to name")
    return vault_fingerprint(state.genesis, state.recovery_fingerprint)


def pin_view(state: LogState) -> dict[str, Any]:
    return {
        "vault_id": state.vault_id,
        "org": state.org,
        "fingerprint": fingerprint_of(state),
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
    keys: PersonKeys | None = None,
    fresh: bool = False,
    start: Start | None = None,
) -> LogState:
    """The state the log proves now, verified from this client's pin (or the genesis).

    ``genesis_tag``, when given (at enrolment, from the one-time code), must match the log's.
    ``keys`` (the acting person, unlocked): the cached state is used only if their MAC vouches
    for it, else the log is verified from its genesis; the pin saved is then MACed for them.
    ``fresh``: verify from the genesis whatever the cache (the anchor still binds).
    ``start``: told where the verification started, so that :func:`vouch` can later MAC its
    result once the actor has unlocked.
    Raises :class:`IntegrityFailure` (exit 6) for a broken chain, a broken rule, a vault
    other than the one pinned for this database, or a log that does not extend the pin.
    """
    vault_id = _vault_id(session)
    known = pinned_vault_of(db_url)
    pin = read_pin(vault_id, keys)
    anchor = None if pin is None else pin.anchor
    pinned = None if pin is None or fresh else pin.state
    if known is not None and known != vault_id and anchor is None:
        raise IntegrityFailure(
            f"this database held vault {known} when this client last used it; it now holds {vault_id}:"
            " refusing a swapped vault (after a deliberate move, run 'govern pin reset')"
        )
    if start is not None:
        start.pin, start.from_cache = pin, pinned is not None
    state = pinned if pinned is not None else LogState()
    # ``state`` is ``pinned``, advanced in place: remember where it started (-1: cache to rebuild).
    pinned_seq = None if anchor is None else (pinned.seq if pinned is not None else -1)
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

    def restart() -> LogState:
        # The pinned state, and again (re-read) for each contained transaction found (audit/contain.py).
        if starts:
            return starts.pop()
        again = None if fresh else read_pin(vault_id, keys)
        return again.state if again is not None and again.state is not None else LogState()

    try:
        state = verify_contained(
            restart,
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
    if save and (
        pinned_seq is None or state.seq > pinned_seq or (keys is not None and pin is not None and not pin.authenticated)
    ):
        save_pin(state, db_url, keys)
    elif save:
        remember_database(db_url, vault_id)
    return state


def not_after() -> str:
    """The latest time an event may carry: this client's clock plus the allowed skew (issue 19)."""
    return format_ts(timeutil.utcnow() + timedelta(seconds=MAX_SKEW_S))


def vouch(start: Start, state: LogState, db_url: str, keys: PersonKeys) -> None:
    """Save ``state`` MACed for ``keys`` if the verification that gave it started from the genesis
    or from a cache their MAC vouches for (read before they unlocked: checked now)."""
    if start.from_cache and (start.pin is None or not _mac_verifies(start.pin.body, keys, str(state.vault_id))):
        return
    save_pin(state, db_url, keys)


def _mac_verifies(body: dict[str, Any], keys: PersonKeys, vault_id: str) -> bool:
    macs = body.get("macs")
    given = macs.get(keys.public.fingerprint) if isinstance(macs, dict) else None
    return isinstance(given, str) and hmac.compare_digest(given, _state_mac(_mac_key(keys, vault_id), body))


def confirmed(vault_id: str, state: LogState, keys: PersonKeys) -> bool:
    """Has the acting person confirmed, on this client, the fingerprint of the verified log?"""
    pin = read_pin(vault_id, keys, with_state=False)
    return pin is not None and pin.confirmed is not None and same(pin.confirmed, fingerprint_of(state))


def confirm(state: LogState, db_url: str, keys: PersonKeys | None, how: str) -> None:
    """Record that this client's person confirmed the fingerprint of ``state`` (``how``: for the record)."""
    save_pin(state, db_url, keys, confirm=how)


CHECKPOINT_SIGNERS = ("admin", "auditor")


def checkpoint_signer_refusal(state: LogState, body: dict[str, Any]) -> str | None:
    """Why a checkpoint anchors nothing: its signer is not an admin or auditor of the vault
    (now, or an admin when it was signed). None when it may anchor."""
    signer = str(body.get("signer"))
    person = state.people.get(signer)
    if person is not None and person.role in CHECKPOINT_SIGNERS:
        return None
    ts = str(body.get("ts"))
    moment = ts[:-1] + ".000000Z" if ts.endswith("Z") and "." not in ts else ts
    if signer in state.admins_at(moment):
        return None
    return f"the checkpoint is signed by {signer}, who is not an admin or auditor of this vault: it anchors nothing"


def check_checkpoint_extends(session: Session, body: dict[str, Any], state: LogState) -> None:
    """A log behind a checkpoint, or other than it at its sequence number, is refused (exit 6)."""
    seq = int(body["seq"])
    if seq > state.seq:
        raise IntegrityFailure(
            f"the log ends at event {state.seq} but the checkpoint you trust saw event {seq}: it was rolled back"
            " or truncated"
        )
    row = _event_at(session, seq) if seq else None
    if seq and (row is None or row.hash != body["head"]):
        raise IntegrityFailure(f"event {seq} is not the one the checkpoint you trust saw: the log diverges from it")


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
    session: Session,
    db_url: str,
    *,
    progress: Progress | None = None,
    genesis_tag: str | None = None,
    keys: PersonKeys | None = None,
    fresh: bool = False,
) -> LogState:
    """Verify from the pin, then refuse if any governance row is not explained by the log."""
    state = verify_from_pin(session, db_url, progress=progress, genesis_tag=genesis_tag, keys=keys, fresh=fresh)
    findings = unexplained_rows(session, state)
    if findings:
        more = f" (and {len(findings) - 1} more: run 'govern audit verify')" if len(findings) > 1 else ""
        raise IntegrityFailure(f"refusing to act on state the signed log does not explain: {findings[0]}{more}")
    return state


def tag_of(genesis: str) -> str:
    """Eight base32 characters of the genesis hash, carried by enrolment codes."""
    return base64.b32encode(bytes.fromhex(genesis)[:5]).decode("ascii")
