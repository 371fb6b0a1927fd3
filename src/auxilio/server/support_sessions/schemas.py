"""Request and response bodies of the support-session routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from auxilio.protocol.report import SessionReport
from auxilio.protocol.types import Capability, Key32
from auxilio.server.validation import LongText


class SupportSessionCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: uuid.UUID
    mode: Literal["attended", "chat_only", "unattended"]
    # Unattended: the enrolled device of the ticket's requester (docs/unattended.md).
    device_id: uuid.UUID | None = None
    capabilities: list[Capability] = Field(min_length=1, max_length=7)
    technician_e2e_key: Key32
    # Ask for a recording where the policy leaves it optional (sessions.recording: optional).
    record: bool = False
    # What exactly is asked for, so that the policy judges the request and not what it would
    # approve anyway: the shell of a terminal (absent: the device's login shell, which must then
    # be one the policy approves), the direction of file transfer, and the runbooks by id.
    terminal_shell: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    files_direction: Literal["upload", "download", "both"] | None = None
    runbooks: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]] = (
        Field(default_factory=list, max_length=32)
    )

    @field_validator("capabilities")
    @classmethod
    def _unique(cls, value: list[Capability]) -> list[Capability]:
        if len(set(value)) != len(value):
            raise ValueError("a capability appears twice")
        return value


class SupportSessionCreatedOut(BaseModel):
    id: uuid.UUID
    state: str
    join_code: str | None  # none for an unattended session: the server offers it to the device
    join_code_expires_at: AwareDatetime | None
    device_id: uuid.UUID | None = None
    pre_authorisation_id: uuid.UUID | None = None
    max_duration_seconds: int
    policy_version: str | None
    recorded: bool  # true exactly when the relay will record it (the grant says the same)


class SignedGrantOut(BaseModel):
    body: str
    signature: str


class SupportSessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_ref: str
    requester_id: uuid.UUID
    technician_id: uuid.UUID
    device_id: uuid.UUID | None
    pre_authorisation_id: uuid.UUID | None = None
    mode: str
    state: str
    requested_capabilities: list[str]
    granted_capabilities: list[str]
    policy_version: str | None
    decision_rule: str | None
    max_duration_seconds: int
    warn_before_seconds: int
    idle_timeout_seconds: int | None
    recorded: bool
    not_after: AwareDatetime | None
    created_at: AwareDatetime
    offered_at: AwareDatetime | None
    activated_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    ended_by: str | None
    end_reason: str | None
    end_detail: str | None
    summary: str | None
    summary_at: AwareDatetime | None
    # The server-signed grant, for the session's technician only: the client checks it against
    # the pinned server key before it trusts the device key it names (E2E handshake).
    grant: SignedGrantOut | None = None


class SupportSessionPage(BaseModel):
    items: list[SupportSessionOut]
    total: int
    limit: int
    offset: int


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(ge=1, le=24 * 60)
    reason: Reason


class ExtensionOut(BaseModel):
    id: uuid.UUID
    support_session_id: uuid.UUID
    minutes: float
    reason: str
    state: str
    decision_rule: str | None
    decided_at: datetime | None
    new_not_after: AwareDatetime | None = None


class SummaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: Annotated[LongText, StringConstraints(min_length=1)]

    @field_validator("summary")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Blank is empty: a summary the person is shown must say something.
        if not value.strip():
            raise ValueError("the summary is empty")
        return value.strip()


class ReceiptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    support_session_id: uuid.UUID
    device_id: uuid.UUID
    body: str
    signature: str
    decisions: dict[str, str]
    prompt_sha256: str
    decided_at: AwareDatetime
    received_at: AwareDatetime


class ReportOut(SessionReport):
    """The one session report (``protocol.report.SessionReport``, the same the agent is sent),
    with the activity list: kinds, counts and times; details sealed to the auditor key."""

    activities: list[dict[str, Any]]
    details: str  # how activity details are kept (sealed to the auditor key)


class ServerKeyOut(BaseModel):
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str  # unpadded base64url of the raw 32 bytes, as in grants
    public_key_pem: str
    fingerprint: str
