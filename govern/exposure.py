"""Exposure: which secrets a person may know, computed from the history of wraps.

A person may know the current value of a secret kind if any version carrying that
value (from the version that last changed it up to the current one, and the pending
one) was sealed under a data key that was ever wrapped to them. Only a new value of
that kind clears the exposure.
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from govern.models import Account, CredentialVersion, Exposure, KnowledgeRecord, Person, WrapHistory

if TYPE_CHECKING:
    from govern.db import WriteTx

# Exposure kind -> the sealed field whose value it is about.
KINDS: dict[str, str] = {"password": "password", "totp": "totp-uri", "recovery-codes": "recovery-codes"}
FIELD_KIND: dict[str, str] = {field: kind for kind, field in KINDS.items()}


def _versions(session: Session, account: Account) -> list[CredentialVersion]:
    return list(
        session.exec(
            select(CredentialVersion)
            .where(CredentialVersion.account_id == account.id, CredentialVersion.status != "aborted")
            .order_by(col(CredentialVersion.number).desc())
        ).all()
    )


def lineage(versions: list[CredentialVersion], field: str) -> list[CredentialVersion]:
    """The versions carrying the current value of ``field``: newest first, back to its change."""
    out: list[CredentialVersion] = []
    for version in versions:
        if version.status == "pending":
            continue
        if field not in version.fields.split(","):
            return out if out else []
        out.append(version)
        if field in version.changed.split(","):
            break
    return out


def keys_ever_wrapped(session: Session, person: Person) -> set[int]:
    return {h.data_key_id for h in session.exec(select(WrapHistory).where(WrapHistory.person_id == person.id)).all()}


def known_secrets(session: Session, account: Account, person: Person) -> list[tuple[str, CredentialVersion]]:
    """``(kind, version)`` pairs whose value ``person`` may know; ``version`` is the one to rotate."""
    versions = _versions(session, account)
    keys = keys_ever_wrapped(session, person)
    found: list[tuple[str, CredentialVersion]] = []
    current = next((v for v in versions if v.status == "current"), None)
    for kind, field in KINDS.items():
        chain = lineage(versions, field)
        if current is not None and chain and any(v.data_key_id in keys for v in chain):
            found.append((kind, current))
    if current is not None and not any(kind == "password" for kind, _v in found):
        # Recorded as knowing the password out of band, and it has not changed since.
        recorded = {
            r.version_id
            for r in session.exec(
                select(KnowledgeRecord).where(
                    KnowledgeRecord.account_id == account.id, KnowledgeRecord.person_id == person.id
                )
            ).all()
        }
        if any(v.id in recorded for v in lineage(versions, "password")):
            found.append(("password", current))
    pending = next((v for v in versions if v.status == "pending"), None)
    if pending is not None and pending.data_key_id in keys and "password" in pending.fields.split(","):
        found.append(("password", pending))
    return found


def _open_exposure_of_value(
    session: Session, account: Account, person: Person, kind: str, version: CredentialVersion
) -> Exposure | None:
    """An uncleared exposure of ``person`` to the same value as ``version`` holds for ``kind``.

    Clearing happens whenever a kind's value changes, so every uncleared exposure of a kind
    on a non-pending version is about the current value; a pending version's value is its own.
    """
    rows = session.exec(
        select(Exposure, CredentialVersion).where(
            Exposure.account_id == account.id,
            Exposure.person_id == person.id,
            Exposure.kind == kind,
            col(Exposure.cleared_at).is_(None),
            Exposure.version_id == CredentialVersion.id,
        )
    ).all()
    for exposure, exposed_version in rows:
        same_value = (
            exposed_version.id == version.id if version.status == "pending" else exposed_version.status != "pending"
        )
        if same_value:
            return exposure
    return None


def mark_exposed(
    tx: "WriteTx", account: Account, person: Person, reason: str, deadline: datetime | None = None
) -> list[dict[str, Any]]:
    """Record every secret of ``account`` that ``person`` may know as exposed; return the new ones."""
    session = tx.session
    marked = []
    for kind, version in known_secrets(session, account, person):
        existing = _open_exposure_of_value(session, account, person, kind, version)
        if existing is not None:
            if deadline is not None and (existing.deadline is None or deadline < existing.deadline):
                existing.deadline = deadline
                session.add(existing)
            continue
        assert account.id is not None
        assert version.id is not None
        assert person.id is not None
        lapsed = session.exec(
            select(Exposure).where(
                Exposure.version_id == version.id, Exposure.person_id == person.id, Exposure.kind == kind
            )
        ).first()
        if lapsed is not None:
            # Cleared when they held the account again (``clear_held_exposures``): they lose
            # it again, so what they could read is exposed again, as new.
            lapsed.since, lapsed.reason, lapsed.deadline = tx.now, reason, deadline
            lapsed.cleared_at = None
            lapsed.cleared_by_version = None
            session.add(lapsed)
            marked.append({"kind": kind, "version": version.number})
            continue
        session.add(
            Exposure(
                account_id=account.id,
                version_id=version.id,
                person_id=person.id,
                kind=kind,
                since=tx.now,
                reason=reason,
                deadline=deadline,
            )
        )
        marked.append({"kind": kind, "version": version.number})
    session.flush()
    return marked


def clear_exposures(tx: "WriteTx", account: Account, kinds: list[str], new_version: CredentialVersion) -> int:
    """A new value of ``kinds`` clears their exposures on versions older than ``new_version``."""
    session = tx.session
    cleared = 0
    rows = session.exec(
        select(Exposure, CredentialVersion).where(
            Exposure.account_id == account.id,
            col(Exposure.kind).in_(kinds),
            col(Exposure.cleared_at).is_(None),
            Exposure.version_id == CredentialVersion.id,
        )
    ).all()
    ids = []
    for exposure, version in rows:
        if version.number < new_version.number:
            exposure.cleared_at = tx.now
            exposure.cleared_by_version = new_version.number
            session.add(exposure)
            cleared += 1
            ids.append(exposure.id)
    if ids:
        from govern.casework import close_followups

        close_followups(tx, [i for i in ids if i is not None])
    return cleared


def open_exposures(session: Session, account: Account) -> list[Exposure]:
    return list(
        session.exec(
            select(Exposure)
            .where(Exposure.account_id == account.id, col(Exposure.cleared_at).is_(None))
            .order_by(col(Exposure.since), col(Exposure.id))
        ).all()
    )


def clear_held_exposures(tx: "WriteTx", account: Account, person: Person, fingerprint: str) -> list[list[Any]]:
    """A person who holds ``account`` again may read what they were exposed to: not an exposure.

    Clears ``person``'s open exposures on ``account`` whose version is sealed under a data key
    now wrapped to ``fingerprint`` (their key). Returns ``[version, kind]`` pairs for the
    ``access.granted`` event, whose rule checks the same. Losing the account again marks
    them exposed again (:func:`mark_exposed` reopens the row), so offboarding still forces
    a rotation of everything they could have seen.
    """
    from govern.models import KeyWrap

    session = tx.session
    rows = session.exec(
        select(Exposure, CredentialVersion).where(
            Exposure.account_id == account.id,
            Exposure.person_id == person.id,
            col(Exposure.cleared_at).is_(None),
            Exposure.version_id == CredentialVersion.id,
        )
    ).all()
    cleared: list[list[Any]] = []
    for exposure, version in rows:
        readable = session.exec(
            select(KeyWrap).where(
                KeyWrap.data_key_id == version.data_key_id, KeyWrap.recipient_fingerprint == fingerprint
            )
        ).first()
        if readable is None:
            continue
        exposure.cleared_at = tx.now
        exposure.cleared_by_version = None
        session.add(exposure)
        cleared.append([version.number, exposure.kind])
    session.flush()
    return sorted(cleared)
