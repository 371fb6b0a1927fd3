"""unattended access: enrolment tokens, devices enrolled or revoked, the owners' signed
pre-authorisations, automated runs, and the pre-authorisation an unattended session relies on

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolment_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("device_group", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("used_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_enrolment_tokens_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_enrolment_tokens_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_enrolment_tokens_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_enrolment_tokens_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_enrolment_tokens_token_hash")),
    )
    with op.batch_alter_table("enrolment_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrolment_tokens_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "pre_authorisations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("automated_runs", sa.Boolean(), nullable=False),
        sa.Column("not_before", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("not_after", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("window", sa.JSON(), nullable=False),
        sa.Column("owner_name", sa.String(length=200), nullable=False),
        sa.Column("signed_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("received_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("revocation", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_pre_authorisations_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_pre_authorisations_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pre_authorisations")),
    )
    with op.batch_alter_table("pre_authorisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pre_authorisations_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "automation_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("pre_authorisation_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("repeat_seconds", sa.Integer(), nullable=True),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("order", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("sent_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("finished_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_automation_runs_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_automation_runs_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_automation_runs_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["pre_authorisation_id"],
            ["pre_authorisations.id"],
            name=op.f("fk_automation_runs_pre_authorisation_id_pre_authorisations"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_automation_runs_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_runs")),
    )
    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_automation_runs_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index("ix_automation_runs_state_due", ["state", "due_at"], unique=False)

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("enrolled_at", auxilio.server.db.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("agent_version", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("revoked_at", auxilio.server.db.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("revoked_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("revoke_reason", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_devices_revoked_by_users"), "users", ["revoked_by"], ["id"]
        )

    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pre_authorisation_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_support_sessions_pre_authorisation_id"),
            ["pre_authorisation_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_support_sessions_pre_authorisation_id_pre_authorisations"),
            "pre_authorisations",
            ["pre_authorisation_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_support_sessions_pre_authorisation_id_pre_authorisations"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_support_sessions_pre_authorisation_id"))
        batch_op.drop_column("pre_authorisation_id")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_devices_revoked_by_users"), type_="foreignkey")
        batch_op.drop_column("revoke_reason")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("agent_version")
        batch_op.drop_column("enrolled_at")

    with op.batch_alter_table("automation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_automation_runs_state_due")
        batch_op.drop_index(batch_op.f("ix_automation_runs_device_id"))

    op.drop_table("automation_runs")
    with op.batch_alter_table("pre_authorisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pre_authorisations_device_id"))

    op.drop_table("pre_authorisations")
    with op.batch_alter_table("enrolment_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrolment_tokens_organisation_id"))

    op.drop_table("enrolment_tokens")
