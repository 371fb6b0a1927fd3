"""Field types and small models shared by control messages, grants and receipts.

Binary values (keys, signatures, nonces) travel as unpadded base64url text, the encoding WebCrypto
and JWK use, so the browser client needs no extra codec.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Ids are opaque to the protocol (the server may use UUIDs or integers); the alphabet keeps them
# safe to log and to put in a URL.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
# 32 bytes as unpadded base64url is exactly 43 characters (Ed25519 and X25519 public keys).
Key32 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
# 64 bytes (an Ed25519 signature) is exactly 86 characters.
Signature64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{86}$")]
Base64Url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
UtcDatetime = AwareDatetime


class WireModel(BaseModel):
    """Base of every wire model: immutable, and unknown fields are an error rather than ignored,
    so a typo in a peer's field name is caught instead of silently dropping a limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Capability(StrEnum):
    """What a technician can be allowed to do on a device (DESIGN §3, agent capabilities)."""

    CHAT = "chat"
    TERMINAL = "terminal"
    FILES = "files"
    DIAGNOSTICS = "diagnostics"
    RUNBOOKS = "runbooks"
    SCREEN = "screen"
    INPUT = "input"
    CLIPBOARD = "clipboard"


class ConsentDecision(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    TIMED_OUT = "timed_out"


# What a prompt left unanswered means. Only the policy can make it "granted" (unattended devices);
# the protocol allows both so the receipt records what was actually applied.
TimeoutDefault = Literal["granted", "refused"]

# "download" moves data from the device to the technician, "upload" the other way.
FileDirection = Literal["download", "upload", "both"]


PathPattern = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class ZoneSpec(WireModel):
    """One personal-data zone as the device enforces it: glob patterns for the device's platform
    (``policy.zones.glob_to_regex``: ``**`` spans directories, ``*`` and ``?`` stay in one)."""

    name: ShortText
    patterns: tuple[PathPattern, ...] = Field(min_length=1, max_length=64)


class RunbookPin(WireModel):
    """A runbook the grant allows: the agent runs a signed runbook only if its signed body's
    SHA-256 is pinned here (``crypto.runbooks.runbook_digest``)."""

    id: Identifier
    version: int = Field(ge=1)
    sha256: Sha256Hex
    consent: bool = True  # the person is asked before each run (False: the policy pre-authorises)


class CapabilityLimits(WireModel):
    """Limits that travel with a capability; ``None`` means the capability's own default.

    ``paths`` are the only path prefixes the technician may touch; the agent still applies its
    personal-data zones on top of them. ``zones``, ``zone_exceptions`` and ``on_zone_access``
    are the policy's personal-data zones for the device's ``platform``, enforced by the agent on
    every path it resolves (files); an empty ``zones`` with ``on_zone_access`` set means the
    policy defines none for this platform. ``runbooks`` pins the runbooks that may run.
    """

    paths: tuple[Annotated[str, StringConstraints(min_length=1, max_length=4096)], ...] | None = (
        Field(default=None, max_length=64)
    )
    direction: FileDirection | None = None
    max_bytes: Annotated[int, Field(ge=0)] | None = None
    shell: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    # No shell named: the device's login shell if its name is listed here, else the first listed
    # one the device has (``agent.capabilities.terminal.choose_shell``).
    shells: tuple[Annotated[str, StringConstraints(min_length=1, max_length=256)], ...] | None = (
        Field(default=None, max_length=16)
    )
    platform: Literal["windows", "macos", "linux"] | None = None
    zones: tuple[ZoneSpec, ...] | None = Field(default=None, max_length=64)
    zone_exceptions: tuple[PathPattern, ...] = Field(default=(), max_length=64)
    on_zone_access: Literal["deny", "require_consent"] | None = None
    runbooks: tuple[RunbookPin, ...] | None = Field(default=None, max_length=64)


class CapabilityGrant(WireModel):
    capability: Capability
    limits: CapabilityLimits = CapabilityLimits()
    expires_at: UtcDatetime

    def is_live(self, now: datetime) -> bool:
        return now < self.expires_at


class SignedDocument(WireModel):
    """A signed payload as it travels: the exact signed bytes and the signature over them.

    ``body`` is the canonical JSON ``{"kind": ..., "payload": ...}`` encoded as base64url. The bytes
    are carried rather than re-serialised so that no JSON library on the way can change them.
    See ``auxilio.crypto.signing``.
    """

    body: Annotated[Base64Url, StringConstraints(min_length=4, max_length=128 * 1024)]
    signature: Signature64


# -- what the person is asked, signed inside the grant (docs/protocol.md, "The signed offer") ----

LongText = Annotated[str, StringConstraints(max_length=16 * 1024)]
Nonce = Annotated[Base64Url, StringConstraints(min_length=22, max_length=64)]


class CapabilityPurpose(WireModel):
    capability: Capability
    purpose: LongText = ""


class ConsentTerms(WireModel):
    """Everything the agent shows the person besides who asks and what (which the grant itself
    names), and everything that decides the prompt's outcome. It travels inside the signed grant:
    a proxy or a compromised relay cannot change a word, the timeout or what silence means.

    ``on_timeout`` is ``refused`` for an attended session, always: silence never means yes. The
    agent treats any other value as a refusal and records ``timed_out``. ``answer_by`` bounds the
    offer itself: after it the agent refuses to show the prompt at all (an old offer replayed).

    ``mode`` ``unattended``: nobody is asked; the owner's pre-authorisation named by
    ``pre_authorisation_id`` (device-signed, docs/unattended.md) stands for the person's answer,
    and the agent checks the grant against its own copy of it.
    """

    mode: Literal["attended", "unattended"] = "attended"
    pre_authorisation_id: Identifier | None = None
    ticket_ref: ShortText | None = None
    purposes: tuple[CapabilityPurpose, ...] = Field(default=(), max_length=16)
    legal_text: LongText
    privacy_notice: LongText = ""
    timeout_seconds: int = Field(gt=0, le=3600)
    on_timeout: TimeoutDefault = "refused"
    answer_by: UtcDatetime

    @model_validator(mode="after")
    def _pre_authorised_when_unattended(self) -> Self:
        if (self.mode == "unattended") != (self.pre_authorisation_id is not None):
            raise ValueError("pre_authorisation_id is given exactly when mode is unattended")
        return self


class ExtensionTerms(WireModel):
    """The most the session may ever be extended, fixed by the first grant the person consented
    to. Every later grant must carry the same terms; the agent refuses anything beyond them."""

    max_count: int = Field(default=0, ge=0, le=100)
    max_total_seconds: int = Field(default=0, ge=0, le=7 * 24 * 3600)
    approver_required: bool = False


class ExtensionNote(WireModel):
    """Carried by a grant that extends an earlier one: which extension this is, the technician's
    stated reason (shown to the person, so signed), and the chain back to the first grant."""

    sequence: int = Field(ge=1, le=100)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    previous_nonce: Nonce
    original_not_after: UtcDatetime
    answer_within_seconds: int = Field(gt=0, le=3600)
