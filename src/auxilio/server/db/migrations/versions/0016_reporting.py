"""reporting: surveys, policy pilots, ticket policy version, team and cost rates

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 05:10:00

Tickets opened before this migration have no policy_version: the KPI slice shows them as
"unknown" rather than guess which version was in force.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_pilots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("policy_version_id", sa.Uuid(), nullable=False),
        sa.Column("device_group", sa.String(length=64), nullable=False),
        sa.Column("starts_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("ends_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_policy_pilots_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_policy_pilots_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_versions.id"],
            name=op.f("fk_policy_pilots_policy_version_id_policy_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_pilots")),
    )
    with op.batch_alter_table("policy_pilots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_pilots_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "surveys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=True),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column("technician_id", sa.Uuid(), nullable=True),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("scale_min", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("send_after", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("sent_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("expires_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("answered_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("answered_via", sa.String(length=16), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_surveys_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_surveys_requester_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_surveys_support_session_id_support_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["technician_id"], ["users.id"], name=op.f("fk_surveys_technician_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_surveys_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("nonce", name=op.f("uq_surveys_nonce")),
        sa.UniqueConstraint("organisation_id", "subject", name="uq_surveys_org_subject"),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_surveys_org_answered", ["organisation_id", "answered_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_surveys_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_surveys_support_session_id"), ["support_session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_surveys_ticket_id"), ["ticket_id"], unique=False)

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kpi_settings", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_version", sa.String(length=100), nullable=True))
        batch_op.create_index(
            "ix_tickets_org_resolved", ["organisation_id", "resolved_at"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hourly_cost_cents", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("hourly_cost_cents")
        batch_op.drop_column("team")

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_org_resolved")
        batch_op.drop_column("policy_version")

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("kpi_settings")

    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_surveys_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_surveys_support_session_id"))
        batch_op.drop_index(batch_op.f("ix_surveys_requester_id"))
        batch_op.drop_index("ix_surveys_org_answered")

    op.drop_table("surveys")
    with op.batch_alter_table("policy_pilots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_pilots_organisation_id"))

    op.drop_table("policy_pilots")
