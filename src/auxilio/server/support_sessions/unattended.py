"""Unattended sessions: the device asked for, and the pre-authorisation that covers the request
(docs/unattended.md, "Requesting"). The offer and the receipt are in ``consent.py``.

Refusals are ``UnattendedRefused`` with a stable code, raised before the policy is asked: a
device that is not the ticket requester's, not enrolled or revoked, or no live pre-authorisation
of its owner that covers the capabilities now.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.preauth import PreAuthorisation
from auxilio.protocol.types import Capability
from auxilio.server.devices import preauth
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.devices.preauth import UnattendedRefused
from auxilio.server.errors import DeviceNotFound
from auxilio.server.tickets.models import Ticket

# Nobody answers an unattended offer: the agent's automatic receipt is due within this time.
UNATTENDED_ANSWER_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Target:
    device: Device
    record: PreAuthorisationRecord
    document: PreAuthorisation


def usable_device(device: Device | None, device_id: uuid.UUID) -> Device:
    """An enrolled, unrevoked device, or the refusal that names why not."""
    if device is None:
        raise DeviceNotFound(device_id=str(device_id))
    if device.revoked_at is not None:
        raise UnattendedRefused("device.revoked", "the device was revoked by the organisation",
                                status=409)
    if device.enrolled_at is None or device.public_key is None:
        raise UnattendedRefused("device.not_enrolled", "the device is not enrolled for "
                                "unattended access (auxilio agent enroll)", status=409)
    return device


async def target_for(
    db: AsyncSession, *, organisation_id: uuid.UUID, device_id: uuid.UUID, ticket: Ticket,
    capabilities: Collection[Capability], now: datetime, server_fingerprint: str,
) -> Target:
    """The device of the ticket's requester and the pre-authorisation covering the request."""
    found = await db.get(Device, device_id)
    if found is not None and found.organisation_id != organisation_id:
        found = None
    device = usable_device(found, device_id)
    if ticket.requester_id != device.owner_id:
        raise UnattendedRefused("unattended.ticket_device_mismatch", "the ticket was opened by "
                                "someone other than the device's owner", status=422)
    record, document = await preauth.find_covering(db, device, capabilities, now,
                                                   server_fingerprint=server_fingerprint)
    return Target(device=device, record=record, document=document)


async def check_record(
    db: AsyncSession, *, device: Device, pre_authorisation_id: uuid.UUID | None,
    capabilities: Collection[Capability], now: datetime, server_fingerprint: str,
) -> PreAuthorisation:
    """The session's own pre-authorisation, verified again, still covering ``capabilities`` now:
    ``pre_authorisation.revoked``, ``pre_authorisation.none`` (gone, or no longer what the device
    signed), ``unattended.scope.not_covered`` or ``pre_authorisation.outside_window`` if not."""
    row = await db.get(PreAuthorisationRecord, pre_authorisation_id) \
        if pre_authorisation_id else None
    if row is not None and row.device_id != device.id:
        row = None
    if row is not None and (row.revoked_at is not None or row.revocation is not None):
        raise UnattendedRefused("pre_authorisation.revoked", "the owner revoked the "
                                "pre-authorisation", status=409)
    document = preauth.verified(device, row) if row is not None else None
    if document is None or document.server_fingerprint != server_fingerprint:
        raise UnattendedRefused("pre_authorisation.none", "the session's pre-authorisation is "
                                "gone or not what the device signed", status=409)
    if not document.allows(frozenset(Capability(c) for c in capabilities)):
        raise UnattendedRefused("unattended.scope.not_covered", "the owner's pre-authorisation "
                                "does not cover what the session asks", status=409)
    if not document.window.covers(now):
        raise UnattendedRefused("pre_authorisation.outside_window", "the owner's "
                                "pre-authorisation is not open now", status=409)
    return document


def not_after(
    *, now: datetime, max_duration_seconds: int, document: PreAuthorisation
) -> datetime:
    """The grant's end: the session's time, clipped to the window's open span and its end."""
    ends = [now + timedelta(seconds=max_duration_seconds), document.window.not_after]
    until = document.window.open_until(now)
    if until is not None:
        ends.append(until)
    return min(ends)
