"""The questions the engine answers (requests) and the facts it needs (context).

Pydantic models so the server and the CLI can build them from JSON; ``kind`` picks the request
type.  The engine never reads the clock: ``EvaluationContext.now`` is the time of the question.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
)

from auxilio.policy.durations import MAX_DURATION, format_duration, parse_duration
from auxilio.policy.roles import Permission, Role
from auxilio.policy.schema import Platform, SessionMode


def _lenient_duration(value: Any) -> Any:
    # JSON callers may send "30m" like the policy does, or seconds / ISO 8601 as pydantic reads.
    if isinstance(value, str) and value and value[-1] in "wdhms" and not value.startswith("P"):
        return parse_duration(value)
    return value


def _bounded_duration(value: dt.timedelta) -> dt.timedelta:
    if abs(value) > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return value


# The times a request may name: far enough inside datetime's own range (years 1 to 9999) that
# adding any duration a policy or a request can hold never overflows (a 500 from /explain).
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


def _bounded_time(value: dt.datetime) -> dt.datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must lie between 1970 and 3000")
    return value


RequestDuration = Annotated[
    dt.timedelta, BeforeValidator(_lenient_duration), AfterValidator(_bounded_duration)
]
RequestTime = Annotated[AwareDatetime, AfterValidator(_bounded_time)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StartSupportSession(_Request):
    kind: Literal["support_session.start"] = "support_session.start"
    mode: SessionMode
    technician_role: Role
    mfa_verified: bool = False
    trainings: dict[str, RequestTime] = {}  # training id -> completed at
    # training id -> when its latest record's own validity ended (none current any more)
    trainings_expired: dict[str, RequestTime] = {}
    concurrent_sessions: int = Field(default=0, ge=0)  # sessions the technician already runs
    emergency: bool = False  # the technician declares this session an emergency
    approval_present: bool = False  # an approval was already recorded for this request
    device_group: str | None = None
    ticket_id: str | None = None
    # Whose the ticket is, seen from the technician: theirs, another's, or nobody's yet.
    ticket_assignee: Literal["self", "other", "nobody"] | None = None
    owner_pre_authorised_at: RequestTime | None = None


class UseCapability(_Request):
    kind: Literal["capability.use"] = "capability.use"
    capability: str  # "terminal", "file_transfer", ... or "external_tools.rdp"
    technician_role: Role
    mode: SessionMode = SessionMode.ATTENDED
    platform: Platform | None = None
    path: str | None = None
    direction: Literal["upload", "download"] | None = None
    size: int | None = Field(default=None, ge=0)
    runbook_id: str | None = None
    terminal_shell: str | None = None  # named so linters do not take it for subprocess(shell=)
    ticket_id: str | None = None
    reason: str = ""  # why a personal-data zone must be touched, shown in the consent prompt


class UseExternalTool(_Request):
    kind: Literal["external_tool.use"] = "external_tool.use"
    tool: str
    technician_role: Role
    mode: SessionMode = SessionMode.ATTENDED
    ticket_id: str | None = None


class ExtendSession(_Request):
    kind: Literal["session.extend"] = "session.extend"
    requested: RequestDuration
    current_end_at: RequestTime
    reason: str = ""
    approver_role: Role | None = None
    extended_so_far: RequestDuration = dt.timedelta(0)
    extensions_so_far: int = Field(default=0, ge=0)


class AccessFile(_Request):
    kind: Literal["file.access"] = "file.access"
    platform: Platform
    path: str
    reason: str = ""


class DeclareEmergency(_Request):
    kind: Literal["emergency.declare"] = "emergency.declare"
    role: Role


class CheckPermission(_Request):
    kind: Literal["role.permission"] = "role.permission"
    role: Role
    permission: Permission


Request = Annotated[
    StartSupportSession
    | UseCapability
    | UseExternalTool
    | ExtendSession
    | AccessFile
    | DeclareEmergency
    | CheckPermission,
    Field(discriminator="kind"),
]
_REQUEST = TypeAdapter(Request)


def parse_request(data: Any) -> Request:
    """A request from decoded JSON; raises ``pydantic.ValidationError`` on bad input."""
    return _REQUEST.validate_python(data)


class EvaluationContext(BaseModel):
    """Facts about the moment of the question."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    now: RequestTime
    # Subjects the user has consented to and that consent is still live: "session",
    # capability names such as "terminal", and zones as "zone:documents".
    consented: frozenset[str] = frozenset()
    # Set when someone other than the user pre-authorised (see consent.pre_authorise_roles).
    pre_authorised_by: Role | None = None
    emergency_active: bool = False
