"""The owners' pre-authorisations as the server keeps them (docs/unattended.md).

The agent sends each pre-authorisation the owner signed on the device (``preauth.publish``) and
each revocation (``preauth.revoke``). The server stores the document exactly as sent, with the
fields it queries copied out of it. Nothing is trusted from the copies: ``covering`` verifies
the stored signature again with the device's key and compares every copied column with the
signed document, so a database editor who widens a scope or a window gains nothing (and the
agent checks every unattended grant against its own copy besides).

Refusals are ``UnattendedRefused`` with a stable code; the agent hears it in an ``error``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import CryptoError, KeyEncodingInvalid
from auxilio.crypto.keys import decode_ed25519_public_key, fingerprint
from auxilio.crypto.preauth import (
    PreAuthorisation,
    verify_pre_authorisation,
    verify_revocation,
)
from auxilio.protocol.types import Capability, SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.errors import DomainError
from auxilio.server.support_sessions.models import SupportSession

LIVE_SESSION_STATES = ("requested", "awaiting_consent", "active")
# Live (not revoked, not over) pre-authorisations one device may hold: device.ready names them
# all, and each use verifies them all again.
MAX_LIVE = 64


class UnattendedRefused(DomainError):
    """Refused in unattended access (a pre-authorisation, its revocation, a device, a request),
    with a stable per-instance ``code``."""

    status = 422
    default_message = "The pre-authorisation was refused."

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]  # per instance: one class, many stable codes
        if status is not None:
            self.status = status  # type: ignore[misc]


def _device_actor(device: Device) -> Actor:
    return Actor(id=None, display_name=f"agent of device {device.id}",
                 organisation_id=device.organisation_id)


def _key(device: Device) -> Any:
    if device.public_key is None or device.enrolled_at is None:
        raise UnattendedRefused("device.not_enrolled", "the device is not enrolled")
    try:
        return decode_ed25519_public_key(device.public_key)
    except KeyEncodingInvalid as exc:
        raise UnattendedRefused("device.key_mismatch", str(exc)) from exc


def _columns(document: PreAuthorisation) -> dict[str, Any]:
    """The copied columns exactly as ``store`` writes them from the signed ``document``."""
    window = document.window
    return {
        "scope": [str(c) for c in document.scope],
        "automated_runs": document.automated_runs,
        "not_before": window.not_before,
        "not_after": window.not_after,
        "window": window.model_dump(mode="json"),
        "owner_name": document.owner_name,
        "signed_at": document.created_at,
    }


def _check_binding(device: Device, document: PreAuthorisation, server_fingerprint: str) -> None:
    if document.device_id != str(device.id):
        raise UnattendedRefused("pre_authorisation.wrong_device",
                                      "the pre-authorisation names another device")
    if document.organisation_id != str(device.organisation_id):
        raise UnattendedRefused("pre_authorisation.wrong_organisation",
                                      "the pre-authorisation names another organisation")
    if document.server_fingerprint != server_fingerprint:
        raise UnattendedRefused("pre_authorisation.wrong_server",
                                      "the pre-authorisation was signed for another server")


async def store(
    db: AsyncSession, *, device: Device, signed: SignedDocument, server_fingerprint: str,
    now: datetime,
) -> PreAuthorisationRecord:
    """Verify ``signed`` with the device's key and keep it. The same document again is
    answered with the stored record (``pre_authorisation.revoked`` once revoked); another
    document under the same id is ``pre_authorisation.conflict``; a device already holding
    ``MAX_LIVE`` live ones is ``pre_authorisation.too_many``."""
    if device.revoked_at is not None:
        raise UnattendedRefused("device.revoked", "the device was revoked")
    try:
        document = verify_pre_authorisation(_key(device), signed)
    except CryptoError as exc:
        raise UnattendedRefused("pre_authorisation.invalid",
                                      f"the pre-authorisation does not verify: {exc}") from exc
    _check_binding(device, document, server_fingerprint)
    if document.window.not_after <= now:
        raise UnattendedRefused("pre_authorisation.expired",
                                      "the pre-authorisation's window is over")
    try:
        record_id = uuid.UUID(document.id)
    except ValueError as exc:
        raise UnattendedRefused("pre_authorisation.invalid",
                                      "the pre-authorisation's id is not a UUID") from exc
    found = await db.get(PreAuthorisationRecord, record_id, with_for_update=True)
    if found is not None:
        if found.device_id == device.id and found.document.get("body") == signed.body:
            if found.revoked_at is not None or found.revocation is not None:
                raise UnattendedRefused("pre_authorisation.revoked", "the owner revoked this "
                                        "pre-authorisation; sign a new one", status=409)
            return found
        raise UnattendedRefused("pre_authorisation.conflict", "another pre-authorisation "
                                      "with this id is already stored", status=409)
    live = await db.execute(select(func.count()).select_from(PreAuthorisationRecord).where(
        PreAuthorisationRecord.device_id == device.id, PreAuthorisationRecord.revoked_at.is_(None),
        PreAuthorisationRecord.not_after > now))
    if live.scalar_one() >= MAX_LIVE:
        raise UnattendedRefused("pre_authorisation.too_many", f"a device holds at most {MAX_LIVE} "
                                "live pre-authorisations; revoke one first", status=409)
    row = PreAuthorisationRecord(
        id=record_id, organisation_id=device.organisation_id, device_id=device.id,
        document={"body": signed.body, "signature": signed.signature}, received_at=now,
        **_columns(document),
    )
    db.add(row)
    await db.flush()
    await record(db, action=AuditAction.PRE_AUTHORISATION_STORED, actor=_device_actor(device),
                 organisation_id=device.organisation_id, target_type="device",
                 target_id=device.id,
                 details={"pre_authorisation_id": str(record_id), "owner_name": row.owner_name,
                          "scope": row.scope, "automated_runs": row.automated_runs,
                          "window": row.window,
                          "device_fingerprint": fingerprint(_key(device))})
    return row


async def revoke(
    db: AsyncSession, *, device: Device, signed_revocation: SignedDocument, now: datetime
) -> tuple[PreAuthorisationRecord, list[SupportSession]]:
    """Verify the owner's revocation and mark the record revoked (again: no change); the live
    unattended sessions that rely on it, for the caller to end at once."""
    try:
        revocation = verify_revocation(_key(device), signed_revocation)
    except CryptoError as exc:
        raise UnattendedRefused("pre_authorisation.invalid",
                                      f"the revocation does not verify: {exc}") from exc
    if revocation.device_id != str(device.id):
        raise UnattendedRefused("pre_authorisation.wrong_device",
                                      "the revocation names another device")
    try:
        record_id = uuid.UUID(revocation.pre_authorisation_id)
    except ValueError:
        record_id = None
    found = (await db.get(PreAuthorisationRecord, record_id, with_for_update=True)
             if record_id else None)  # fmt: skip
    if found is None or found.device_id != device.id:
        raise UnattendedRefused("pre_authorisation.unknown",
                                      "the server holds no such pre-authorisation", status=404)
    if found.revoked_at is None:
        found.revoked_at = now
        found.revocation = {"body": signed_revocation.body,
                            "signature": signed_revocation.signature}
        await db.flush()
        await record(db, action=AuditAction.PRE_AUTHORISATION_REVOKED,
                     actor=_device_actor(device), organisation_id=device.organisation_id,
                     target_type="device", target_id=device.id,
                     details={"pre_authorisation_id": str(found.id),
                              "revoked_at": revocation.revoked_at.isoformat(),
                              "reason": revocation.reason})
    rows = await db.execute(
        select(SupportSession).where(SupportSession.pre_authorisation_id == found.id,
                                     SupportSession.state.in_(LIVE_SESSION_STATES))
    )
    return found, list(rows.scalars())


async def live_for_device(
    db: AsyncSession, device_id: uuid.UUID, now: datetime
) -> list[PreAuthorisationRecord]:
    """Not revoked and not over (as the columns say; ``covering`` trusts only the signature)."""
    rows = await db.execute(
        select(PreAuthorisationRecord).where(
            PreAuthorisationRecord.device_id == device_id,
            PreAuthorisationRecord.revoked_at.is_(None),
            PreAuthorisationRecord.not_after > now,
        ).order_by(PreAuthorisationRecord.signed_at, PreAuthorisationRecord.id)
    )
    return list(rows.scalars())


def verified(device: Device, row: PreAuthorisationRecord) -> PreAuthorisation | None:
    """The stored document if its signature still verifies with the device's key, it binds the
    device and organisation, and every copied column says what the signed document says; None
    otherwise (edited in the database, or a stored revocation)."""
    if row.revocation is not None or row.revoked_at is not None:
        return None
    try:
        signed = SignedDocument(body=row.document["body"], signature=row.document["signature"])
        document = verify_pre_authorisation(_key(device), signed)
    except (CryptoError, KeyError, TypeError, ValueError, UnattendedRefused):
        return None
    if (
        document.id != str(row.id) or document.device_id != str(device.id)
        or row.device_id != device.id
        or document.organisation_id != str(device.organisation_id)
        or row.organisation_id != device.organisation_id
    ):
        return None
    expected = _columns(document)
    if any(getattr(row, name) != value for name, value in expected.items()):
        return None
    return document


async def find_covering(
    db: AsyncSession, device: Device, capabilities: Collection[Capability], now: datetime,
    *, server_fingerprint: str | None = None,
) -> tuple[PreAuthorisationRecord, PreAuthorisation]:
    """The live, verified pre-authorisation whose scope holds ``capabilities`` and whose window
    is open ``now`` (the one open longest, when several are); else ``UnattendedRefused``:
    ``pre_authorisation.none`` (no live one), ``unattended.scope.not_covered`` (none allows all
    of them) or ``pre_authorisation.outside_window`` (with the next opening)."""
    wanted = frozenset(Capability(c) for c in capabilities)
    documents: list[tuple[PreAuthorisationRecord, PreAuthorisation]] = []
    for row in await live_for_device(db, device.id, now):
        document = verified(device, row)
        if document is None or document.window.not_after <= now:
            continue
        if server_fingerprint is not None and document.server_fingerprint != server_fingerprint:
            continue
        documents.append((row, document))
    if not documents:
        raise UnattendedRefused("pre_authorisation.none", "the device's owner has no "
                                      "live pre-authorisation for unattended access", status=403)
    scoped = [(row, doc) for row, doc in documents if doc.allows(wanted)]
    if not scoped:
        allowed = sorted({str(c) for _, doc in documents for c in doc.scope})
        raise UnattendedRefused(
            "unattended.scope.not_covered", "the owner's pre-authorisation does not cover "
            f"{', '.join(sorted(str(c) for c in wanted))} (allowed: {', '.join(allowed)})",
            status=403, allowed=allowed)
    best: tuple[PreAuthorisationRecord, PreAuthorisation] | None = None
    best_until: datetime | None = None
    for row, doc in scoped:
        until = doc.window.open_until(now)
        if until is not None and (best_until is None or until > best_until):
            best, best_until = (row, doc), until
    if best is None:
        openings = [o for _, doc in scoped if (o := doc.window.next_opening(now)) is not None]
        nxt = min(openings) if openings else None
        when = f"; it next opens at {nxt.isoformat()}" if nxt else "; it does not open again"
        raise UnattendedRefused(
            "pre_authorisation.outside_window",
            f"the owner's pre-authorisation is not open now{when}",
            status=403, next_opening=nxt.isoformat() if nxt else None)
    return best


async def covering(
    db: AsyncSession, device: Device, capabilities: Collection[Capability], now: datetime
) -> PreAuthorisationRecord | None:
    """The record ``find_covering`` finds, or None."""
    try:
        found, _ = await find_covering(db, device, capabilities, now)
    except UnattendedRefused:
        return None
    return found


def live_ids(rows: Sequence[PreAuthorisationRecord], device: Device) -> tuple[str, ...]:
    """The ids ``device.ready`` names: live rows whose stored document still verifies."""
    return tuple(str(row.id) for row in rows if verified(device, row) is not None)[:64]
