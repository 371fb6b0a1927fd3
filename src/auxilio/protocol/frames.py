"""Control messages: the JSON text frames of the ``/ws/agent`` and ``/ws/technician`` endpoints.

Every message is one JSON object with a dotted lowercase ``type`` and a sender-chosen ``id``
(echoed as ``ref`` by an ``error`` that answers it). One pydantic class per type; ``ControlMessage``
is their discriminated union and ``parse_message`` is the single way in from the network.
Session content never appears here: it travels end-to-end encrypted in binary frames (see
``binary.py``). The server can read these messages; they carry only metadata and signed documents.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import (
    Base64Url,
    Capability,
    Identifier,
    Key32,
    Sha256Hex,
    ShortText,
    Signature64,
    SignedDocument,
    UtcDatetime,
    WireModel,
)

# Large enough for a grant with many capabilities plus a long legal text, small enough that a
# hostile peer cannot make the server buffer megabytes of JSON.
MAX_CONTROL_MESSAGE_BYTES = 128 * 1024

MessageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LongText = Annotated[str, StringConstraints(max_length=16 * 1024)]


class Party(StrEnum):
    """Who did something, as the other peers are told."""

    END_USER = "end_user"
    TECHNICIAN = "technician"
    SUPERVISOR = "supervisor"
    SERVER = "server"
    AGENT = "agent"


class EndReason(StrEnum):
    USER_ENDED = "user_ended"
    TECHNICIAN_ENDED = "technician_ended"
    SUPERVISOR_ENDED = "supervisor_ended"
    TIME_LIMIT = "time_limit"
    CONSENT_REFUSED = "consent_refused"
    CONSENT_TIMED_OUT = "consent_timed_out"
    POLICY = "policy"
    EMERGENCY = "emergency"
    CONNECTION_LOST = "connection_lost"
    PROTOCOL_ERROR = "protocol_error"
    # The technician's access ended mid-session: token revoked, user deactivated, role changed,
    # or a training the active policy requires removed or expired (detail names which).
    ACCESS_REVOKED = "access_revoked"
    # The technician's connection dropped and they did not come back within the grace period.
    TECHNICIAN_LOST = "technician_lost"
    # Unattended: the owner revoked the pre-authorisation the session relied on, or its window
    # closed; or the device itself was revoked by the organisation.
    PRE_AUTHORISATION_REVOKED = "pre_authorisation_revoked"
    PRE_AUTHORISATION_ENDED = "pre_authorisation_ended"
    DEVICE_REVOKED = "device_revoked"


class ActivityKind(StrEnum):
    COMMAND_RUN = "command_run"
    FILE_LISTED = "file_listed"
    FILE_READ = "file_read"
    FILE_WRITTEN = "file_written"
    FILE_DELETED = "file_deleted"
    SCREEN_VIEWED = "screen_viewed"
    INPUT_SENT = "input_sent"
    # The technician's text put on the person's clipboard / the person's clipboard read (size:
    # bytes of UTF-8, sha256 of them; never the text).
    CLIPBOARD_SET = "clipboard_set"
    CLIPBOARD_READ = "clipboard_read"
    DIAGNOSTICS_COLLECTED = "diagnostics_collected"
    RUNBOOK_RUN = "runbook_run"
    TERMINAL_OPENED = "terminal_opened"
    TERMINAL_CLOSED = "terminal_closed"
    # The first use of a capability in the session (chat sent or read, a terminal typed in):
    # what "Capabilities used" in the one report counts.
    CAPABILITY_USED = "capability_used"
    # A personal-data zone: the person allowed or refused the technician's entering it, or the
    # policy denied it outright (``zone`` names it; the path is in the sealed details).
    ZONE_ALLOWED = "zone_allowed"
    ZONE_REFUSED = "zone_refused"
    ZONE_DENIED = "zone_denied"
    DIAGNOSTICS_WITHHELD = "diagnostics_withheld"
    RUNBOOK_REFUSED = "runbook_refused"


class ActivitySource(StrEnum):
    """How the agent observed an activity: what the shell ran (shell integration) or what was
    typed (the keystroke fallback, which may differ from what ran)."""

    SHELL_INTEGRATION = "shell_integration"
    KEYSTROKES = "keystrokes"


# A sealed value (crypto.sealed) of up to ~8 KiB of details, as unpadded base64url.
SealedText = Annotated[Base64Url, StringConstraints(min_length=1, max_length=12 * 1024)]


class _Message(WireModel):
    id: MessageId


# -- connection set-up ------------------------------------------------------------------------


class ServerHello(_Message):
    """Server -> agent, first message: the agreed version and a challenge for the device key."""

    type: Literal["server.hello"] = "server.hello"
    protocol_version: int = Field(ge=1)
    server_fingerprint: ShortText
    challenge: Annotated[Base64Url, StringConstraints(min_length=22, max_length=128)]
    server_time: UtcDatetime


# Everything an agent of this version can deliver at best (on a device with all it needs);
# agent/capability_discovery.py announces the part of it that this device can. A request for
# any other capability is refused before anyone is asked (``capability_unavailable``).
AGENT_CAPABILITIES: frozenset[Capability] = frozenset({
    Capability.CHAT, Capability.TERMINAL, Capability.FILES, Capability.DIAGNOSTICS,
    Capability.RUNBOOKS, Capability.SCREEN, Capability.INPUT, Capability.CLIPBOARD,
})  # fmt: skip


class AgentHello(_Message):
    type: Literal["agent.hello"] = "agent.hello"
    device_id: Identifier | None = None  # None before enrolment (an attended one-off join)
    device_public_key: Key32
    agent_version: ShortText
    platform: ShortText
    protocol_version: int = Field(ge=1)
    min_protocol_version: int = Field(ge=1)
    # What this agent can deliver on this device (agent/capability_discovery.py); the server
    # offers nothing else. An agent that announces nothing is taken to deliver chat only.
    capabilities: tuple[Capability, ...] = Field(default=(Capability.CHAT,), max_length=16)


class AgentAuth(_Message):
    """Agent -> server: proof of the device key, a signature over the server's challenge."""

    type: Literal["agent.auth"] = "agent.auth"
    signature: Signature64


class AgentHeartbeat(_Message):
    type: Literal["agent.heartbeat"] = "agent.heartbeat"
    sent_at: UtcDatetime


class TechAttach(_Message):
    type: Literal["tech.attach"] = "tech.attach"
    support_session_id: Identifier
    token: Annotated[str, StringConstraints(min_length=16, max_length=512)]


# -- consent ----------------------------------------------------------------------------------


class SessionJoin(_Message):
    type: Literal["session.join"] = "session.join"
    join_code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{4,32}$")]


class SessionOffer(_Message):
    """Server -> agent: the signed grant, and nothing else. What the person is shown (the
    consent terms) is inside the grant's signature; an unsigned field here would be one a proxy
    could rewrite."""

    type: Literal["session.offer"] = "session.offer"
    support_session_id: Identifier
    grant: SignedDocument


class ConsentDecisionMessage(_Message):
    type: Literal["consent.decision"] = "consent.decision"
    support_session_id: Identifier
    receipt: SignedDocument


# -- end-to-end key agreement (relayed unchanged by the server) -------------------------------


class E2EHello(_Message):
    """Agent -> technician: the agent's ephemeral X25519 key, signed by the device key."""

    type: Literal["e2e.hello"] = "e2e.hello"
    support_session_id: Identifier
    device_id: Identifier
    agent_ephemeral_key: Key32
    technician_ephemeral_key: Key32
    signature: Signature64


class E2EAccept(_Message):
    """Technician -> agent: the ephemeral key named in the grant and the technician's
    key-confirmation frame (base64url of a sealed binary frame)."""

    type: Literal["e2e.accept"] = "e2e.accept"
    support_session_id: Identifier
    technician_ephemeral_key: Key32
    confirmation: Annotated[Base64Url, StringConstraints(max_length=256)]


class E2EConfirm(_Message):
    """Agent -> technician: the agent's key-confirmation frame."""

    type: Literal["e2e.confirm"] = "e2e.confirm"
    support_session_id: Identifier
    confirmation: Annotated[Base64Url, StringConstraints(max_length=256)]


# -- an active support session ----------------------------------------------------------------


class SessionActivity(_Message):
    """Agent -> server: what was done, for the audit. The kind, capability, time, source and
    count are readable by the server; the details (a command line, a path) travel only sealed
    to the organisation's auditor key (``crypto.sealed``, label ``activity``, context the
    support session id), or not at all when the grant names no auditor key. Never file content
    or terminal output."""

    type: Literal["session.activity"] = "session.activity"
    support_session_id: Identifier
    at: UtcDatetime
    capability: Capability
    kind: ActivityKind
    source: ActivitySource | None = None
    count: int = Field(default=1, ge=0, le=1_000_000)
    sealed_details: SealedText | None = None
    # A file read or written: its size and the SHA-256 of its content (never the content).
    size: int | None = Field(default=None, ge=0, le=2**53)
    sha256: Sha256Hex | None = None
    zone: ShortText | None = None  # the personal-data zone of a zone_* activity
    runbook_id: Identifier | None = None  # runbook_run / runbook_refused
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    # 1, 2, 3... per session on this device: the server audits a gap (a report lost or
    # dropped on the way) as support_session:activity:gap.
    seq: int | None = Field(default=None, ge=1, le=10**9)


class RecordingKey(_Message):
    """Agent -> server, in a recorded session: the E2E keys of one handshake epoch sealed to the
    auditor key (label ``recording-key``, context ``support_session_id || epoch``). ``epoch`` is
    the E2E transcript hash (``crypto.e2e.transcript_hash``), which the relay computes from the
    ``e2e.hello`` it forwards, so it can file the keys next to the frames they open."""

    type: Literal["recording.key"] = "recording.key"
    support_session_id: Identifier
    epoch: Annotated[Base64Url, StringConstraints(min_length=43, max_length=43)]
    sealed_keys: Annotated[Base64Url, StringConstraints(min_length=1, max_length=1024)]


class SessionReportMismatch(_Message):
    """Agent -> server, after the end: the one report the server signed disagrees with the
    device's own log; each line names a field and both values. Audited as
    support_session:report:mismatch, so a report the server could not have built from what the
    device sent (a dropped or forged activity) is on record, not only on the person's screen."""

    type: Literal["session.report.mismatch"] = "session.report.mismatch"
    support_session_id: Identifier
    differences: tuple[Annotated[str, StringConstraints(min_length=1, max_length=500)], ...] = (
        Field(min_length=1, max_length=32)
    )


class SessionWarning(_Message):
    type: Literal["session.warning"] = "session.warning"
    support_session_id: Identifier
    ends_at: UtcDatetime
    remaining_seconds: int = Field(ge=0)


class SessionExtendRequest(_Message):
    type: Literal["session.extend.request"] = "session.extend.request"
    support_session_id: Identifier
    requested_seconds: int = Field(gt=0, le=24 * 3600)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class SessionExtendDecision(_Message):
    """Server -> agent and technician. An approved extension carries a new grant, because the
    agent enforces the signed ``not_after`` and nothing else."""

    type: Literal["session.extend.decision"] = "session.extend.decision"
    support_session_id: Identifier
    approved: bool
    decided_by: Party
    new_not_after: UtcDatetime | None = None
    grant: SignedDocument | None = None
    reason: LongText = ""


class SessionExtendAnswer(_Message):
    """Agent -> server: the person's answer to an extension, as a device-signed extension
    receipt. Until it says ``granted`` the session keeps its old end, on both sides."""

    type: Literal["session.extend.answer"] = "session.extend.answer"
    support_session_id: Identifier
    receipt: SignedDocument


class CapabilityRevoke(_Message):
    type: Literal["capability.revoke"] = "capability.revoke"
    support_session_id: Identifier
    capability: Capability
    revoked_by: Party
    reason: LongText = ""


class SessionEnd(_Message):
    type: Literal["session.end"] = "session.end"
    support_session_id: Identifier
    ended_by: Party
    reason: EndReason
    detail: LongText = ""


class SessionReportMessage(_Message):
    """Server -> agent, after the end: the one session report (``protocol.report``), signed by
    the server (kind ``auxilio.session_report.v1``) so that nothing on the way can change what
    the person is shown; sent again when the technician's summary arrives."""

    type: Literal["session.report"] = "session.report"
    support_session_id: Identifier
    report: SignedDocument


class SessionSurveyMessage(_Message):
    """Server -> agent, after the end, before the report: the person's survey invite
    (``protocol.survey.SurveyInvite``), signed by the server (kind ``auxilio.survey_invite.v1``);
    sent only when the policy's survey is due at once (delay 0) and sampled this session in."""

    type: Literal["session.survey"] = "session.survey"
    support_session_id: Identifier
    invite: SignedDocument


class SessionStateMessage(_Message):
    """Server -> technician (and agent): the support session moved to ``state``."""

    type: Literal["session.state"] = "session.state"
    support_session_id: Identifier
    state: SupportSessionState
    changed_at: UtcDatetime
    not_after: UtcDatetime | None = None
    granted: tuple[Capability, ...] = ()
    reason: LongText = ""
    # With reason ``technician_lost`` or ``agent_lost``: how long the server waits for the
    # missing peer before it ends the session.
    wait_seconds: int | None = Field(default=None, ge=0)


# -- enrolled devices (docs/unattended.md) ---------------------------------------------------


class DeviceReady(_Message):
    """Server -> an enrolled agent, after ``agent.auth``: the device is known and not revoked.
    ``pre_authorisations`` are the ids of the live ones the server holds for it (the agent sends
    again what is missing and revokes what it revoked while offline); ``emergency_active`` tells
    it that unattended access is locked right now."""

    type: Literal["device.ready"] = "device.ready"
    device_id: Identifier
    emergency_active: bool = False
    pre_authorisations: tuple[Identifier, ...] = Field(default=(), max_length=64)
    server_time: UtcDatetime


class PreAuthPublish(_Message):
    """Agent -> server: a pre-authorisation the owner signed on the device (kind
    ``auxilio.pre_authorisation.v1``)."""

    type: Literal["preauth.publish"] = "preauth.publish"
    document: SignedDocument


class PreAuthRevoke(_Message):
    """Agent -> server: the owner's signed revocation (kind
    ``auxilio.pre_authorisation_revocation.v1``); it ends a live unattended session on it."""

    type: Literal["preauth.revoke"] = "preauth.revoke"
    document: SignedDocument


class PreAuthAck(_Message):
    """Server -> agent: the pre-authorisation is stored (or its revocation recorded)."""

    type: Literal["preauth.ack"] = "preauth.ack"
    pre_authorisation_id: Identifier
    state: Literal["stored", "revoked"]


class AutomationRun(_Message):
    """Server -> an enrolled agent: a server-signed order (kind ``auxilio.automation_order.v1``)
    to run a runbook or collect diagnostics with no technician attached, inside a
    pre-authorisation that allows automated runs."""

    type: Literal["automation.run"] = "automation.run"
    order: SignedDocument


class AutomationResult(_Message):
    """Agent -> server: the device-signed result (kind ``auxilio.automation_result.v1``), or its
    signed refusal, of one order."""

    type: Literal["automation.result"] = "automation.result"
    run_id: Identifier
    result: SignedDocument


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=100)]
    message: LongText
    ref: MessageId | None = None


ControlMessage = Annotated[
    ServerHello
    | AgentHello
    | AgentAuth
    | AgentHeartbeat
    | TechAttach
    | SessionJoin
    | SessionOffer
    | ConsentDecisionMessage
    | E2EHello
    | E2EAccept
    | E2EConfirm
    | SessionActivity
    | RecordingKey
    | SessionReportMismatch
    | SessionWarning
    | SessionExtendRequest
    | SessionExtendDecision
    | SessionExtendAnswer
    | CapabilityRevoke
    | SessionEnd
    | SessionReportMessage
    | SessionSurveyMessage
    | SessionStateMessage
    | DeviceReady
    | PreAuthPublish
    | PreAuthRevoke
    | PreAuthAck
    | AutomationRun
    | AutomationResult
    | ErrorMessage,
    Field(discriminator="type"),
]

CONTROL_MESSAGE_ADAPTER: TypeAdapter[ControlMessage] = TypeAdapter(ControlMessage)

MESSAGE_TYPES: dict[str, type[_Message]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        ServerHello, AgentHello, AgentAuth, AgentHeartbeat, TechAttach, SessionJoin,
        SessionOffer, ConsentDecisionMessage, E2EHello, E2EAccept, E2EConfirm, SessionActivity,
        RecordingKey, SessionReportMismatch, SessionWarning, SessionExtendRequest,
        SessionExtendDecision, SessionExtendAnswer,
        CapabilityRevoke, SessionReportMessage, SessionSurveyMessage,
        SessionEnd, SessionStateMessage, DeviceReady, PreAuthPublish, PreAuthRevoke,
        PreAuthAck, AutomationRun, AutomationResult, ErrorMessage,
    )
}  # fmt: skip


def parse_message(data: str | bytes) -> ControlMessage:
    """Parse one control frame, raising ``ProtocolError`` with a stable code on any bad input."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CONTROL_MESSAGE_BYTES:
        raise ProtocolError(
            ProtocolErrorCode.TOO_LARGE,
            f"control message is {len(raw)} bytes, the limit is {MAX_CONTROL_MESSAGE_BYTES}",
        )
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "a control message is a JSON object")
    message_type = obj.get("type")
    if not isinstance(message_type, str):
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "missing string field 'type'")
    if message_type not in MESSAGE_TYPES:
        raise ProtocolError(
            ProtocolErrorCode.UNKNOWN_TYPE, f"unknown message type {message_type[:64]!r}"
        )
    try:
        # Strict: a number sent as a string or a bool as 0/1 is a peer bug worth seeing, not
        # something to coerce. The JSON is parsed twice; control messages are small and rare.
        return CONTROL_MESSAGE_ADAPTER.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, _describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    # The union puts the type tag first in the location; the field path is what helps.
    location = ".".join(str(part) for part in first["loc"][1:]) or "(message)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{location}: {first['msg']}{more}"


def encode_message(message: _Message) -> str:
    """Serialise a control message to the JSON text sent on the WebSocket."""
    return message.model_dump_json()
