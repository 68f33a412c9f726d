"""closing evaluation answers and program reports

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_responses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("application_id", sa.String(length=40), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_evaluation_responses_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_evaluation_responses_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_responses")),
        sa.UniqueConstraint(
            "program_id", "application_id", name=op.f("uq_evaluation_responses_program_id")
        ),
    )
    op.create_index(
        op.f("ix_evaluation_responses_program_id"), "evaluation_responses", ["program_id"]
    )
    op.create_table(
        "program_reports",
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_program_reports_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_program_reports")),
    )


def downgrade() -> None:
    op.drop_table("program_reports")
    op.drop_index(op.f("ix_evaluation_responses_program_id"), table_name="evaluation_responses")
    op.drop_table("evaluation_responses")
