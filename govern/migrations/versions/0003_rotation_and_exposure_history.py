"""rotation and exposure history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "wrap_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_key_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("recipient_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("wrapped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["data_key.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("wrap_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wrap_history_data_key_id"), ["data_key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_wrap_history_person_id"), ["person_id"], unique=False)

    op.create_table(
        "credential_exposure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["credential_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "person_id", "kind"),
    )
    with op.batch_alter_table("credential_exposure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credential_exposure_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credential_exposure_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credential_exposure_version_id"), ["version_id"], unique=False)

    op.create_table(
        "rotation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pending_version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["pending_version_id"],
            ["credential_version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["credential_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rotation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rotation_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rotation_status"), ["status"], unique=False)

    # Exposures gain a kind (password, totp, recovery-codes): rows of 0002 were about passwords.
    op.execute(
        "INSERT INTO credential_exposure (id, account_id, version_id, person_id, kind, since, reason, cleared_at)"
        " SELECT id, account_id, version_id, person_id, 'password', since, reason, cleared_at FROM exposure"
    )
    # What people could read: from the wraps that exist, and from the exposures (whose wraps are gone).
    op.execute(
        "INSERT INTO wrap_history (data_key_id, person_id, recipient_fingerprint, wrapped_at)"
        " SELECT data_key_id, person_id, recipient_fingerprint, created_at FROM key_wrap WHERE person_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO wrap_history (data_key_id, person_id, recipient_fingerprint, wrapped_at, removed_at)"
        " SELECT v.data_key_id, e.person_id,"
        " COALESCE((SELECT k.fingerprint FROM person_key k WHERE k.person_id = e.person_id ORDER BY k.id LIMIT 1), ''),"
        " e.since, e.since FROM exposure e JOIN credential_version v ON v.id = e.version_id"
    )
    with op.batch_alter_table("exposure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exposure_account_id"))
        batch_op.drop_index(batch_op.f("ix_exposure_person_id"))
        batch_op.drop_index(batch_op.f("ix_exposure_version_id"))

    op.drop_table("exposure")
    with op.batch_alter_table("credential_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True))
    # Versions of 0002 did not record what they changed: count every field as changed (the safe side).
    op.execute("UPDATE credential_version SET changed = fields")
    with op.batch_alter_table("credential_version", schema=None) as batch_op:
        batch_op.alter_column("changed", server_default=None)


def downgrade() -> None:

    with op.batch_alter_table("credential_version", schema=None) as batch_op:
        batch_op.drop_column("destroyed_at")
        batch_op.drop_column("retain_until")
        batch_op.drop_column("changed")

    op.create_table(
        "exposure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["credential_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "person_id"),
    )
    with op.batch_alter_table("exposure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exposure_version_id"), ["version_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exposure_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exposure_account_id"), ["account_id"], unique=False)
    op.execute(
        "INSERT INTO exposure (id, account_id, version_id, person_id, since, reason, cleared_at)"
        " SELECT MIN(id), MIN(account_id), version_id, person_id, MIN(since), MIN(reason), MAX(cleared_at)"
        " FROM credential_exposure GROUP BY version_id, person_id"
    )

    with op.batch_alter_table("rotation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rotation_status"))
        batch_op.drop_index(batch_op.f("ix_rotation_account_id"))

    op.drop_table("rotation")
    with op.batch_alter_table("credential_exposure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_exposure_version_id"))
        batch_op.drop_index(batch_op.f("ix_credential_exposure_person_id"))
        batch_op.drop_index(batch_op.f("ix_credential_exposure_account_id"))

    op.drop_table("credential_exposure")
    with op.batch_alter_table("wrap_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wrap_history_person_id"))
        batch_op.drop_index(batch_op.f("ix_wrap_history_data_key_id"))

    op.drop_table("wrap_history")
