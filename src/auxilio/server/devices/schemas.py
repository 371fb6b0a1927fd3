"""Request and response bodies of the device routes."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from auxilio.protocol.types import SignedDocument
from auxilio.server.validation import INT32_MAX, Name, QueryText, ShortName


class Platform(StrEnum):
    WINDOWS = "windows"
    MACOS = "macos"
    LINUX = "linux"
    OTHER = "other"


class DeviceCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    platform: Platform
    device_group: ShortName | None = None


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    platform: Platform
    device_group: str | None
    fingerprint: str | None
    created_at: AwareDatetime
    last_seen_at: AwareDatetime | None
    enrolled_at: AwareDatetime | None = None
    agent_version: str | None = None
    revoked_at: AwareDatetime | None = None
    # From the bus presence (devices/channel.py) where the route asked for it; None otherwise.
    online: bool | None = None


class DevicePage(BaseModel):
    items: list[DeviceOut]
    total: int
    limit: int
    offset: int


# ---- enrolment -------------------------------------------------------------------------------


class EnrolmentTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Checked by the service (enrolment.group_invalid), so that a blank group has its own code.
    device_group: Annotated[str, StringConstraints(max_length=200)]
    owner_id: uuid.UUID
    label: QueryText = ""
    expires_in_hours: Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)] = 72


class EnrolmentTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    label: str
    device_group: str
    owner_id: uuid.UUID
    created_by: uuid.UUID
    created_at: AwareDatetime
    expires_at: AwareDatetime
    used_at: AwareDatetime | None
    device_id: uuid.UUID | None
    revoked_at: AwareDatetime | None
    state: str = "live"  # live | used | revoked | expired


class EnrolmentTokenCreated(EnrolmentTokenOut):
    token: str  # shown this once; the server keeps only its SHA-256


class EnrolmentTokenList(BaseModel):
    items: list[EnrolmentTokenOut]


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    device_public_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    platform: QueryText
    name: Name
    agent_version: ShortName
    proof: SignedDocument


class EnrolOut(BaseModel):
    device_id: uuid.UUID
    organisation_id: uuid.UUID
    organisation_name: str
    device_group: str
    owner_name: str
    server_public_key: str
    server_fingerprint: str
    enrolled_at: AwareDatetime


class DeviceRevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Checked by the service (device.reason_invalid); the bound keeps the body small.
    reason: Annotated[str, StringConstraints(max_length=20_000)]
