"""Tickets, their comments and the technician time spent on them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("organisation_id", "number", name="uq_tickets_org_number"),
        Index("ix_tickets_org_status", "organisation_id", "status"),
        Index("ix_tickets_org_created", "organisation_id", "created_at"),
        Index("ix_tickets_org_resolved", "organisation_id", "resolved_at"),
        # The repeat incidents KPI: one probe per opening (reporting/queries.py, repeat_pass).
        Index("ix_tickets_org_requester_category_resolved",
              "organisation_id", "requester_id", "category", "resolved_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16), default="web")
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id"), nullable=True, index=True
    )
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    # When the current assignee got it (the routing tie-break: who waited longest).
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # What the KPIs need (docs/kpis.md).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # Exchanges with the requester: the opening and each public staff reply.
    contact_count: Mapped[int] = mapped_column(Integer, default=1)
    time_spent_seconds: Mapped[int] = mapped_column(Integer, default=0)
    # The policy version in force for this ticket when it was opened (its device's pilot version
    # where one runs for the device's group): the "policy version" KPI slice.
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)


class TicketComment(Base):
    __tablename__ = "ticket_comments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TimeEntry(Base):
    __tablename__ = "ticket_time_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    technician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    seconds: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
