"""Auditor keys, recordings and their sealed keys: every change audited in its transaction.

The server keeps the auditor key's public half only. A recording is the relay's file of E2E
ciphertext (``relay/recording.py``) plus, per E2E epoch, the keys the agent sealed to that public
key; opening it needs the private half, which the server never sees (``export.py`` runs with it
on the auditor's side of the command line).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.keys import decode_x25519_public_key, encode_public_key, fingerprint
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.recordings.errors import (
    RecordingDeleted,
    RecordingKeyRefused,
    RecordingNotFound,
)
from auxilio.server.recordings.models import AuditorKey, Recording, RecordingKey
from auxilio.server.relay.recording import file_name
from auxilio.server.settings import Settings


def recordings_dir(settings: Settings) -> Path:
    return settings.data_dir / "recordings"


def recording_path(directory: Path, recording: Recording) -> Path:
    """The recording's file, named from its session id as the relay names it; never from the
    row's ``file_name``, which a database editor could set to an absolute or ``..`` path (the
    server would then read or delete a file outside its directory)."""
    return directory / file_name(str(recording.support_session_id))


# ---- auditor keys ----------------------------------------------------------------------------


async def get_current_auditor_key(
    db: AsyncSession, *, organisation_id: uuid.UUID
) -> AuditorKey | None:
    rows = await db.execute(
        select(AuditorKey)
        .where(AuditorKey.organisation_id == organisation_id, AuditorKey.retired_at.is_(None))
        .order_by(AuditorKey.created_at.desc())
        .limit(1)
    )
    return rows.scalar_one_or_none()


async def get_auditor_public_key(
    db: AsyncSession, *, organisation_id: uuid.UUID
) -> X25519PublicKey | None:
    """The organisation's current auditor public key, for the grant; ``None`` when it has none."""
    key = await get_current_auditor_key(db, organisation_id=organisation_id)
    return decode_x25519_public_key(key.public_key) if key is not None else None


async def set_auditor_key(
    db: AsyncSession, *, organisation_id: uuid.UUID, public_key: X25519PublicKey, actor: Actor
) -> AuditorKey:
    """Make ``public_key`` the organisation's auditor key; a current one is retired (rotation).
    Recordings already made stay sealed to the key they name."""
    now = utcnow()
    current = await get_current_auditor_key(db, organisation_id=organisation_id)
    if current is not None:
        current.retired_at = now
    key = AuditorKey(
        organisation_id=organisation_id,
        public_key=encode_public_key(public_key),
        fingerprint=fingerprint(public_key),
        created_at=now,
    )
    db.add(key)
    await db.flush()
    action = AuditAction.AUDITOR_KEY_CREATED if current is None else AuditAction.AUDITOR_KEY_ROTATED
    details = {"fingerprint": key.fingerprint, "auditor_key_id": str(key.id)}
    if current is not None:
        details["retired_fingerprint"] = current.fingerprint
    await record(
        db,
        action=action,
        actor=actor,
        organisation_id=organisation_id,
        target_type="organisation",
        target_id=organisation_id,
        details=details,
    )
    return key


# ---- recordings ------------------------------------------------------------------------------


async def start_recording(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    support_session_id: uuid.UUID,
    auditor_key: AuditorKey,
    retention: timedelta | None,
    actor: Actor,
) -> Recording:
    """The recording of a session that will be recorded; the relay writes its file."""
    now = utcnow()
    recording = Recording(
        organisation_id=organisation_id,
        support_session_id=support_session_id,
        auditor_key_id=auditor_key.id,
        file_name=file_name(str(support_session_id)),
        created_at=now,
        expires_at=now + retention if retention is not None else None,
    )
    db.add(recording)
    await db.flush()
    await record(
        db,
        action=AuditAction.RECORDING_STARTED,
        actor=actor,
        organisation_id=organisation_id,
        target_type="support_session",
        target_id=support_session_id,
        details={
            "recording_id": str(recording.id),
            "auditor_key_fingerprint": auditor_key.fingerprint,
            "expires_at": recording.expires_at.isoformat() if recording.expires_at else None,
        },
    )
    return recording


async def get_recording(db: AsyncSession, *, support_session_id: uuid.UUID) -> Recording | None:
    rows = await db.execute(
        select(Recording).where(Recording.support_session_id == support_session_id)
    )
    return rows.scalar_one_or_none()


async def get_recording_or_raise(db: AsyncSession, *, support_session_id: uuid.UUID) -> Recording:
    recording = await get_recording(db, support_session_id=support_session_id)
    if recording is None:
        raise RecordingNotFound(support_session_id=str(support_session_id))
    if recording.deleted_at is not None:
        raise RecordingDeleted(
            support_session_id=str(support_session_id), deleted_at=recording.deleted_at.isoformat()
        )
    return recording


async def store_recording_key(
    db: AsyncSession,
    *,
    support_session_id: uuid.UUID,
    epoch: str,
    sealed_keys: str,
    actor: Actor,
) -> RecordingKey:
    """Keep the agent's sealed keys of one epoch. Refused for a session that is not recorded
    (the agent sends them only when its grant says so; anything else is a confused peer)."""
    recording = await get_recording(db, support_session_id=support_session_id)
    if recording is None or recording.deleted_at is not None:
        raise RecordingKeyRefused(support_session_id=str(support_session_id))
    existing = (
        await db.execute(
            select(RecordingKey).where(
                RecordingKey.recording_id == recording.id, RecordingKey.epoch == epoch
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        # A resent key for the same epoch replaces nothing: the first one is what was audited.
        return existing
    row = RecordingKey(
        recording_id=recording.id, epoch=epoch, sealed_keys=sealed_keys, received_at=utcnow()
    )
    db.add(row)
    await db.flush()
    await record(
        db,
        action=AuditAction.RECORDING_KEY_STORED,
        actor=actor,
        organisation_id=recording.organisation_id,
        target_type="support_session",
        target_id=support_session_id,
        details={"recording_id": str(recording.id), "epoch": epoch},
    )
    return row


async def list_recording_keys(db: AsyncSession, *, recording: Recording) -> dict[str, str]:
    """Epoch (base64url transcript hash) -> sealed keys (base64url)."""
    rows = await db.execute(select(RecordingKey).where(RecordingKey.recording_id == recording.id))
    return {row.epoch: row.sealed_keys for row in rows.scalars()}


async def get_auditor_key_of(db: AsyncSession, *, recording: Recording) -> AuditorKey:
    key = await db.get(AuditorKey, recording.auditor_key_id)
    assert key is not None  # noqa: S101 -- a foreign key guarantees it
    return key


async def record_export(
    db: AsyncSession, *, recording: Recording, actor: Actor, destination: str
) -> None:
    """Audit an export before it happens: the event exists even if opening the file fails."""
    await record(
        db,
        action=AuditAction.RECORDING_EXPORTED,
        actor=actor,
        organisation_id=recording.organisation_id,
        target_type="support_session",
        target_id=recording.support_session_id,
        details={"recording_id": str(recording.id), "destination": destination},
    )


async def expire_recordings(db: AsyncSession, *, now: datetime, actor: Actor) -> list[Recording]:
    """Mark every recording past its retention deleted and drop its sealed keys (the row stays,
    so the report can say a recording existed and when it was deleted). Audited each. The
    caller removes the files after the commit (``remove_files``): a rolled-back purge must not
    have destroyed anything."""
    rows = await db.execute(
        select(Recording)
        .where(Recording.expires_at <= now, Recording.deleted_at.is_(None))
        .with_for_update()
    )
    deleted = list(rows.scalars())
    for recording in deleted:
        keys = await db.execute(
            select(RecordingKey).where(RecordingKey.recording_id == recording.id)
        )
        for key in keys.scalars():
            await db.delete(key)
        recording.deleted_at = now
        await record(
            db,
            action=AuditAction.RECORDING_DELETED,
            actor=actor,
            organisation_id=recording.organisation_id,
            target_type="support_session",
            target_id=recording.support_session_id,
            details={
                "recording_id": str(recording.id),
                "reason": "retention",
                "expired_at": recording.expires_at.isoformat() if recording.expires_at else None,
            },
        )
    return deleted


def remove_files(directory: Path, recordings: list[Recording]) -> int:
    """Delete the files of recordings already marked deleted; how many existed."""
    removed = 0
    for recording in recordings:
        path = recording_path(directory, recording)
        if path.exists():
            path.unlink()
            removed += 1
    return removed


async def auditor_key_for_grant(
    db: AsyncSession, *, organisation_id: uuid.UUID, support_session_id: uuid.UUID
) -> X25519PublicKey | None:
    """The key a grant names: a recorded session's own (it survives a rotation mid-session, so
    every epoch of one recording opens with one key), else the organisation's current one."""
    recording = await get_recording(db, support_session_id=support_session_id)
    if recording is not None:
        key = await get_auditor_key_of(db, recording=recording)
        return decode_x25519_public_key(key.public_key)
    return await get_auditor_public_key(db, organisation_id=organisation_id)
