"""Tables of the audit log. ``ts`` is stored as text so hashes cover exact bytes."""

from sqlmodel import Field, SQLModel


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    tx: str = Field(index=True, max_length=36)
    ts: str = Field(max_length=40)
    actor: str = Field(index=True, max_length=64)
    action: str = Field(index=True, max_length=64)
    account: str | None = Field(default=None, index=True, max_length=64)
    subject: str | None = Field(default=None, index=True, max_length=64)
    reason: str | None = Field(default=None, max_length=1000)
    data: str
    prev: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditSeal(SQLModel, table=True):
    __tablename__ = "audit_seal"

    tx: str = Field(primary_key=True, max_length=36)
    first_seq: int = Field(index=True)
    last_seq: int
    head: str = Field(max_length=64)
    signer: str = Field(max_length=64)
    key: str = Field(max_length=64)
    ts: str = Field(max_length=40)
    signature: str = Field(max_length=200)
