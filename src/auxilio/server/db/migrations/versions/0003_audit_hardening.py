"""audit: the chain head is signed on every append (key id and signature on audit_heads)

Heads written before this revision keep a NULL signature: ``auxilio audit verify`` fails them
("the head's signature is missing") until the chain's next event signs its head. The migration
cannot sign them itself: it has no access to the server's key, and signing whatever head is in
the database would bless a head someone had already rewritten.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("signature", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.drop_column("signature")
        batch.drop_column("key_id")
