"""Support sessions, their join codes, consent receipts, activity reports and extensions.

The server stores metadata and signed documents only: session content travels end to end
encrypted through the relay and is never written here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class SupportSession(Base):
    __tablename__ = "support_sessions"
    __table_args__ = (
        Index("ix_support_sessions_org_created", "organisation_id", "created_at"),
        Index("ix_support_sessions_node_state", "node_id", "state"),
        Index("ix_support_sessions_technician_state", "technician_id", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id"), index=True)
    # Copied from the ticket at request time: the person at the device, and how they know it.
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    ticket_ref: Mapped[str] = mapped_column(String(200))
    technician_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    # The key the agent proved at join; a reconnecting agent is matched to its session by it.
    device_public_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    mode: Mapped[str] = mapped_column(String(16))
    # Unattended: the owner's pre-authorisation the session relies on (docs/unattended.md).
    pre_authorisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("pre_authorisations.id"), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(20))
    requested_capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    # capability -> {"at": ISO time, "by": party}: what was granted and later revoked (report).
    revoked_capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What the policy allowed per capability at request time: {"terminal": {"shell": "bash"}}.
    capability_limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    policy_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decision_rule: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The same reason as a stable code and its parameters (policy/reasons.py), so that a page can
    # word it in the reader's language; None for sessions decided before codes existed.
    decision_reason_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decision_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    max_duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    warn_before_seconds: Mapped[int] = mapped_column(Integer, default=0)
    idle_timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consent_timeout_seconds: Mapped[int] = mapped_column(Integer, default=60)
    consent_timeout_default: Mapped[str] = mapped_column(String(8), default="refused")
    recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    end_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The server node that owns the session's timers; a restarted node ends its own sessions.
    node_id: Mapped[str] = mapped_column(String(64))
    technician_e2e_key: Mapped[str] = mapped_column(String(64))
    grant_nonce: Mapped[str | None] = mapped_column(String(64), nullable=True)
    grant_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    grant_signature: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The consent prompt sent with the offer, so a reconnecting agent gets the same one again.
    offer_prompt: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class JoinCode(Base):
    """A single-use code read to the person; only its SHA-256 is kept."""

    __tablename__ = "support_session_join_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    support_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConsentReceiptRecord(Base):
    """The device-signed receipt exactly as received, plus its decisions for queries."""

    __tablename__ = "consent_receipts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    support_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(100))
    decisions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionActivity(Base):
    """What the agent reported doing: kind, time, source and count in clear; the details (a
    command line, a path) only as the agent sealed them to the auditor key, or not at all."""

    __tablename__ = "support_session_activities"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    support_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    capability: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(32), nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    # base64url of the sealed box (crypto.sealed, label "activity"); its SHA-256 is audited.
    sealed_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    details_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Clear facts (migration 0011): a file's size and content hash, a zone's name, a runbook.
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    zone: Mapped[str | None] = mapped_column(String(200), nullable=True)
    runbook_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SessionExtension(Base):
    __tablename__ = "support_session_extensions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    support_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="CASCADE"), index=True
    )
    requested_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    seconds: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    # pending (an approver must answer) | offered (the person must answer) | accepted |
    # declined (the person said no or did not answer) | denied (policy or approver) | lapsed
    state: Mapped[str] = mapped_column(String(16))
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_rule: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The grant proposed to the device; it becomes the session's grant only once accepted.
    grant_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    grant_signature: Mapped[str | None] = mapped_column(String(128), nullable=True)
    grant_nonce: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
