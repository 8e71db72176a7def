"""offboarding

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "offboard_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("started_by", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("head_seq", sa.Integer(), nullable=True),
        sa.Column("head_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offboard_case_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offboard_case_status"), ["status"], unique=False)

    op.create_table(
        "knowledge_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("recorded_by", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
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
    )
    with op.batch_alter_table("knowledge_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_record_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_knowledge_record_person_id"), ["person_id"], unique=False)

    op.create_table(
        "offboard_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("exposure_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("detail", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["offboard_case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["exposure_id"],
            ["credential_exposure.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "number"),
    )
    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offboard_step_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offboard_step_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offboard_step_exposure_id"), ["exposure_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offboard_step_status"), ["status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("offboard_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offboard_step_status"))
        batch_op.drop_index(batch_op.f("ix_offboard_step_exposure_id"))
        batch_op.drop_index(batch_op.f("ix_offboard_step_case_id"))
        batch_op.drop_index(batch_op.f("ix_offboard_step_account_id"))

    op.drop_table("offboard_step")
    with op.batch_alter_table("knowledge_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_record_person_id"))
        batch_op.drop_index(batch_op.f("ix_knowledge_record_account_id"))

    op.drop_table("knowledge_record")
    with op.batch_alter_table("offboard_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offboard_case_status"))
        batch_op.drop_index(batch_op.f("ix_offboard_case_person_id"))

    op.drop_table("offboard_case")
