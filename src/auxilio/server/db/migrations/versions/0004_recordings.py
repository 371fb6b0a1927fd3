"""recordings: auditor keys (public halves), recordings, their sealed keys; sealed activity

Activity reports lose their clear ``subject``: the details now arrive sealed to the auditor key
(``sealed_details``, its ``details_sha256``), with ``source`` and ``count`` in clear. Upgrading
drops the clear column and what it held; downgrading brings the column back empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auditor_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("retired_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_auditor_keys_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auditor_keys")),
    )
    with op.batch_alter_table("auditor_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auditor_keys_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("support_session_id", sa.Uuid(), nullable=False),
        sa.Column("auditor_key_id", sa.Uuid(), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.Column("deleted_at", auxilio.server.db.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["auditor_key_id"],
            ["auditor_keys.id"],
            name=op.f("fk_recordings_auditor_key_id_auditor_keys"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_recordings_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["support_session_id"],
            ["support_sessions.id"],
            name=op.f("fk_recordings_support_session_id_support_sessions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("support_session_id", name=op.f("uq_recordings_support_session_id")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_recordings_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "recording_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.String(length=43), nullable=False),
        sa.Column("sealed_keys", sa.Text(), nullable=False),
        sa.Column("received_at", auxilio.server.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_keys_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_keys")),
        sa.UniqueConstraint("recording_id", "epoch", name=op.f("uq_recording_keys_recording_id")),
    )
    with op.batch_alter_table("recording_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recording_keys_recording_id"), ["recording_id"], unique=False
        )

    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("count", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("sealed_details", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("details_sha256", sa.String(length=64), nullable=True))
        batch_op.drop_column("subject")
    # The server default only filled existing rows; the model supplies the value from now on.
    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.alter_column("count", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("subject", sa.Text(), nullable=False, server_default=sa.text("''"))
        )
        batch_op.drop_column("details_sha256")
        batch_op.drop_column("sealed_details")
        batch_op.drop_column("count")
        batch_op.drop_column("source")
    with op.batch_alter_table("support_session_activities", schema=None) as batch_op:
        batch_op.alter_column("subject", server_default=None)

    with op.batch_alter_table("recording_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_keys_recording_id"))
    op.drop_table("recording_keys")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_recordings_expires_at"))
    op.drop_table("recordings")
    with op.batch_alter_table("auditor_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auditor_keys_organisation_id"))
    op.drop_table("auditor_keys")
