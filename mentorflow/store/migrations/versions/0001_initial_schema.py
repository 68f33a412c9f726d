"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 15:46:19.036665
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "email_ledger",
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.String(length=100), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=60), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_email_ledger")),
        sa.UniqueConstraint("message_id", name=op.f("uq_email_ledger_message_id")),
    )
    with op.batch_alter_table("email_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_ledger_program_id"), ["program_id"], unique=False
        )

    op.create_table(
        "programs",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("phase", sa.String(length=40), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("next_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_programs_workflow_id")),
    )
    op.create_table(
        "program_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("phase", sa.String(length=40), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_events_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_events")),
        sa.UniqueConstraint("program_id", "key", name=op.f("uq_program_events_program_id")),
    )


def downgrade() -> None:

    op.drop_table("program_events")
    op.drop_table("programs")
    with op.batch_alter_table("email_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_ledger_program_id"))

    op.drop_table("email_ledger")
