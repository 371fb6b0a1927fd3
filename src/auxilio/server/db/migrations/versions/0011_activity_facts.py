"""support session activities: the clear facts of files, zones and runbooks

A file read or written keeps its size and content hash (never its name: that stays sealed), a
zone activity its zone, a runbook run its runbook id and exit code.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_session_activities") as batch:
        batch.add_column(sa.Column("size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("zone", sa.String(200), nullable=True))
        batch.add_column(sa.Column("runbook_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_session_activities") as batch:
        for name in ("exit_code", "runbook_id", "zone", "sha256", "size"):
            batch.drop_column(name)
