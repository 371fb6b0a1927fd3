"""Response bodies of the recording routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class SealedRecordOut(BaseModel):
    """One record of the file: ``E`` starts an epoch (``body`` = its transcript hash), ``A`` and
    ``T`` are frames agent -> technician and technician -> agent (``body`` = the frame as
    relayed, E2E ciphertext). ``body`` is unpadded base64url."""

    offset: int
    kind: Literal["E", "A", "T"]
    at_us: int
    body: str
    channel: int | None = None


class SealedRecordingOut(BaseModel):
    support_session_id: uuid.UUID
    recording_id: uuid.UUID
    started_at: datetime
    # started_at in microseconds since 1970 (the page's Date has milliseconds only).
    started_at_us: int
    auditor_key_fingerprint: str
    auditor_public_key: str
    channels: list[int]
    # Epoch (base64url transcript hash) -> the agent's sealed box of that epoch's keys.
    sealed_keys: dict[str, str]
    records: list[SealedRecordOut]
