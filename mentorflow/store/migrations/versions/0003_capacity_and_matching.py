"""capacity decisions on applications; match proposals and their pairs

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("selection", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("selected_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("selection_channel", sa.String(length=30), nullable=True))
        batch.add_column(sa.Column("selected_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "match_proposals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_score", sa.Float(), nullable=False),
        sa.Column("worst_score", sa.Float(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.String(length=320), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_match_proposals_program_id_programs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_proposals")),
        sa.UniqueConstraint("program_id", "number", name=op.f("uq_match_proposals_program_id")),
    )
    op.create_table(
        "match_pairs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("mentor_application_id", sa.String(length=40), nullable=False),
        sa.Column("adept_application_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["match_proposals.id"],
            name=op.f("fk_match_pairs_proposal_id_match_proposals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mentor_application_id"],
            ["applications.id"],
            name=op.f("fk_match_pairs_mentor_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["adept_application_id"],
            ["applications.id"],
            name=op.f("fk_match_pairs_adept_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_pairs")),
        sa.UniqueConstraint(
            "proposal_id", "adept_application_id", name=op.f("uq_match_pairs_proposal_id")
        ),
    )
    op.create_index(
        op.f("ix_match_pairs_proposal_id"), "match_pairs", ["proposal_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_match_pairs_proposal_id"), table_name="match_pairs")
    op.drop_table("match_pairs")
    op.drop_table("match_proposals")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("selected_at")
        batch.drop_column("selection_channel")
        batch.drop_column("selected_by")
        batch.drop_column("selection")
