"""Offering an unattended session to its device, wherever its connection is (docs/unattended.md).

The offer is made when both ends are there: the technician attached (``technician_ws``) and
the device's connection held by some node (its ``device:<id>`` topic). Whichever comes second
makes it: the technician's attach, or the device's ``device.ready``. The grant is signed and the
session moved to awaiting consent in one transaction; after the commit the node holding the
device hears ``offer`` and binds that connection to the session (``agent_ws``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.protocol.frames import EndReason, Party
from auxilio.protocol.states import SupportSessionState
from auxilio.server.devices import channel
from auxilio.server.relay.bus import BusMessage
from auxilio.server.relay.hub import Peer
from auxilio.server.support_sessions import consent, service
from auxilio.server.support_sessions.consent import AgentRefused
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime, error_text

S = SupportSessionState


async def offer(runtime: SupportSessionRuntime, support_session_id: uuid.UUID) -> str:
    """Offer the requested unattended session if both ends are here. The outcome: ``offered``,
    ``waiting`` (not unattended, not requested, or the technician not attached),
    ``device_offline`` (the technician is told; the offer follows when the device connects),
    ``device_busy`` (in another session; the offer follows when that one ends) or
    the refusal's code (the technician is told, and the session is ended with its reason)."""
    hub = runtime.hub
    sid = str(support_session_id)
    refused: AgentRefused | None = None

    async def work(db: AsyncSession) -> tuple[str, SupportSession | None]:
        nonlocal refused
        found = await service.get_for_update(db, support_session_id)
        if found is None or found.mode != "unattended" or found.state != S.REQUESTED:
            return "waiting", None
        if not await hub.is_attached(sid, Peer.TECHNICIAN):
            return "waiting", None
        assert found.device_id is not None  # noqa: S101 -- unattended sessions name their device
        if not await channel.is_online(hub.bus, found.device_id):
            return "device_offline", found
        if found.device_public_key and await service.find_for_device(
                db, device_public_key=found.device_public_key) is not None:
            return "device_busy", found
        try:
            await consent.offer_unattended(db, support_session=found,
                                           server_key=runtime.signing_key)
        except AgentRefused as exc:
            refused = exc
            await service.end_support_session(
                db, support_session=found, ended_by=Party.SERVER,
                reason=consent.UNATTENDED_END_REASONS.get(exc.code, EndReason.POLICY),
                detail=exc.code, actor=consent.agent_actor(found))
            return exc.code, found
        return "offered", found

    outcome, found = await runtime.in_transaction(work)
    if found is None:
        return outcome
    if outcome == "device_offline":
        await hub.send(sid, Peer.TECHNICIAN, BusMessage.text(error_text(
            "device.offline", "the device is not connected; it is offered the session as soon "
            "as it connects")))
    elif outcome == "device_busy":
        await hub.send(sid, Peer.TECHNICIAN, BusMessage.text(error_text(
            "device.busy", "the device is in another support session; it is offered this one "
            "when that one ends")))
    elif outcome == "offered":
        assert found.device_id is not None  # noqa: S101 -- checked in work
        if not await channel.offer_to_device(hub.bus, found.device_id, found.id):
            # It went away in between: the offer waits for it like any unanswered one.
            await hub.send(sid, Peer.TECHNICIAN, BusMessage.text(error_text(
                "device.offline", "the device went away as the offer was made")))
    elif refused is not None:
        await hub.send(sid, Peer.TECHNICIAN, BusMessage.text(error_text(
            refused.code, refused.message)))
        await runtime.announce_end(found)
    return outcome


async def offer_pending(runtime: SupportSessionRuntime, device_id: uuid.UUID) -> None:
    """The device just connected: offer its requested unattended sessions whose technician is
    attached (the newest first; the first offered wins, the others wait)."""

    async def pending(db: AsyncSession) -> list[uuid.UUID]:
        rows = await db.execute(
            select(SupportSession.id).where(SupportSession.device_id == device_id,
                                            SupportSession.mode == "unattended",
                                            SupportSession.state == str(S.REQUESTED))
            .order_by(SupportSession.created_at.desc()).limit(5))
        return list(rows.scalars())

    for support_session_id in await runtime.in_transaction(pending):
        if await offer(runtime, support_session_id) == "offered":
            return
