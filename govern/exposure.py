"""Exposure: which secrets a person may know, computed by the verified log from every wrap.

A person may know the current value of a secret kind if any version carrying that
value (from the version that last changed it up to the current one, and the pending
one) was sealed under a data key that was ever wrapped to them. Only a new value of
that kind clears the exposure. The verified state computes it (``LogState.known_secrets``)
and the rules check every ``key.unwrapped`` against it; rows only index it.
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from govern.errors import IntegrityFailure
from govern.models import Account, CredentialVersion, Exposure, Person

if TYPE_CHECKING:
    from audit.state import LogState
    from govern.db import WriteTx

# Exposure kind -> the sealed field whose value it is about.
KINDS: dict[str, str] = {"password": "password", "totp": "totp-uri", "recovery-codes": "recovery-codes"}
FIELD_KIND: dict[str, str] = {field: kind for kind, field in KINDS.items()}


def known_secrets(
    session: Session, state: "LogState", account: Account, person: Person
) -> list[tuple[str, CredentialVersion]]:
    """``(kind, version)`` pairs whose value ``person`` may know; ``version`` is the one to rotate.

    Computed by the verified log (:meth:`audit.state.LogState.known_secrets`: every key ever
    wrapped to them, knowledge records by version), never from the wrap history or knowledge
    rows, which anyone with write access to the database could delete or repoint (issue 19).
    The rows are only looked up for the version named.
    """
    found: list[tuple[str, CredentialVersion]] = []
    for kind, number in state.known_secrets(account.slug, person.handle):
        version = session.exec(
            select(CredentialVersion).where(
                CredentialVersion.account_id == account.id, CredentialVersion.number == number
            )
        ).first()
        if version is None:
            raise IntegrityFailure(f"version {number} of {account.slug}, which the signed log names, is missing")
        found.append((kind, version))
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
    for kind, version in known_secrets(session, tx.state, account, person):
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
