"""``GET /api/v1/recordings/{support_session_id}/sealed``: a recording as the server holds it,
for the supervisor page's player to open with the auditor key in the browser.

Only callers who read the audit (auditors, administrators) get it, only for their own
organisation. Handing it out is audited as an export (``recording:recording:exported``,
destination ``web player``), committed before the file is read, as the command line does: the
event exists even when the file then turns out damaged.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.recordings import service
from auxilio.server.recordings.errors import RecordingFileMissing, RecordingNotFound
from auxilio.server.recordings.playback import PLAYED_CHANNELS, Playback, read_playback
from auxilio.server.recordings.schemas import SealedRecordingOut, SealedRecordOut

router = APIRouter(prefix="/recordings", tags=["recordings"])

ReadRecordings = Annotated[Identity, require(Permission.AUDIT_READ)]
WEB_PLAYER = "web player"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _read(path: Path, support_session_id: str) -> Playback:
    with path.open("rb") as handle:
        return read_playback(handle, support_session_id=support_session_id)


@router.get("/{support_session_id}/sealed", response_model=SealedRecordingOut)
async def get_sealed_recording(
    support_session_id: uuid.UUID, caller: ReadRecordings, db: DbSession, request: Request
) -> SealedRecordingOut:
    recording = await service.get_recording_or_raise(db, support_session_id=support_session_id)
    if recording.organisation_id != caller.user.organisation_id:
        # Another organisation's recording is not there for this caller (no oracle).
        raise RecordingNotFound(support_session_id=str(support_session_id))
    sealed_to = await service.get_auditor_key_of(db, recording=recording)
    sealed = await service.list_recording_keys(db, recording=recording)
    await service.record_export(db, recording=recording, actor=caller.actor, destination=WEB_PLAYER)
    await db.commit()
    directory = service.recordings_dir(request.app.state.settings)
    path = service.recording_path(directory, recording)
    if not path.is_file():
        raise RecordingFileMissing(support_session_id=str(support_session_id))
    playback = await asyncio.to_thread(_read, path, str(support_session_id))
    started = playback.header.started_at
    return SealedRecordingOut(
        support_session_id=recording.support_session_id,
        recording_id=recording.id,
        started_at=started,
        started_at_us=(started - _EPOCH) // timedelta(microseconds=1),
        auditor_key_fingerprint=sealed_to.fingerprint,
        auditor_public_key=sealed_to.public_key,
        channels=sorted(int(c) for c in PLAYED_CHANNELS),
        sealed_keys=sealed,
        records=[SealedRecordOut.model_validate(r.as_json()) for r in playback.records],
    )
