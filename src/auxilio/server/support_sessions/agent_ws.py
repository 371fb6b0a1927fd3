"""``/ws/agent``: the device's side (docs/support-sessions.md, steps 2, 3, 5 and 6)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import KeyEncodingInvalid, SignatureInvalid
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key, fingerprint
from auxilio.crypto.signing import verify_agent_challenge
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHeartbeat,
    AgentHello,
    CapabilityRevoke,
    ConsentDecisionMessage,
    ControlMessage,
    E2EConfirm,
    E2EHello,
    Party,
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
from auxilio.server.context import Actor
from auxilio.server.errors import DomainError
from auxilio.server.identity.ratelimit import Limited
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.epochs import recording_epoch
from auxilio.server.relay.bus import BusMessage
from auxilio.server.relay.connection import CLOSE_POLICY
from auxilio.server.relay.hub import Peer
from auxilio.server.support_sessions import clock, consent, during, extensions, service
from auxilio.server.support_sessions.consent import AgentRefused, Offer
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import end_text, error_text, message_id, state_text
from auxilio.server.support_sessions.ws import PeerHandler, WireRefusal

S = SupportSessionState
MAX_JOIN_TRIES = 5
# How long after a lost session a reconnecting agent is still told that it ended.
LOST_NOTICE = timedelta(minutes=10)


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
        self.conn.authenticated()
        self.conn.log.info("agent authenticated (device key %s)", self.device_key[:12])
        await self.resume()
        return True

    async def resume(self) -> None:
        """A reconnecting agent: back into its live session, or told that it ended."""

        async def find(db: AsyncSession) -> tuple[SupportSession | None, SupportSession | None]:
            live = await service.find_for_device(db, device_public_key=self.device_key)
            if live is not None:
                return live, None
            lost = await service.find_lost_for_device(
                db, device_public_key=self.device_key, since=clock.now() - LOST_NOTICE)
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
        self.attachment = await self.runtime.hub.attach(self.sid, Peer.AGENT, self.conn)

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
            return
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
                result = await consent.record_consent(db, support_session=found,
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
        if ended is None:
            await self.conn.close(CLOSE_POLICY, "support session already ended")

    # -- leaving ---------------------------------------------------------------------------------

    async def detach(self) -> None:
        if self.attachment is None:
            return
        attachment, self.attachment = self.attachment, None
        sid = self.support_session_id
        assert sid is not None  # noqa: S101 -- attached connections are bound

        async def state(db: AsyncSession) -> SupportSession | None:
            return await db.get(SupportSession, sid)

        found = await self.runtime.in_transaction(state)
        live = found is not None and not service.is_final(found)
        lost = await self.runtime.hub.detach(attachment, session_live=live)
        if lost and found is not None:
            self.conn.log.info("agent left live support session %s; grace period starts", sid)
            await self.runtime.announce_state(found, "agent_lost", to=(Peer.TECHNICIAN,))
