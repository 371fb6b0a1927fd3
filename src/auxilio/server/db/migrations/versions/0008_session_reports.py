"""support sessions: revocations kept for the one session report (who revoked what, when)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_sessions") as batch:
        batch.add_column(sa.Column("revoked_capabilities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_sessions") as batch:
        batch.drop_column("revoked_capabilities")
