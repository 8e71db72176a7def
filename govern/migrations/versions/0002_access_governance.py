"""access governance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "access_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("published_by", sa.String(length=32), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version"),
    )
    op.create_table(
        "policy_ack",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("policy_id", "person_id"),
    )
    with op.batch_alter_table("policy_ack", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_ack_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_policy_ack_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "access_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_request_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_request_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_request_status"), ["status"], unique=False)

    op.create_table(
        "access_review_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["access_grant.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["access_review.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("review_id", "grant_id"),
    )
    with op.batch_alter_table("access_review_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_review_item_review_id"), ["review_id"], unique=False)

    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("over_cap_reason", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_access_grant_request_id", "access_request", ["request_id"], ["id"])


def downgrade() -> None:

    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.drop_constraint("fk_access_grant_request_id", type_="foreignkey")
        batch_op.drop_column("expired_at")
        batch_op.drop_column("over_cap_reason")
        batch_op.drop_column("request_id")

    with op.batch_alter_table("access_review_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_review_item_review_id"))

    op.drop_table("access_review_item")
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_status"))
        batch_op.drop_index(batch_op.f("ix_access_request_person_id"))
        batch_op.drop_index(batch_op.f("ix_access_request_account_id"))

    op.drop_table("access_request")
    with op.batch_alter_table("policy_ack", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_ack_policy_id"))
        batch_op.drop_index(batch_op.f("ix_policy_ack_person_id"))

    op.drop_table("policy_ack")
    op.drop_table("policy")
    op.drop_table("access_review")
