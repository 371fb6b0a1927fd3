"""Request and response bodies of the policy routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from auxilio.server.validation import LongText


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentIn(Strict):
    document: str = Field(min_length=1, max_length=500_000)


class UploadIn(DocumentIn):
    comment: LongText = ""


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    sha256: str
    comment: str
    author_name: str
    created_at: datetime
    is_active: bool
    activated_at: datetime | None


class VersionDocumentOut(VersionOut):
    document: str


class ActiveOut(BaseModel):
    version_label: str
    version: VersionOut | None
    document: str
    review_by: str | None
    review_overdue: bool


class ValidationOut(BaseModel):
    valid: bool
    errors: list[dict[str, Any]]
    summary: dict[str, Any]


class DiffOut(BaseModel):
    number: int
    diff: str


class ExplainIn(Strict):
    request: dict[str, Any]
    context: dict[str, Any] = Field(default_factory=dict)
    document: str | None = Field(default=None, max_length=500_000)


class SimulateIn(Strict):
    document: str = Field(min_length=1, max_length=500_000)
    since: AwareDatetime


class ChangeOut(BaseModel):
    seq: int
    occurred_at: datetime
    request_kind: str
    was_effect: str
    was_rule: str
    was_version: str | None
    now_effect: str
    now_rule: str
    now_reason: str
    # The reason by its code (docs/policy.md, "Reason codes") and what fills it.
    now_reason_code: str = ""
    now_params: dict[str, Any] = Field(default_factory=dict)


class SimulateOut(BaseModel):
    replayed: int
    unchanged: int
    skipped: int
    changes: list[ChangeOut]


class TemplateOut(BaseModel):
    name: str
    document: str


class PilotIn(Strict):
    device_group: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime | None = None  # now when not given
    ends_at: AwareDatetime | None = None  # open-ended: until stopped


class PilotOut(BaseModel):
    id: uuid.UUID
    version_number: int
    version_label: str
    device_group: str
    starts_at: datetime
    ends_at: datetime | None
    stopped_at: datetime | None
    state: str  # scheduled, running, ended or stopped
    created_at: datetime
