"""``/ws/agent``: the device's side (docs/support-sessions.md, steps 2, 3, 5 and 6)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from typing import cast

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import KeyEncodingInvalid, SignatureInvalid
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key, fingerprint
from auxilio.crypto.signing import verify_agent_challenge
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHeartbeat,
    AgentHello,
    AutomationResult,
    CapabilityRevoke,
    ConsentDecisionMessage,
    ControlMessage,
    DeviceReady,
    E2EConfirm,
    E2EHello,
    EndReason,
    ErrorMessage,
    Party,
    PreAuthAck,
    PreAuthPublish,
    PreAuthRevoke,
    RecordingKey,
    ServerHello,
    SessionActivity,
    SessionEnd,
    SessionExtendAnswer,
    SessionJoin,
    SessionOffer,
    SessionReportMismatch,
    encode_message,
)
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import Capability
from auxilio.protocol.version import negotiate_version
from auxilio.server.automation import results as automation
from auxilio.server.context import Actor
from auxilio.server.devices import channel, preauth
from auxilio.server.devices.models import Device
from auxilio.server.emergency import state as emergency
from auxilio.server.errors import DomainError
from auxilio.server.identity.ratelimit import Limited
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.epochs import recording_epoch
from auxilio.server.relay.bus import BusMessage, MessageKind, Subscription
from auxilio.server.relay.connection import CLOSE_NORMAL, CLOSE_POLICY, Connection
from auxilio.server.relay.hub import Peer
from auxilio.server.support_sessions import (
    clock,
    consent,
    during,
    extensions,
    offering,
    receipts,
    service,
)
from auxilio.server.support_sessions.consent import AgentRefused, Offer
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import end_text, error_text, message_id, state_text
from auxilio.server.support_sessions.ws import PeerHandler, WireRefusal

S = SupportSessionState
MAX_JOIN_TRIES = 5
# How long after a lost session a reconnecting agent is still told that it ended.
LOST_NOTICE = timedelta(minutes=10)
# An enrolled device's last_seen_at is written at most this often (seconds).
LAST_SEEN_EVERY = 60.0
# Close code for an enrolled connection replaced by a newer one of the same device.
CLOSE_REPLACED = 4000


class _BoundConnection:
    """What the hub holds for an enrolled device's connection bound to a session: frames pass
    through; a close (the session ended, or another connection took it) unbinds instead, and
    the connection goes back to idle (docs/unattended.md)."""

    __slots__ = ("handler",)

    def __init__(self, handler: AgentHandler) -> None:
        self.handler = handler

    async def send_text(self, text: str) -> None:
        await self.handler.conn.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.handler.conn.send_bytes(data)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        await self.handler.unbind(offer_next=code == CLOSE_NORMAL)


class AgentHandler(PeerHandler):
    peer = Peer.AGENT

    device_key: str = ""
    platform: str = ""
    announced: tuple[Capability, ...] = ()
    recorded = False
    join_failures = 0
    organisation_id: uuid.UUID | None = None
    # The last activity sequence number seen on this connection: 0 for a session joined here;
    # None after a reconnect (the first report sets the baseline).
    activity_seq: int | None = 0
    # An enrolled device (agent.hello with device_id): its id, its bus topic's subscription,
    # when last_seen_at was last written (monotonic), and whether the organisation revoked it.
    device_id: uuid.UUID | None = None
    device_subscription: Subscription | None = None
    seen_at = 0.0
    revoked_close = False

    def actor(self) -> Actor:
        return Actor(id=None, display_name="agent", organisation_id=self.organisation_id)

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self) -> bool:
        settings = self.runtime.settings
        server_fp = fingerprint(self.runtime.signing_key.public_key())
        try:
            async with asyncio.timeout(settings.ws_auth_timeout_seconds):
                hello: AgentHello | None = await self.expect(AgentHello)
                if hello is None:
                    return False
                version = negotiate_version(peer_max=hello.protocol_version,
                                            peer_min=hello.min_protocol_version)
                challenge = b64url_encode(os.urandom(32))
                await self.send(encode_message(ServerHello(
                    id=message_id(), protocol_version=version, server_fingerprint=server_fp,
                    challenge=challenge, server_time=clock.now(),
                )))
                auth: AgentAuth | None = await self.expect(AgentAuth)
                if auth is None:
                    return False
        except TimeoutError:
            raise WireRefusal("auth.timeout", "authenticate within "
                              f"{settings.ws_auth_timeout_seconds:g} seconds") from None
        try:
            verify_agent_challenge(decode_ed25519_public_key(hello.device_public_key),
                                   auth.signature, challenge=challenge,
                                   server_fingerprint=server_fp)
        except (SignatureInvalid, KeyEncodingInvalid):
            raise WireRefusal("signature.invalid", "agent.auth does not verify with the "
                              "device key", ref=auth.id) from None
        self.device_key = hello.device_public_key
        self.platform = hello.platform
        self.announced = hello.capabilities
        ready = await self.check_device(hello) if hello.device_id is not None else None
        self.conn.authenticated()
        self.conn.log.info("agent authenticated (device key %s)", self.device_key[:12])
        if ready is not None:
            await self.send(encode_message(ready))
            await self.subscribe_device()
        await self.resume()
        if self.device_id is not None and ready is not None and not ready.emergency_active:
            # Never an unattended offer during an emergency (the offer checks it again).
            await offering.offer_pending(self.runtime, self.device_id)
        return True

    # -- enrolled devices ------------------------------------------------------------------------

    async def check_device(self, hello: AgentHello) -> DeviceReady:
        """The enrolled device the hello names: known, this key, not revoked; else refused and
        closed (``device.unknown``, ``device.key_mismatch``, ``device.revoked``)."""
        try:
            wanted = uuid.UUID(str(hello.device_id))
        except ValueError:
            wanted = None

        async def work(db: AsyncSession) -> DeviceReady:
            device = await db.get(Device, wanted) if wanted else None
            if device is None or device.enrolled_at is None:
                raise WireRefusal("device.unknown", "this server has no enrolled device with "
                                  "that id", ref=hello.id)
            if device.public_key != self.device_key:
                raise WireRefusal("device.key_mismatch", "that device is enrolled with another "
                                  "key", ref=hello.id)
            if device.revoked_at is not None:
                raise WireRefusal("device.revoked", "the organisation revoked this device",
                                  ref=hello.id)
            now = clock.now()
            device.last_seen_at = now
            device.agent_version = hello.agent_version[:64]
            self.device_id, self.organisation_id = device.id, device.organisation_id
            live = await preauth.live_for_device(db, device.id, now)
            return DeviceReady(
                id=message_id(), device_id=str(device.id), server_time=now,
                emergency_active=await emergency.is_active(
                    db, organisation_id=device.organisation_id),
                pre_authorisations=preauth.live_ids(live, device))

        ready = await self.runtime.in_transaction(work)
        self.seen_at = time.monotonic()
        return ready

    async def subscribe_device(self) -> None:
        """Hold the device's topic for the connection's life; an older connection of the same
        device is closed first (one connection per device)."""
        assert self.device_id is not None  # noqa: S101 -- set by check_device
        bus = self.runtime.hub.bus
        name = channel.device_topic(self.device_id)
        await bus.publish(name, BusMessage.close(CLOSE_REPLACED, "replaced by a new connection"))
        self.device_subscription = await bus.subscribe(name, self.on_device_message)

    async def on_device_message(self, message: BusMessage) -> None:
        """What reaches the device over its topic (devices/channel.py)."""
        if message.kind is MessageKind.CLOSE:
            self.revoked_close = message.code == channel.CLOSE_DEVICE_REVOKED
            await self.conn.close(message.code, str(message.data))
            return
        payload = channel.parse(message)
        if payload is None:
            return
        kind = payload.get("kind")
        if kind == "forward" and isinstance(payload.get("message"), dict):
            await self.send(orjson.dumps(payload["message"]).decode())
        elif kind == "offer":
            await self.take_offer(str(payload.get("support_session_id")))
        elif kind == "end" and payload.get("support_session_id") == self.sid:
            await self.unbind(offer_next=True)

    async def take_offer(self, support_session_id: str) -> None:
        """Bind to the unattended session offered to this device and send its offer."""
        try:
            sid = uuid.UUID(support_session_id)
        except ValueError:
            return
        bound = self.support_session_id

        async def load(db: AsyncSession) -> tuple[SupportSession | None, bool]:
            if bound is not None:
                current = await db.get(SupportSession, bound)
                if current is not None and not service.is_final(current):
                    return None, False  # busy: the new offer times out unanswered
            found = await db.get(SupportSession, sid)
            if (
                found is None or found.device_id != self.device_id
                or found.mode != "unattended" or found.state != S.AWAITING_CONSENT
                or await emergency.is_active(db, organisation_id=found.organisation_id)
            ):
                return None, bound is not None
            return found, bound is not None

        found, stale = await self.runtime.in_transaction(load)
        if stale:
            await self.unbind(offer_next=False)
        offer = consent.current_offer(found) if found is not None else None
        if found is None or offer is None:
            return
        await self.bind(found)
        await self.send_offer(offer)
        await self.runtime.announce_state(found, "offered", to=(Peer.TECHNICIAN,))

    async def unbind(self, *, offer_next: bool) -> None:
        """Back to idle after a session: the connection stays open for the next one."""
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            await attachment.cancel()
        self.support_session_id = None
        self.active = False
        self.recorded = False
        self.activity_seq = 0
        if offer_next and self.device_id is not None and self.conn.is_open:
            await offering.offer_pending(self.runtime, self.device_id)

    def _enrolled(self, ref: str) -> uuid.UUID:
        if self.device_id is None:
            raise WireRefusal("device.not_enrolled", "only an enrolled device's connection "
                              "(agent.hello with device_id) sends this", ref=ref)
        return self.device_id

    def _owner_actor(self) -> Actor:
        return Actor(id=None, display_name=f"owner of device {self.device_id} (signed on the "
                     "device)", organisation_id=self.organisation_id)

    async def preauth_publish(self, message: PreAuthPublish) -> None:
        device_id = self._enrolled(message.id)
        server_fp = fingerprint(self.runtime.signing_key.public_key())

        async def work(db: AsyncSession) -> str:
            device = await db.get(Device, device_id, with_for_update=True)
            assert device is not None  # noqa: S101 -- checked at hello; devices are not deleted
            row = await preauth.store(db, device=device, signed=message.document,
                                      server_fingerprint=server_fp, now=clock.now())
            return str(row.id)

        try:
            stored = await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal(exc.code, exc.message, ref=message.id) from None
        await self.send(encode_message(PreAuthAck(
            id=message_id(), pre_authorisation_id=stored, state="stored")))

    async def preauth_revoke(self, message: PreAuthRevoke) -> None:
        """The owner's revocation: recorded, every live session on it ended at once, acked."""
        device_id = self._enrolled(message.id)

        async def work(db: AsyncSession) -> tuple[str, list[uuid.UUID]]:
            device = await db.get(Device, device_id, with_for_update=True)
            assert device is not None  # noqa: S101 -- checked at hello; devices are not deleted
            row, live = await preauth.revoke(db, device=device,
                                             signed_revocation=message.document, now=clock.now())
            return str(row.id), [found.id for found in live]

        try:
            revoked, live = await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal(exc.code, exc.message, ref=message.id) from None
        for support_session_id in live:
            await self.runtime.end(support_session_id, ended_by=Party.END_USER,
                                   reason=EndReason.PRE_AUTHORISATION_REVOKED, detail=revoked,
                                   actor=self._owner_actor())
        await self.send(encode_message(PreAuthAck(
            id=message_id(), pre_authorisation_id=revoked, state="revoked")))

    async def automation_result(self, message: AutomationResult) -> None:
        device_id = self._enrolled(message.id)

        async def work(db: AsyncSession) -> None:
            device = await db.get(Device, device_id)
            assert device is not None  # noqa: S101 -- checked at hello; devices are not deleted
            await automation.record_result(db, device=device, run_id=message.run_id,
                                           signed=message.result)

        try:
            await self.runtime.in_transaction(work)
        except DomainError as exc:
            code = exc.code if "." in exc.code else f"automation.{exc.code}"
            raise WireRefusal(code, exc.message, ref=message.id) from None
        except NotImplementedError:
            raise WireRefusal("automation.unavailable", "this server does not take automation "
                              "results yet", ref=message.id) from None

    async def agent_error(self, message: ErrorMessage) -> None:
        """The agent's own refusal (an unattended offer it would not take): the technician of
        the bound session hears it; nothing else is done with it."""
        self.conn.log.info("agent reports %s: %s", message.code, message.message[:200])
        if self.support_session_id is not None:
            await self.runtime.hub.send(self.sid, Peer.TECHNICIAN, BusMessage.text(error_text(
                message.code, f"the device says: {message.message}")))

    async def seen(self) -> None:
        """Presence: an enrolled device's last_seen_at, written at most once a minute."""
        if self.device_id is None or time.monotonic() - self.seen_at < LAST_SEEN_EVERY:
            return
        self.seen_at = time.monotonic()
        device_id = self.device_id

        async def work(db: AsyncSession) -> None:
            device = await db.get(Device, device_id)
            if device is not None:
                device.last_seen_at = clock.now()

        await self.runtime.in_transaction(work)

    async def resume(self) -> None:
        """A reconnecting agent: back into its live session, or told that it ended."""

        # The enrolled service and a person's join on the same device prove the same key: each
        # connection comes back only to its own kind of session.
        unattended = self.device_id is not None

        async def find(db: AsyncSession) -> tuple[SupportSession | None, SupportSession | None]:
            live = await service.find_for_device(db, device_public_key=self.device_key,
                                                 unattended=unattended)
            if live is not None:
                return live, None
            lost = await service.find_lost_for_device(
                db, device_public_key=self.device_key, since=clock.now() - LOST_NOTICE,
                unattended=unattended)
            return None, lost

        live, lost = await self.runtime.in_transaction(find)
        if lost is not None:
            await self.send(end_text(lost))
            return
        if live is None:
            return
        await self.bind(live)
        self.activity_seq = None
        if live.state == S.AWAITING_CONSENT:
            offer = consent.current_offer(live)
            if offer is not None:
                await self.send_offer(offer)
            return
        self.active = True
        await self.send(state_text(live, "resumed"))
        await self.runtime.announce_state(live, "agent_back", to=(Peer.TECHNICIAN,))
        await self.runtime.announce_technician_ready(live)

    async def bind(self, support_session: SupportSession) -> None:
        self.support_session_id = support_session.id
        self.activity_seq = 0
        self.recorded = support_session.recorded
        self.organisation_id = support_session.organisation_id
        # An enrolled device's connection outlives the session: the end unbinds it instead.
        conn = self.conn if self.device_id is None else cast(Connection, _BoundConnection(self))
        self.attachment = await self.runtime.hub.attach(self.sid, Peer.AGENT, conn)

    async def send_offer(self, offer: Offer) -> None:
        await self.send(encode_message(SessionOffer(
            id=message_id(), support_session_id=str(offer.support_session.id),
            grant=offer.grant,
        )))

    # -- commands --------------------------------------------------------------------------------

    async def handle(self, message: ControlMessage, raw: str) -> None:
        if isinstance(message, SessionJoin):
            await self.join(message)
        elif isinstance(message, ConsentDecisionMessage):
            await self.consent(message)
        elif isinstance(message, E2EHello | E2EConfirm):
            await self.relay_unchanged(raw, message.support_session_id, message.id)
            if isinstance(message, E2EHello) and self.recorded:
                self.runtime.hub.record_epoch(self.sid, recording_epoch(message))
        elif isinstance(message, RecordingKey):
            await self.recording_key(message)
        elif isinstance(message, SessionActivity):
            await self.activity(message)
        elif isinstance(message, SessionReportMismatch):
            await self.report_mismatch(message)
        elif isinstance(message, CapabilityRevoke):
            await self.revoke(message, raw)
        elif isinstance(message, SessionExtendAnswer):
            await self.extension_answer(message)
        elif isinstance(message, SessionEnd):
            await self.end(message)
        elif isinstance(message, AgentHeartbeat):
            await self.seen()
        elif isinstance(message, PreAuthPublish):
            await self.preauth_publish(message)
        elif isinstance(message, PreAuthRevoke):
            await self.preauth_revoke(message)
        elif isinstance(message, AutomationResult):
            await self.automation_result(message)
        elif isinstance(message, ErrorMessage):
            await self.agent_error(message)
        else:
            raise WireRefusal("protocol.unexpected_message",
                              f"{message.type} is not sent by an agent", ref=message.id)

    def _check_bound(self, support_session_id: str, ref: str) -> uuid.UUID:
        if self.support_session_id is None or support_session_id != self.sid:
            raise WireRefusal("session.not_found", "this connection is not in that support "
                              "session", ref=ref)
        return self.support_session_id

    async def join(self, message: SessionJoin) -> None:
        if self.support_session_id is not None:
            raise WireRefusal("protocol.unexpected_message", "this connection already joined a "
                              "support session", ref=message.id)
        await self.limit(Limited.JOIN, ref=message.id)
        refused: AgentRefused | None = None
        offer: Offer | None = None
        async with self.runtime.sessionmaker() as db, db.begin():
            # Caught inside the transaction so that the audit of the refusal is committed.
            try:
                offer = await consent.join_support_session(
                    db, join_code=message.join_code, device_public_key=self.device_key,
                    platform=self.platform, server_key=self.runtime.signing_key,
                    announced=self.announced, technician_attached=self._technician_here)
            except AgentRefused as exc:
                refused = exc
        if refused is not None and refused.code == "capability.unavailable":
            await self._tell_technician(refused)
        if refused is not None or offer is None:
            self.join_failures += 1
            code = refused.code if refused else "join_code.invalid"
            close = self.join_failures >= MAX_JOIN_TRIES
            raise WireRefusal(code, refused.message if refused else "join failed",
                              ref=message.id, close=close)
        await self.bind(offer.support_session)
        await self.send_offer(offer)
        await self.runtime.announce_state(offer.support_session, "offered", to=(Peer.TECHNICIAN,))

    async def _technician_here(self, support_session_id: uuid.UUID) -> bool:
        return await self.runtime.hub.is_attached(str(support_session_id), Peer.TECHNICIAN)

    async def _tell_technician(self, refused: AgentRefused) -> None:
        """The device could not take the session as requested: the technician hears why (the
        session stays requested; a device that can deliver it may still join)."""
        if refused.sid is not None:
            await self.runtime.hub.send(str(refused.sid), Peer.TECHNICIAN, BusMessage.text(
                error_text(refused.code, f"a device tried to join ({refused.message}); the "
                           "person was not asked, and the code still works for a device that "
                           "can deliver what this session asks")))

    async def consent(self, message: ConsentDecisionMessage) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        refused: AgentRefused | None = None
        result: SupportSession | None = None
        async with self.runtime.sessionmaker() as db, db.begin():
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- bound sessions exist
            try:
                result = await receipts.record_consent(db, support_session=found,
                                                       receipt=message.receipt,
                                                       server_key=self.runtime.signing_key)
            except AgentRefused as exc:
                refused = exc
        if refused is not None and service.is_final(found):
            # The receipt did not answer the offer: the session is over. The agent hears why
            # first, then the end.
            await self.refuse(WireRefusal(refused.code, refused.message, ref=message.id))
            await self.runtime.announce_end(found)
            return
        if refused is not None or result is None:
            raise WireRefusal(refused.code if refused else "receipt.malformed",
                              refused.message if refused else "", ref=message.id)
        if result.state == S.ACTIVE:
            self.active = True
            await self.runtime.announce_state(result, "consented")
            await self.runtime.announce_technician_ready(result)
        else:
            await self.runtime.announce_end(result)

    async def extension_answer(self, message: SessionExtendAnswer) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        refused: AgentRefused | None = None
        async with self.runtime.sessionmaker() as db, db.begin():
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- bound sessions exist
            try:
                row = await extensions.record_extension_answer(
                    db, support_session=found, receipt=message.receipt,
                    server_key=self.runtime.signing_key)
            except AgentRefused as exc:
                refused = exc
            except DomainError as exc:
                refused = AgentRefused(f"session.{exc.code}", exc.message)
        if refused is not None:
            raise WireRefusal(refused.code, refused.message, ref=message.id)
        accepted = row.state == "accepted"
        await self.runtime.announce_extension(
            found, approved=accepted, decided_by=Party.END_USER, grant=None,
            reason="accepted on the device" if accepted else "not accepted on the device",
            to=(Peer.TECHNICIAN,))
        if accepted:
            await self.runtime.announce_state(found, "extended")

    async def activity(self, message: SessionActivity) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        last = self.activity_seq
        expected = (last if last is not None else (message.seq or 1) - 1) + 1
        if message.seq is not None:
            self.activity_seq = max(expected - 1, message.seq)

        async def work(db: AsyncSession) -> None:
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- bound sessions exist
            if message.seq is not None and message.seq != expected:
                await during.record_activity_gap(db, support_session=found, expected=expected,
                                                 received=message.seq, actor=self.actor())
            await during.report_activity(db, support_session=found, message=message,
                                         actor=self.actor())

        try:
            await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal("session.not_active", exc.message, ref=message.id) from exc

    async def report_mismatch(self, message: SessionReportMismatch) -> None:
        """The device disputes the one report (after the end, while its connection is held for
        the summary): on record, with what it says differs."""
        sid = self._check_bound(message.support_session_id, message.id)

        async def work(db: AsyncSession) -> None:
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- bound sessions exist
            await during.record_report_mismatch(db, support_session=found,
                                                differences=message.differences,
                                                actor=self.actor())

        await self.runtime.in_transaction(work)

    async def recording_key(self, message: RecordingKey) -> None:
        sid = self._check_bound(message.support_session_id, message.id)

        async def work(db: AsyncSession) -> None:
            await recordings.store_recording_key(db, support_session_id=sid, epoch=message.epoch,
                                                 sealed_keys=message.sealed_keys,
                                                 actor=self.actor())

        try:
            await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal(f"session.{exc.code}", exc.message, ref=message.id) from exc

    async def revoke(self, message: CapabilityRevoke, raw: str) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        # As for session.end: the device speaks for the person or itself, so the audit never
        # records a revocation it sent as the technician's or a supervisor's.
        revoked_by = message.revoked_by if message.revoked_by in (Party.END_USER, Party.AGENT) \
            else Party.AGENT

        async def work(db: AsyncSession) -> None:
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- bound sessions exist
            await during.revoke_capability(db, support_session=found,
                                           capability=message.capability,
                                           revoked_by=revoked_by, reason=message.reason,
                                           actor=self.actor())

        try:
            await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal("session.not_active", exc.message, ref=message.id) from exc
        await self.relay_unchanged(raw, message.support_session_id, message.id)

    async def end(self, message: SessionEnd) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        # The device speaks for the person or for itself, never for the technician or server.
        ended_by = message.ended_by if message.ended_by in (Party.END_USER, Party.AGENT) \
            else Party.AGENT
        ended = await self.runtime.end(sid, ended_by=ended_by, reason=message.reason,
                                       detail=message.detail, actor=self.actor())
        if ended is None and self.device_id is not None:
            await self.unbind(offer_next=True)
            raise WireRefusal("session.not_active", "the support session already ended",
                              ref=message.id)
        if ended is None:
            await self.conn.close(CLOSE_POLICY, "support session already ended")

    # -- leaving ---------------------------------------------------------------------------------

    async def detach(self) -> None:
        if self.device_subscription is not None:
            subscription, self.device_subscription = self.device_subscription, None
            await subscription.cancel()
        if self.attachment is None:
            return
        sid = self.support_session_id
        assert sid is not None  # noqa: S101 -- attached connections are bound
        if self.revoked_close:
            # The organisation revoked the device: its session ends now, no grace period.
            await self.runtime.end(sid, ended_by=Party.SERVER, reason=EndReason.DEVICE_REVOKED,
                                   detail="device_revoked")
            if self.attachment is None:
                return  # unbound meanwhile
        attachment, self.attachment = self.attachment, None

        async def state(db: AsyncSession) -> SupportSession | None:
            return await db.get(SupportSession, sid)

        found = await self.runtime.in_transaction(state)
        live = found is not None and not service.is_final(found)
        lost = await self.runtime.hub.detach(attachment, session_live=live)
        if lost and found is not None:
            self.conn.log.info("agent left live support session %s; grace period starts", sid)
            await self.runtime.announce_state(found, "agent_lost", to=(Peer.TECHNICIAN,))
