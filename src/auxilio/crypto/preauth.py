"""The owner's pre-authorisation (R15, R19): unattended access the device's owner allowed, signed
by the device like a consent receipt.

The owner makes it on the device (``auxilio agent access grant``): which capabilities (the scope),
when (a window: a first and last moment, and within them the weekdays and the hours of the day in
the device's time zone), and whether automated runs (runbooks and diagnostics with no technician
attached) are allowed. The device signs it with its identity key and sends it to the server; the
server may only offer an unattended session the document covers, and the agent checks every
unattended grant against its own copy, so a server that stored a wider one gains nothing.

A revocation is signed the same way. From the moment the agent signs it the agent refuses the
pre-authorisation, whether or not the server has heard of it yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document
from auxilio.protocol.types import Capability, Identifier, SignedDocument, UtcDatetime, WireModel

SignedPreAuthorisation = SignedDocument

# The longest window an owner can sign at once: a pre-authorisation is renewed, never forever.
MAX_WINDOW = dt.timedelta(days=366)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Weekday = Annotated[int, Field(ge=0, le=6)]  # 0 is Monday, as datetime.weekday()
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PreAuthorisationInvalid(CryptoError):
    code = "pre_authorisation.invalid"


class AccessWindow(WireModel):
    """``not_before`` .. ``not_after`` (UTC instants), and within them ``weekdays`` and, each of
    those days, ``daily_start`` .. ``daily_end`` in ``timezone`` (no daily hours: the whole day).
    ``daily_end`` is exclusive; a daily span that crosses midnight (22:00-06:00) is refused: sign
    two pre-authorisations instead."""

    not_before: UtcDatetime
    not_after: UtcDatetime
    weekdays: tuple[Weekday, ...] = Field(default=(0, 1, 2, 3, 4, 5, 6), min_length=1, max_length=7)
    daily_start: dt.time | None = None
    daily_end: dt.time | None = None
    timezone: TimeZoneName = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be after not_before")
        if self.not_after - self.not_before > MAX_WINDOW:
            raise ValueError(f"a window is at most {MAX_WINDOW.days} days")
        if len(set(self.weekdays)) != len(self.weekdays):
            raise ValueError("a weekday appears twice")
        if (self.daily_start is None) != (self.daily_end is None):
            raise ValueError("daily_start and daily_end go together")
        if self.daily_start is not None and self.daily_end is not None:
            if self.daily_start.tzinfo is not None or self.daily_end.tzinfo is not None:
                raise ValueError("daily hours are local times without an offset")
            if self.daily_end <= self.daily_start:
                raise ValueError("daily_end must be after daily_start (same day)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _day_span(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The UTC span this window opens on the local ``day``, clipped to not_before/not_after."""
        if day.weekday() not in self.weekdays:
            return None
        zone = self.zone
        start_time = self.daily_start or dt.time(0, 0)
        start = dt.datetime.combine(day, start_time, zone)
        end = (
            dt.datetime.combine(day, self.daily_end, zone)
            if self.daily_end is not None
            else dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), zone)
        )
        start_utc = max(start.astimezone(dt.UTC), self.not_before)
        end_utc = min(end.astimezone(dt.UTC), self.not_after)
        return (start_utc, end_utc) if start_utc < end_utc else None

    def spans(
        self, start: dt.datetime, end: dt.datetime
    ) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The open spans (UTC) that intersect ``start`` .. ``end``, in order."""
        zone = self.zone
        day = max(start, self.not_before).astimezone(zone).date() - dt.timedelta(days=1)
        last = min(end, self.not_after).astimezone(zone).date() + dt.timedelta(days=1)
        while day <= last:
            span = self._day_span(day)
            if span is not None and span[1] > start and span[0] < end:
                yield span
            day += dt.timedelta(days=1)

    def open_until(self, moment: dt.datetime) -> dt.datetime | None:
        """The end of the open span holding ``moment``, or None when the window is shut then.
        Spans that touch (a whole-day window on consecutive days) count as one."""
        current: dt.datetime | None = None
        for span_start, span_end in self.spans(moment, self.not_after):
            if current is None:
                if not span_start <= moment < span_end:
                    return None
                current = span_end
            elif span_start <= current:
                current = max(current, span_end)
            else:
                break
        return current

    def covers(self, moment: dt.datetime) -> bool:
        return self.open_until(moment) is not None

    def covers_span(self, start: dt.datetime, end: dt.datetime) -> bool:
        """True when every moment of ``start`` .. ``end`` is inside the window."""
        until = self.open_until(start)
        return until is not None and end <= until

    def next_opening(self, moment: dt.datetime) -> dt.datetime | None:
        """When the window next opens at or after ``moment`` (``moment`` itself if open)."""
        if self.covers(moment):
            return moment
        for span_start, _ in self.spans(moment, self.not_after):
            if span_start >= moment:
                return span_start
        return None


class PreAuthorisation(WireModel):
    """What the owner signed. ``server_fingerprint`` binds it to one server: another server shown
    this document cannot use it. ``owner_name`` is who the device says pre-authorised (the
    signed-in account's name on the device); ``note`` their own words, if any."""

    id: Identifier
    device_id: Identifier
    organisation_id: Identifier
    server_fingerprint: Annotated[str, StringConstraints(min_length=8, max_length=120)]
    owner_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    scope: tuple[Capability, ...] = Field(min_length=1, max_length=16)
    automated_runs: bool = False
    window: AccessWindow
    note: Annotated[str, StringConstraints(max_length=500)] = ""
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.scope)) != len(self.scope):
            raise ValueError("a capability appears twice in the scope")
        if self.automated_runs and not {Capability.RUNBOOKS, Capability.DIAGNOSTICS} & set(
            self.scope
        ):
            raise ValueError("automated runs need runbooks or diagnostics in the scope")
        return self

    def allows(self, capabilities: set[Capability] | frozenset[Capability]) -> bool:
        return set(capabilities) <= set(self.scope)


class PreAuthorisationRevocation(WireModel):
    pre_authorisation_id: Identifier
    device_id: Identifier
    revoked_at: UtcDatetime
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


def sign_pre_authorisation(key: Ed25519PrivateKey, document: PreAuthorisation) -> SignedDocument:
    return sign_document(key, document.model_dump(mode="json"), kind=DocumentKind.PRE_AUTHORISATION)


def verify_pre_authorisation(
    device_public_key: Ed25519PublicKey, signed: SignedDocument
) -> PreAuthorisation:
    """The document if the device key signed it as a pre-authorisation; ``SignatureInvalid`` or
    ``PreAuthorisationInvalid`` otherwise."""
    payload = verify_document(device_public_key, signed, kind=DocumentKind.PRE_AUTHORISATION)
    try:
        return PreAuthorisation.model_validate(payload)
    except ValidationError as exc:
        raise PreAuthorisationInvalid(
            f"signed pre-authorisation is invalid: {exc.error_count()} error(s)"
        ) from exc


def sign_revocation(
    key: Ed25519PrivateKey, revocation: PreAuthorisationRevocation
) -> SignedDocument:
    return sign_document(
        key, revocation.model_dump(mode="json"), kind=DocumentKind.PRE_AUTHORISATION_REVOCATION
    )


def verify_revocation(
    device_public_key: Ed25519PublicKey, signed: SignedDocument
) -> PreAuthorisationRevocation:
    payload = verify_document(
        device_public_key, signed, kind=DocumentKind.PRE_AUTHORISATION_REVOCATION
    )
    try:
        return PreAuthorisationRevocation.model_validate(payload)
    except ValidationError as exc:
        raise PreAuthorisationInvalid(
            f"signed revocation is invalid: {exc.error_count()} error(s)"
        ) from exc
