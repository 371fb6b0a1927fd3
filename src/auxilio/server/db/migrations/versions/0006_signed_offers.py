"""signed offers and extensions: the grant an extension proposes waits for the person's answer

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import auxilio.server.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLE = "support_session_extensions"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("grant_body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("grant_signature", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("grant_nonce", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("offered_at", auxilio.server.db.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("answered_at", auxilio.server.db.base.UTCDateTime(), nullable=True)
        )
        batch.create_index(f"ix_{_TABLE}_grant_nonce", ["grant_nonce"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_index(f"ix_{_TABLE}_grant_nonce")
        batch.drop_column("answered_at")
        batch.drop_column("offered_at")
        batch.drop_column("grant_nonce")
        batch.drop_column("grant_signature")
        batch.drop_column("grant_body")
