"""emergencies: declared and lifted emergencies, at most one active per organisation

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ACTIVE_WHERE = "lifted_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "emergencies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("declared_by", sa.Uuid(), nullable=False),
        sa.Column("declared_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("escalate_to", sa.JSON(), nullable=False),
        sa.Column("sessions_ended", sa.Integer(), nullable=False),
        sa.Column("lifted_by", sa.Uuid(), nullable=True),
        sa.Column("lifted_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["declared_by"], ["users.id"], name=op.f("fk_emergencies_declared_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by"], ["users.id"], name=op.f("fk_emergencies_lifted_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_emergencies_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergencies")),
    )
    op.create_index(
        "ix_emergencies_org_declared", "emergencies", ["organisation_id", "declared_at"]
    )
    op.create_index(
        "uq_emergencies_active_organisation",
        "emergencies",
        ["organisation_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_WHERE),
        postgresql_where=sa.text(ACTIVE_WHERE),
    )


def downgrade() -> None:
    op.drop_index("uq_emergencies_active_organisation", table_name="emergencies")
    op.drop_index("ix_emergencies_org_declared", table_name="emergencies")
    op.drop_table("emergencies")
