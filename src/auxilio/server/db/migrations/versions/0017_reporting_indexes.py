"""reporting indexes: tickets by organisation, requester, category and resolution time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 06:15:00

The repeat incidents KPI looks, for each ticket opened in the period, for another ticket of the
same requester and category resolved in the 30 days before: one probe into this index per
opening instead of a sort of every opening and resolution.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_org_requester_category_resolved",
            ["organisation_id", "requester_id", "category", "resolved_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_org_requester_category_resolved")
