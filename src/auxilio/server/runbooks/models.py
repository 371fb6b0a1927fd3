"""One row per version of a runbook of an organisation's catalogue.

A draft's fields live in the columns. Approval adds the signed document (``signed_body``,
``signature``) and its digest; from then on the signed body, not the columns, is what the
server serves and pins: a column edited behind the server's back changes nothing an agent runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class RunbookState(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    RETIRED = "retired"


class RunbookVersion(Base):
    __tablename__ = "runbooks"
    __table_args__ = (
        UniqueConstraint("organisation_id", "runbook_id", "version"),
        Index("ix_runbooks_org_state", "organisation_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    runbook_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    platforms: Mapped[list[str]] = mapped_column(JSON)
    interpreter: Mapped[str] = mapped_column(String(16))
    script: Mapped[str] = mapped_column(Text)
    # RunbookParameter declarations as JSON (``model_dump(mode="json")``).
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=RunbookState.DRAFT.value)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    author_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approver_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=True
    )
    approver_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The SignedDocument made at approval (base64url body and signature) and the SHA-256 of the
    # body's bytes (``crypto.runbooks.runbook_digest``), which is what a grant pins.
    signed_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature: Mapped[str | None] = mapped_column(String(86), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
