"""Request and response bodies of the device routes."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from auxilio.server.validation import Name, ShortName


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


class DevicePage(BaseModel):
    items: list[DeviceOut]
    total: int
    limit: int
    offset: int
