"""Devices belong to their owner (an end user) and can be linked to tickets.

An enrolled device (``auxilio agent enroll``, docs/unattended.md) also has an enrolment time, a
group, and may be revoked by the organisation; its owner's pre-authorisations for unattended
access are kept as the device signed them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(16))  # windows | macos | linux | other
    device_group: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The agent's Ed25519 identity key (base64url), set when the agent first pairs.
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when an agent enrolled with a token (unattended access becomes possible).
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    agent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A revoked device is refused at every connection and its pre-authorisations are void.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class EnrolmentToken(Base):
    """A single-use token that enrols one device into a group for an owner. Only its SHA-256 is
    kept; the token itself is shown once to whoever made it."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    device_group: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PreAuthorisationRecord(Base):
    """The owner's pre-authorisation as the device signed it (``document``: the SignedDocument's
    body and signature), with the fields the server queries copied out of it. The copies are
    checked against the signature whenever the record is used."""

    __tablename__ = "pre_authorisations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the document's own id
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    automated_runs: Mapped[bool] = mapped_column(Boolean, default=False)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    window: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
