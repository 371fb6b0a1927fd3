"""The ``emergencies`` table: one row per declared emergency, lifted or not.

At most one emergency of an organisation is active (``lifted_at IS NULL``): a partial unique
index that SQLite and PostgreSQL both enforce, so two supervisors declaring at the same moment
get one emergency and one ``emergency.already_active``, whichever node each request reached.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow

ACTIVE_WHERE = "lifted_at IS NULL"


class Emergency(Base):
    __tablename__ = "emergencies"
    __table_args__ = (
        Index(
            "uq_emergencies_active_organisation",
            "organisation_id",
            unique=True,
            sqlite_where=text(ACTIVE_WHERE),
            postgresql_where=text(ACTIVE_WHERE),
        ),
        Index("ix_emergencies_org_declared", "organisation_id", "declared_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    declared_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    # The active policy's version label when it was declared (the rule that allowed it).
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # What the policy's emergency.actions said at the declaration, kept as they were then.
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    escalate_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    sessions_ended: Mapped[int] = mapped_column(Integer, default=0)
    lifted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
