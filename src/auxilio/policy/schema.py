"""The policy document as a validated pydantic model.

One document is one organisation's policy version.  Every model forbids unknown fields so that
a typo (``max_duraton``) is an error instead of a silently ignored rule.  Sequences are tuples so a
loaded policy cannot be changed under the engine's feet.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator
from pydantic_core import PydanticCustomError

from auxilio.policy.roles import Role
from auxilio.policy.types import (
    DaySpec,
    Duration,
    LanguageTag,
    PositiveDuration,
    PosixGlob,
    Scale,
    Size,
    TimeWindow,
    TimezoneName,
    WindowsGlob,
)

SCHEMA_VERSION = 1


class SessionMode(StrEnum):
    ATTENDED = "attended"
    UNATTENDED = "unattended"
    AUTOMATED = "automated"
    CHAT_ONLY = "chat_only"


class ConsentMethod(StrEnum):
    DEVICE_PROMPT = "device_prompt"
    WEB_FORM = "web_form"
    WRITTEN_MESSAGE = "written_message"


class ConsentScope(StrEnum):
    PER_CAPABILITY = "per_capability"
    PER_SESSION = "per_session"


class OnTimeout(StrEnum):
    DENY = "deny"
    ALLOW = "allow"


class TicketAccess(StrEnum):
    """Who may start a support session on a ticket (``sessions.ticket_access``)."""

    ASSIGNEE_AND_SUPERVISORS = "assignee_and_supervisors"
    ASSIGNEE_AND_SENIORS = "assignee_and_seniors"
    ANY_TECHNICIAN = "any_technician"


class OutsideHours(StrEnum):
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"
    EMERGENCY_ONLY = "emergency_only"


class RecordingMode(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    OFF = "off"


class OnZoneAccess(StrEnum):
    DENY = "deny"
    REQUIRE_CONSENT = "require_consent"


class TerminalWithZones(StrEnum):
    """What a terminal means where personal-data zones must be protected: a shell can read any
    file the person can, so it cannot be confined to paths (THREAT_MODEL.md). ``deny`` refuses
    the terminal; ``require_consent`` asks the person for it on its own, naming that risk."""

    DENY = "deny"
    REQUIRE_CONSENT = "require_consent"


class Direction(StrEnum):
    """Seen from the device: ``upload`` puts a file on it, ``download`` takes one from it."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    BOTH = "both"


class Platform(StrEnum):
    WINDOWS = "windows"
    MACOS = "macos"
    LINUX = "linux"


BUILTIN_CAPABILITIES = (
    "chat",
    "terminal",
    "file_transfer",
    "diagnostics",
    "runbooks",
    "screen_view",
    "remote_control",
    "clipboard",
)
EXTERNAL_TOOLS = ("rdp", "ssh", "vnc", "teamviewer", "anydesk", "remotepc")
ExternalToolName = Literal["rdp", "ssh", "vnc", "teamviewer", "anydesk", "remotepc"]
CapabilityName = Literal[
    "chat",
    "terminal",
    "file_transfer",
    "diagnostics",
    "runbooks",
    "screen_view",
    "remote_control",
    "clipboard",
    "external_tools.rdp",
    "external_tools.ssh",
    "external_tools.vnc",
    "external_tools.teamviewer",
    "external_tools.anydesk",
    "external_tools.remotepc",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------- support hours


def _holiday_shorthand(value: Any) -> Any:
    # "- 2025-12-25" is the short form of "- {date: 2025-12-25}".
    return {"date": value} if isinstance(value, dt.date | str) else value


class Holiday(_Model):
    date: dt.date
    name: str = ""


class SupportHours(_Model):
    timezone: TimezoneName
    weekly: dict[DaySpec, tuple[TimeWindow, ...]]
    holidays: tuple[Annotated[Holiday, BeforeValidator(_holiday_shorthand)], ...] = ()
    outside_hours: OutsideHours = OutsideHours.DENY
    applies_to: tuple[SessionMode, ...] = tuple(SessionMode)


# ---------------------------------------------------------------------------------------- consent


class ConsentOverride(_Model):
    required: bool | None = None
    methods: tuple[ConsentMethod, ...] | None = Field(default=None, min_length=1)
    timeout: PositiveDuration | None = None
    on_timeout: OnTimeout | None = None


class ConsentPolicy(_Model):
    required: bool = True
    methods: tuple[ConsentMethod, ...] = Field(default=(ConsentMethod.DEVICE_PROMPT,), min_length=1)
    timeout: PositiveDuration = timedelta(seconds=60)
    on_timeout: OnTimeout = OnTimeout.DENY
    scope: ConsentScope = ConsentScope.PER_CAPABILITY
    pre_authorise_roles: tuple[Role, ...] = ()
    capabilities: dict[CapabilityName, ConsentOverride] = {}


# ----------------------------------------------------------------------------------- capabilities


class CapabilityRule(_Model):
    roles: tuple[Role, ...] = Field(min_length=1)
    consent: Literal["inherit", "required", "not_required"] = "inherit"
    modes: tuple[SessionMode, ...] = (SessionMode.ATTENDED,)
    max_duration: PositiveDuration | None = None


class ChatRule(CapabilityRule):
    modes: tuple[SessionMode, ...] = (SessionMode.ATTENDED, SessionMode.CHAT_ONLY)


class TerminalRule(CapabilityRule):
    shells: tuple[str, ...] = Field(min_length=1)


class FileTransferRule(CapabilityRule):
    direction: Direction
    max_size: Size | None = None


class DiagnosticsRule(CapabilityRule):
    modes: tuple[SessionMode, ...] = (SessionMode.ATTENDED, SessionMode.AUTOMATED)


class RunbooksRule(CapabilityRule):
    """``approved`` lists the runbook ids a session may be granted; ``approver_roles`` may
    approve (sign) a runbook of the catalogue; with ``two_person`` its author cannot approve it;
    ``pre_authorised`` runbooks run without asking the person each time (the session's consent
    to runbooks still applies); ``max_timeout`` bounds any runbook's own time limit."""

    modes: tuple[SessionMode, ...] = (SessionMode.ATTENDED, SessionMode.AUTOMATED)
    approved: tuple[str, ...] = Field(min_length=1)
    approver_roles: tuple[Role, ...] = Field(
        default=(Role.SUPERVISOR, Role.ADMIN), min_length=1
    )
    two_person: bool = False
    pre_authorised: tuple[str, ...] = ()
    max_timeout: PositiveDuration = timedelta(minutes=10)

    @field_validator("pre_authorised", mode="after")
    @classmethod
    def _within_approved(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        approved = set(info.data.get("approved", ()))
        extra = [name for name in value if name not in approved]
        if extra:
            raise PydanticCustomError(
                "policy.pre_authorised_not_approved",
                "pre-authorised runbooks must be approved: {names}",
                {"names": ", ".join(extra)},
            )
        return value


class ExternalToolRule(CapabilityRule):
    ticket_required: bool = True


class Capabilities(_Model):
    chat: ChatRule | None = None
    terminal: TerminalRule | None = None
    file_transfer: FileTransferRule | None = None
    diagnostics: DiagnosticsRule | None = None
    runbooks: RunbooksRule | None = None
    screen_view: CapabilityRule | None = None
    remote_control: CapabilityRule | None = None
    clipboard: CapabilityRule | None = None
    external_tools: dict[ExternalToolName, ExternalToolRule] = {}

    def get(self, name: str) -> CapabilityRule | None:
        """The rule for ``"terminal"`` or ``"external_tools.rdp"``; None when not listed."""
        if name.startswith("external_tools."):
            tools = cast("dict[str, ExternalToolRule]", self.external_tools)
            return tools.get(name.removeprefix("external_tools."))
        if name in BUILTIN_CAPABILITIES:
            rule: CapabilityRule | None = getattr(self, name)
            return rule
        return None

    def listed(self) -> dict[str, CapabilityRule]:
        found = {n: r for n in BUILTIN_CAPABILITIES if (r := getattr(self, n)) is not None}
        found.update({f"external_tools.{n}": r for n, r in self.external_tools.items()})
        return found


# ---------------------------------------------------------------------------- personal data zones


class ZoneDefinition(_Model):
    name: str = Field(min_length=1)
    windows: tuple[WindowsGlob, ...] = ()
    macos: tuple[PosixGlob, ...] = ()
    linux: tuple[PosixGlob, ...] = ()


class PlatformGlobs(_Model):
    windows: tuple[WindowsGlob, ...] = ()
    macos: tuple[PosixGlob, ...] = ()
    linux: tuple[PosixGlob, ...] = ()


class PersonalDataZones(_Model):
    on_access: OnZoneAccess = OnZoneAccess.DENY
    terminal: TerminalWithZones = TerminalWithZones.REQUIRE_CONSENT
    include_defaults: bool = True
    zones: tuple[ZoneDefinition, ...] = ()
    exceptions: PlatformGlobs = PlatformGlobs()


# --------------------------------------------------------------------------------------- sessions


class Extension(_Model):
    max: PositiveDuration
    max_count: int | None = Field(default=None, ge=1)
    reason_required: bool = True
    approver_role: Role | None = None


class Sessions(_Model):
    max_duration: PositiveDuration
    warn_before: Duration = timedelta(minutes=5)
    extension: Extension | None = None
    idle_timeout: PositiveDuration | None = None
    recording: RecordingMode = RecordingMode.OPTIONAL
    notify_user_of_actions: bool = True
    ticket_access: TicketAccess = TicketAccess.ASSIGNEE_AND_SUPERVISORS


class OwnerPreAuthorisation(_Model):
    required: bool = True
    window: PositiveDuration
    scope: tuple[CapabilityName, ...] = Field(min_length=1)


class Unattended(_Model):
    allowed_device_groups: tuple[str, ...] = Field(min_length=1)
    owner_pre_authorisation: OwnerPreAuthorisation | None = None
    ticket_required: bool = True
    approval_required: bool = False


class TrainingRequirement(_Model):
    id: str = Field(min_length=1)
    max_age: PositiveDuration


class Staff(_Model):
    mfa_required: bool = True
    trainings_required: tuple[TrainingRequirement, ...] = ()
    max_concurrent_sessions: int | None = Field(default=None, ge=1)


class Retention(_Model):
    recordings: PositiveDuration | None = None
    chat: PositiveDuration | None = None
    tickets: PositiveDuration | None = None
    audit: PositiveDuration | None = None


class Privacy(_Model):
    retention: Retention = Retention()
    data_residency: str | None = None
    consent_text: dict[LanguageTag, str] = {}


class Survey(_Model):
    enabled: bool = True
    scale: Scale = (1, 5)
    delay: Duration = timedelta(0)
    sampling: float = Field(default=1.0, ge=0.0, le=1.0)


class PostSession(_Model):
    summary_to_user: bool = True
    survey: Survey | None = None


class EmergencyActions(_Model):
    end_all_sessions: bool = True
    lock_unattended: bool = True
    escalate_to: tuple[str, ...] = ()


class Emergency(_Model):
    declare_roles: tuple[Role, ...] = (Role.SUPERVISOR, Role.ADMIN)
    actions: EmergencyActions = EmergencyActions()


# ------------------------------------------------------------------------------------------ policy


class Policy(_Model):
    version: int
    name: str = Field(min_length=1)
    description: str = ""
    review_by: dt.date | None = None
    # Set by the server when it stores a version (e.g. "acme/7"); carried on every Decision.
    version_label: str | None = None
    support_hours: SupportHours | None = None
    consent: ConsentPolicy = ConsentPolicy()
    capabilities: Capabilities
    personal_data_zones: PersonalDataZones = PersonalDataZones()
    sessions: Sessions
    unattended: Unattended | None = None
    staff: Staff = Staff()
    privacy: Privacy = Privacy()
    post_session: PostSession = PostSession()
    emergency: Emergency = Emergency()

    # The precompiled lookup form, built once on first use (see compiled.py).
    _compiled: object = PrivateAttr(default=None)

    @field_validator("version", mode="after")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise PydanticCustomError(
                "policy.unsupported_version",
                "schema version {value} is not supported (this engine reads version {known})",
                {"value": value, "known": SCHEMA_VERSION},
            )
        return value


def review_overdue(policy: Policy, today: dt.date) -> bool:
    """True when the policy's ``review_by`` date has passed (the seed asks for periodic review)."""
    return policy.review_by is not None and today > policy.review_by
