"""Response bodies of the audit routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_name: str
    client_addr: str | None
    action: str
    target_type: str | None
    target_id: str | None
    request_id: str
    details: dict[str, Any]
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int | None


class VerifyOut(BaseModel):
    chain: str
    intact: bool
    events: int
    checkpoints: int
    # Checkpoints matched against the server's witness directory (docs/audit.md).
    witnessed: int
    first_broken_seq: int | None
    reason: str | None
    # A stable code (audit.*) when not intact; audit.witness_unreadable when the witness file
    # could not be read.
    code: str | None
