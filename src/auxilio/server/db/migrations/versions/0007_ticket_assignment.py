"""tickets: when the current assignee got the ticket (the routing tie-break)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("assigned_at", auxilio.server.db.base.UTCDateTime(), nullable=True)
        )
    # Tickets assigned before this column existed: their opening time, the best guess there is
    # (automatically routed tickets were assigned in the opening transaction).
    op.execute("UPDATE tickets SET assigned_at = created_at WHERE assignee_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("assigned_at")
