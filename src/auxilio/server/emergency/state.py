"""Whether an organisation's emergency is active: read from the database on every question, so
that every node and a restarted server agree (no process keeps it). Imports only the model, so
the support-session service can ask it without an import cycle."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.emergency.models import Emergency


async def current(db: AsyncSession, *, organisation_id: uuid.UUID) -> Emergency | None:
    """The organisation's active emergency, None when there is none."""
    query = select(Emergency).where(
        Emergency.organisation_id == organisation_id, Emergency.lifted_at.is_(None)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def is_active(db: AsyncSession, *, organisation_id: uuid.UUID) -> bool:
    query = select(Emergency.id).where(
        Emergency.organisation_id == organisation_id, Emergency.lifted_at.is_(None)
    )
    return (await db.execute(query.limit(1))).first() is not None
