"""Ticket attachments: results a technician's client posts to the ticket (a diagnostics report,
a runbook's output, a note about a file), kept with their size and SHA-256."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class TicketAttachment(Base):
    __tablename__ = "ticket_attachments"
    __table_args__ = (Index("ix_ticket_attachments_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # The support session it came from, when it did.
    support_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("support_sessions.id"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)  # bytes of the UTF-8 content
    sha256: Mapped[str] = mapped_column(String(64))
    # The device reported this content's digest in the named session (protocol.results;
    # migration 0012). False: only the technician's client vouches for it.
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
