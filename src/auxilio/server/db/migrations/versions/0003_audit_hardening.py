"""audit: the chain head is signed on every append (key id and signature on audit_heads)

The heads that already exist are signed here, with the server key of the data directory being
migrated (``auxilio serve`` migrates on start): from this revision on, the server refuses to
append to a head it did not sign. What is signed is the head as found at the upgrade; nothing
before it was signed. Without a key (a database migrated on its own, with ``alembic_config``
and no key path) existing heads stay unsigned, and verify and appends refuse them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from auxilio.server.db.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_heads = sa.table(
    "audit_heads",
    sa.column("chain", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("hash", sa.String()),
    sa.column("updated_at", UTCDateTime()),
    sa.column("key_id", sa.String()),
    sa.column("signature", sa.Text()),
)


def _sign_existing_heads() -> None:
    key_path = context.config.attributes.get("auxilio_signing_key_path")
    if key_path is None or not Path(key_path).exists():
        return
    from auxilio.server.audit.chain import format_time, sign_head
    from auxilio.server.keys import key_id, load_or_create_signing_key

    key = load_or_create_signing_key(Path(key_path))
    kid = key_id(key.public_key())
    bind = op.get_bind()
    rows = bind.execute(sa.select(_heads.c.chain, _heads.c.seq, _heads.c.hash, _heads.c.updated_at))
    for chain, seq, digest, updated_at in rows.all():
        signature = sign_head(key, chain, seq, digest, format_time(updated_at))
        bind.execute(
            _heads.update().where(_heads.c.chain == chain).values(key_id=kid, signature=signature)
        )


def upgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("signature", sa.Text(), nullable=True))
    _sign_existing_heads()


def downgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.drop_column("signature")
        batch.drop_column("key_id")
