"""Tables of the governance domain. Secret values live only in ``SealedField``.

Every datetime column is timezone-aware UTC (``UTCDateTime``), on SQLite too.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, LargeBinary, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel

# Imported so that the audit tables share the metadata Alembic compares against.
from audit.models import AuditEvent, AuditSeal

__all__ = [
    "AccessRequest",
    "Account",
    "AuditEvent",
    "AuditSeal",
    "CredentialVersion",
    "DataKey",
    "Enrolment",
    "Exposure",
    "Grant",
    "KeyWrap",
    "KnowledgeRecord",
    "OffboardCase",
    "OffboardStep",
    "Person",
    "PersonKey",
    "Policy",
    "PolicyAck",
    "Review",
    "ReviewItem",
    "Rotation",
    "SealedField",
    "VaultMeta",
    "WrapHistory",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and returns them aware, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


def _blob() -> Any:
    return Field(sa_column=Column(LargeBinary(), nullable=False))


class VaultMeta(SQLModel, table=True):
    __tablename__ = "vault"

    id: str = Field(primary_key=True, max_length=36)
    org: str = Field(max_length=200)
    created_at: datetime = _when()
    recovery_public: bytes = _blob()
    recovery_fingerprint: str = Field(max_length=64)


class Person(SQLModel, table=True):
    __tablename__ = "person"

    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    team: str | None = Field(default=None, max_length=100)
    role: str = Field(max_length=16)
    status: str = Field(max_length=16)  # invited | active | offboarded ("suspended" is reserved)
    created_at: datetime = _when()
    created_by: str = Field(max_length=32)


class PersonKey(SQLModel, table=True):
    """A person's public keys and their passphrase-sealed private keys."""

    __tablename__ = "person_key"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    fingerprint: str = Field(unique=True, max_length=64)
    x25519_public: bytes = _blob()
    ed25519_public: bytes = _blob()
    sealed_private: bytes = _blob()
    created_at: datetime = _when()
    active: bool = True


class Enrolment(SQLModel, table=True):
    __tablename__ = "enrolment"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    code_hash: str = Field(max_length=64)
    created_at: datetime = _when()
    expires_at: datetime = _when()
    used_at: datetime | None = _when(nullable=True)
    created_by: str = Field(max_length=32)


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=63)
    platform: str = Field(max_length=32)
    handle: str = Field(max_length=200)
    team: str | None = Field(default=None, max_length=100)
    owner_id: int | None = Field(default=None, foreign_key="person.id")
    rotate_every_s: int | None = None
    max_holders: int = 3
    created_at: datetime = _when()
    created_by: str = Field(max_length=32)


class DataKey(SQLModel, table=True):
    """A random per-account AES-256 key. Never stored except wrapped."""

    __tablename__ = "data_key"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    created_at: datetime = _when()
    retired_at: datetime | None = _when(nullable=True)


class KeyWrap(SQLModel, table=True):
    """A data key wrapped to one recipient: a person or the recovery key."""

    __tablename__ = "key_wrap"
    __table_args__ = (UniqueConstraint("data_key_id", "recipient_fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    data_key_id: int = Field(foreign_key="data_key.id", index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    recipient_fingerprint: str = Field(max_length=64)
    blob: bytes = _blob()
    created_at: datetime = _when()


class CredentialVersion(SQLModel, table=True):
    __tablename__ = "credential_version"
    __table_args__ = (UniqueConstraint("account_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    number: int
    data_key_id: int = Field(foreign_key="data_key.id")
    status: str = Field(max_length=16)  # pending | current | superseded | aborted | destroyed
    fields: str = Field(max_length=200)  # comma-separated field names, metadata only
    changed: str = Field(default="", max_length=200)  # the fields this version changed
    created_by: str = Field(max_length=32)
    created_at: datetime = _when()
    retain_until: datetime | None = _when(nullable=True)  # superseded versions are destroyed after
    destroyed_at: datetime | None = _when(nullable=True)


class SealedField(SQLModel, table=True):
    __tablename__ = "sealed_field"
    __table_args__ = (UniqueConstraint("version_id", "field"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="credential_version.id", index=True)
    field: str = Field(max_length=32)
    ciphertext: bytes = _blob()


class Grant(SQLModel, table=True):
    __tablename__ = "access_grant"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    reason: str = Field(max_length=1000)
    granted_by: str = Field(max_length=32)
    starts_at: datetime = _when()
    ends_at: datetime | None = _when(nullable=True)
    revoked_at: datetime | None = _when(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=32)
    revoke_reason: str | None = Field(default=None, max_length=1000)
    request_id: int | None = Field(default=None, foreign_key="access_request.id")
    over_cap_reason: str | None = Field(default=None, max_length=1000)
    expired_at: datetime | None = _when(nullable=True)  # when the expiry was processed

    def is_live(self, now: datetime) -> bool:
        """Gives access at ``now``: started, not revoked, not past its end."""
        return self.revoked_at is None and self.starts_at <= now and (self.ends_at is None or self.ends_at > now)


class Exposure(SQLModel, table=True):
    """A secret (of one kind) known to someone who can no longer decrypt it.

    ``kind`` is ``password``, ``totp`` or ``recovery-codes``; ``version_id`` is the
    version that was current (or pending) when the exposure was found. Only a new
    value of that kind clears it.
    """

    __tablename__ = "credential_exposure"
    __table_args__ = (UniqueConstraint("version_id", "person_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    version_id: int = Field(foreign_key="credential_version.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    kind: str = Field(max_length=16)
    since: datetime = _when()
    reason: str = Field(max_length=1000)
    deadline: datetime | None = _when(nullable=True)
    cleared_at: datetime | None = _when(nullable=True)
    cleared_by_version: int | None = None


class WrapHistory(SQLModel, table=True):
    """Every data key ever wrapped to a person: what they could have read, forever."""

    __tablename__ = "wrap_history"

    id: int | None = Field(default=None, primary_key=True)
    data_key_id: int = Field(foreign_key="data_key.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    recipient_fingerprint: str = Field(max_length=64)
    wrapped_at: datetime = _when()
    removed_at: datetime | None = _when(nullable=True)


class Rotation(SQLModel, table=True):
    """A two-phase password rotation: pending, then confirmed or aborted."""

    __tablename__ = "rotation"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    status: str = Field(max_length=16, index=True)  # pending | confirmed | aborted
    pending_version_id: int = Field(foreign_key="credential_version.id")
    previous_version_id: int = Field(foreign_key="credential_version.id")
    started_by: str = Field(max_length=32)
    started_at: datetime = _when()
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = _when(nullable=True)


class AccessRequest(SQLModel, table=True):
    __tablename__ = "access_request"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    reason: str = Field(max_length=1000)
    duration_s: int | None = None
    status: str = Field(max_length=16, index=True)  # pending | approved | denied | cancelled | withdrawn
    created_at: datetime = _when()
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = _when(nullable=True)
    decision_reason: str | None = Field(default=None, max_length=1000)


class Policy(SQLModel, table=True):
    """A published version of the organisation's social media policy."""

    __tablename__ = "policy"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(unique=True, max_length=64)
    text: str
    sha256: str = Field(max_length=64)
    published_by: str = Field(max_length=32)
    published_at: datetime = _when()


class PolicyAck(SQLModel, table=True):
    __tablename__ = "policy_ack"
    __table_args__ = (UniqueConstraint("policy_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="policy.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    acked_at: datetime = _when()


class Review(SQLModel, table=True):
    """A periodic access review: every live grant at its start, each to certify or revoke."""

    __tablename__ = "access_review"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    status: str = Field(max_length=16)  # open | closed
    started_by: str = Field(max_length=32)
    started_at: datetime = _when()
    closed_by: str | None = Field(default=None, max_length=32)
    closed_at: datetime | None = _when(nullable=True)


class ReviewItem(SQLModel, table=True):
    __tablename__ = "access_review_item"
    __table_args__ = (UniqueConstraint("review_id", "grant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="access_review.id", index=True)
    grant_id: int = Field(foreign_key="access_grant.id")
    account_id: int = Field(foreign_key="account.id")
    person_id: int = Field(foreign_key="person.id")
    decision: str = Field(max_length=16)  # pending | certified | revoked | ended
    decided_by: str | None = Field(default=None, max_length=32)
    decided_at: datetime | None = _when(nullable=True)
    reason: str | None = Field(default=None, max_length=1000)


class KnowledgeRecord(SQLModel, table=True):
    """Someone recorded as knowing an account's password out of band (never through govern)."""

    __tablename__ = "knowledge_record"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    version_id: int = Field(foreign_key="credential_version.id")  # current when recorded
    reason: str = Field(max_length=1000)
    recorded_by: str = Field(max_length=32)
    recorded_at: datetime = _when()


class OffboardCase(SQLModel, table=True):
    __tablename__ = "offboard_case"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    status: str = Field(max_length=16, index=True)  # open | closed
    reason: str = Field(max_length=1000)
    started_by: str = Field(max_length=32)
    started_at: datetime = _when()
    effective_at: datetime = _when()
    deadline: datetime = _when()
    closed_at: datetime | None = _when(nullable=True)
    head_seq: int | None = None  # the audit chain head when the case closed
    head_hash: str | None = Field(default=None, max_length=64)


class OffboardStep(SQLModel, table=True):
    """One action of an offboarding case: automatic (done by ``offboard start``) or follow-up."""

    __tablename__ = "offboard_step"
    __table_args__ = (UniqueConstraint("case_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="offboard_case.id", index=True)
    number: int
    kind: str = Field(max_length=32)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True)
    exposure_id: int | None = Field(default=None, foreign_key="credential_exposure.id", index=True)
    title: str = Field(max_length=300)
    automatic: bool = False
    status: str = Field(max_length=16, index=True)  # open | done | waived
    deadline: datetime | None = _when(nullable=True)
    closed_by: str | None = Field(default=None, max_length=32)
    closed_at: datetime | None = _when(nullable=True)
    note: str | None = Field(default=None, max_length=1000)
    detail: str = Field(default="{}")  # JSON: what the automatic step did
