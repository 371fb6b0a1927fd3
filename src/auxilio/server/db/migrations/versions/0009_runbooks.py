"""runbooks: the catalogue of an organisation's runbooks, one row per version, signed at approval

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runbooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("runbook_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("interpreter", sa.String(length=16), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("approver_id", sa.Uuid(), nullable=True),
        sa.Column("approver_name", sa.String(length=200), nullable=True),
        sa.Column("approved_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("retired_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("signed_body", sa.Text(), nullable=True),
        sa.Column("signature", sa.String(length=86), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["users.id"],
            name=op.f("fk_runbooks_approver_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_runbooks_author_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_runbooks_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbooks")),
        sa.UniqueConstraint(
            "organisation_id", "runbook_id", "version", name=op.f("uq_runbooks_organisation_id")
        ),
    )
    with op.batch_alter_table("runbooks", schema=None) as batch_op:
        batch_op.create_index("ix_runbooks_org_state", ["organisation_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runbooks", schema=None) as batch_op:
        batch_op.drop_index("ix_runbooks_org_state")
    op.drop_table("runbooks")
