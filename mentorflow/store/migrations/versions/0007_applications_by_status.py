"""an index of applications by program and status: an answer's record counts those
still open in its program

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_applications_program_status", "applications", ["program_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_applications_program_status", table_name="applications")
