"""support sessions: the session decision's reason code and parameters (worded in any language)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_sessions") as batch:
        batch.add_column(sa.Column("decision_reason_code", sa.String(100), nullable=True))
        batch.add_column(sa.Column("decision_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_sessions") as batch:
        batch.drop_column("decision_params")
        batch.drop_column("decision_reason_code")
