"""Automated runs: a runbook or a diagnostics collection on an enrolled device, with no
technician attached, inside the owner's pre-authorisation (docs/unattended.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class AutomationRun(Base):
    __tablename__ = "automation_runs"
    __table_args__ = (Index("ix_automation_runs_state_due", "state", "due_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    pre_authorisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("pre_authorisations.id"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # runbook | diagnostics
    # runbook: {"runbook_id", "version", "params"}; diagnostics: {"sections": [...]}
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # scheduled | sent | done | failed | refused | expired | cancelled
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Repeat every this many seconds after each run (None: once).
    repeat_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    order: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
