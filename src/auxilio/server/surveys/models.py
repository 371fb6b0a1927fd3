"""One survey per session (or per resolved ticket without a session), answered once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class Survey(Base):
    __tablename__ = "surveys"
    __table_args__ = (
        # One survey per subject: "session:<id>" or "ticket:<id>".
        UniqueConstraint("organisation_id", "subject", name="uq_surveys_org_subject"),
        Index("ix_surveys_org_answered", "organisation_id", "answered_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    subject: Mapped[str] = mapped_column(String(80))
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id"), index=True)
    support_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("support_sessions.id"), nullable=True, index=True
    )
    # The person asked; only they (or whoever holds their link) can answer.
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    technician_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    # scheduled -> sent -> answered | declined | expired
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    # portal | link | agent: where the answer (or the refusal) came from.
    answered_via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The signed link carries this nonce; a new link (re-send) replaces it, the old one dies.
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
