"""Auditor keys (public halves only), recordings and the sealed E2E keys that open them.

The server never holds anything that opens a recording: the frames on disk are the E2E
ciphertext the relay forwarded, and each epoch's keys are sealed by the agent to the auditor key.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from auxilio.server.db.base import Base, UTCDateTime, new_id, utcnow


class AuditorKey(Base):
    """An organisation's X25519 auditor public key. Rotating retires the current one; the old
    row stays, because recordings sealed to it still name it."""

    __tablename__ = "auditor_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    public_key: Mapped[str] = mapped_column(String(64))  # unpadded base64url, as in grants
    fingerprint: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Recording(Base):
    """One recorded support session: where its frames are and until when they are kept."""

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    support_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("support_sessions.id", ondelete="RESTRICT"), unique=True
    )
    auditor_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auditor_keys.id", ondelete="RESTRICT")
    )
    # Relative to <data_dir>/recordings; the relay writes it (relay/recording.py).
    file_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # From privacy.retention.recordings of the policy in force when the session was requested.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RecordingKey(Base):
    """The E2E keys of one handshake epoch, sealed by the agent to the auditor key."""

    __tablename__ = "recording_keys"
    __table_args__ = (UniqueConstraint("recording_id", "epoch"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    epoch: Mapped[str] = mapped_column(String(43))  # base64url of the E2E transcript hash
    sealed_keys: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
