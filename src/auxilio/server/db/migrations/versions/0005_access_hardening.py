"""Emails unique per organisation, not across the server (docs/adr/0005)

Creating a user whose email existed in another organisation answered 409: an oracle across
organisations. ``users.email`` loses its server-wide unique constraint and gains an index (login
looks accounts up by email); ``(organisation_id, email)`` is unique instead.

A downgrade restores the server-wide constraint; it fails, and changes nothing, while two
organisations use the same address.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_email", type_="unique")
        batch_op.create_unique_constraint(
            "uq_users_organisation_id_email", ["organisation_id", "email"]
        )
        batch_op.create_index(batch_op.f("ix_users_email"), ["email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email"))
        batch_op.drop_constraint("uq_users_organisation_id_email", type_="unique")
        batch_op.create_unique_constraint("uq_users_email", ["email"])
