"""support sessions: sessions, join codes, consent receipts, activity reports, extensions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:13:13.394780
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_ref", sa.String(length=200), nullable=False),
        sa.Column("technician_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("device_public_key", sa.String(length=64), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requested_capabilities", sa.JSON(), nullable=False),
        sa.Column("granted_capabilities", sa.JSON(), nullable=False),
        sa.Column("capability_limits", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("decision_rule", sa.String(length=200), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("max_duration_seconds", sa.Integer(), nullable=False),
        sa.Column("warn_before_seconds", sa.Integer(), nullable=False),
        sa.Column("idle_timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("consent_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("consent_timeout_default", sa.String(length=8), nullable=False),
        sa.Column("recorded", sa.Boolean(), nullable=False),
        sa.Column("not_after", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("warned_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("offered_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("activated_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("ended_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("end_detail", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("technician_e2e_key", sa.String(length=64), nullable=False),
        sa.Column("grant_nonce", sa.String(length=64), nullable=True),
        sa.Column("grant_body", sa.Text(), nullable=True),
        sa.Column("grant_signature", sa.String(length=100), nullable=True),
        sa.Column("offer_prompt", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_support_sessions_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_support_sessions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["users.id"], name=op.f("fk_support_sessions_requester_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["technician_id"], ["users.id"], name=op.f("fk_support_sessions_technician_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_support_sessions_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_sessions")),
    )
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_sessions_device_public_key"), ["device_public_key"], unique=False
        )
        batch_op.create_index("ix_support_sessions_node_state", ["node_id", "state"], unique=False)
        batch_op.create_index(
            "ix_support_sessions_org_created", ["organisation_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_support_sessions_requester_id"), ["requester_id"], unique=False
        )
        batch_op.create_index(
            "ix_support_sessions_technician_state", ["technician_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_support_sessions_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "consent_receipts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("decisions", sa.JSON(), nullable=False),
        sa.Column("prompt_sha256", sa.String(length=64), nullable=False),
        sa.Column("decided_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("received_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_consent_receipts_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_consent_receipts_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_consent_receipts_support_session_id_support_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_receipts")),
    )
    with op.batch_alter_table("consent_receipts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_receipts_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_receipts_support_session_id"),
            ["support_session_id"],
            unique=False,
        )

    op.create_table(
        "support_session_activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=False),
        sa.Column("at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("capability", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_support_session_activities_support_session_id_support_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_session_activities")),
    )
    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_session_activities_support_session_id"),
            ["support_session_id"],
            unique=False,
        )

    op.create_table(
        "support_session_extensions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("decision_rule", sa.String(length=200), nullable=True),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_support_session_extensions_decided_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_support_session_extensions_requested_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_support_session_extensions_support_session_id_support_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_session_extensions")),
    )
    with op.batch_alter_table("support_session_extensions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_session_extensions_support_session_id"),
            ["support_session_id"],
            unique=False,
        )

    op.create_table(
        "support_session_join_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_support_session_join_codes_support_session_id_support_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_session_join_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_support_session_join_codes_code_hash")),
    )
    with op.batch_alter_table("support_session_join_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_session_join_codes_support_session_id"),
            ["support_session_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("support_session_join_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_session_join_codes_support_session_id"))

    op.drop_table("support_session_join_codes")
    with op.batch_alter_table("support_session_extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_session_extensions_support_session_id"))

    op.drop_table("support_session_extensions")
    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_session_activities_support_session_id"))

    op.drop_table("support_session_activities")
    with op.batch_alter_table("consent_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_receipts_support_session_id"))
        batch_op.drop_index(batch_op.f("ix_consent_receipts_device_id"))

    op.drop_table("consent_receipts")
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_sessions_ticket_id"))
        batch_op.drop_index("ix_support_sessions_technician_state")
        batch_op.drop_index(batch_op.f("ix_support_sessions_requester_id"))
        batch_op.drop_index("ix_support_sessions_org_created")
        batch_op.drop_index("ix_support_sessions_node_state")
        batch_op.drop_index(batch_op.f("ix_support_sessions_device_public_key"))

    op.drop_table("support_sessions")
