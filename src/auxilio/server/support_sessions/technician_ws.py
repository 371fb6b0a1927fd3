"""``/ws/technician``: the technician client's side (docs/support-sessions.md, steps 4 to 6)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy import Effect
from auxilio.policy.roles import Permission
from auxilio.protocol.frames import (
    CapabilityRevoke,
    ControlMessage,
    E2EAccept,
    EndReason,
    Party,
    SessionEnd,
    SessionExtendRequest,
    TechAttach,
)
from auxilio.protocol.states import SupportSessionState
from auxilio.server.context import Actor
from auxilio.server.errors import DomainError, TokenInvalid
from auxilio.server.identity.auth import actor_for, resolve_token
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.relay.connection import CLOSE_POLICY, ConnectionGone, PeerStuck
from auxilio.server.relay.hub import Peer
from auxilio.server.support_sessions import during, extensions, offering, service
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import TechnicianLink, end_text, state_text
from auxilio.server.support_sessions.ws import PeerHandler, WireRefusal

S = SupportSessionState
# How long the scheduler waits to tell a technician that their token stopped working.
STOP_WAIT_SECONDS = 1.0


class TechnicianHandler(PeerHandler):
    peer = Peer.TECHNICIAN
    technician: Actor | None = None
    token_id: uuid.UUID | None = None
    link: TechnicianLink | None = None

    def actor(self) -> Actor | None:
        return self.technician

    async def authenticate(self) -> bool:
        timeout = self.runtime.settings.ws_auth_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                attach: TechAttach | None = await self.expect(TechAttach)
        except TimeoutError:
            raise WireRefusal("auth.timeout", f"attach within {timeout:g} seconds") from None
        if attach is None:
            return False
        found = await self.runtime.in_transaction(lambda db: self._check(db, attach))
        if service.is_final(found):
            await self.send(end_text(found))
            await self.conn.close()
            return False
        self.support_session_id = found.id
        self.active = found.state == S.ACTIVE
        self.conn.authenticated()
        returning = self.runtime.hub.technician_gone_seconds(self.sid) is not None
        self.attachment = await self.runtime.hub.attach(self.sid, Peer.TECHNICIAN, self.conn)
        assert self.token_id is not None  # noqa: S101 -- set by _check
        self.link = TechnicianLink(found.id, self.token_id, self.stop_serving)
        self.runtime.technician_links.add(self.link)
        self.conn.log.info("technician attached to support session %s", self.sid)
        await self.send(state_text(found, "attached"))
        if returning:
            await self.runtime.announce_state(found, "technician_back", to=(Peer.AGENT,))
        await self.runtime.announce_technician_ready(found)
        if found.mode == "unattended" and found.state == S.REQUESTED:
            # Nobody joins an unattended session: the server offers it to the device now.
            await offering.offer(self.runtime, found.id)
        return True

    async def _check(self, db: AsyncSession, attach: TechAttach) -> SupportSession:
        try:
            token, user = await resolve_token(db, secret=attach.token)
        except TokenInvalid:
            raise WireRefusal(
                "auth.invalid_token", "the token is unknown, expired or revoked", ref=attach.id
            ) from None
        actor = actor_for(user, scopes=token.scopes, mfa_verified=token.mfa_verified)
        try:
            sid = uuid.UUID(attach.support_session_id)
        except ValueError:
            sid = None
        found = await db.get(SupportSession, sid) if sid else None
        if found is None or found.organisation_id != user.organisation_id:
            raise WireRefusal("session.not_found", "no such support session", ref=attach.id)
        if found.technician_id != user.id:
            raise WireRefusal(
                "session.not_yours",
                "this support session belongs to another technician",
                ref=attach.id,
            )
        if not authorize_permission(actor, Permission.SUPPORT_SESSION_REQUEST).allowed:
            raise WireRefusal(
                "auth.forbidden", "support_session:request is required", ref=attach.id
            )
        self.technician = actor
        self.token_id = token.id
        return found

    async def stop_serving(self, code: str, message: str) -> None:
        """The token this connection authenticated with stopped working (the scheduler saw it).

        Bounded: the scheduler calls this, and a technician too slow to take the error is
        dropped rather than holding up every other session's timers."""
        try:
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                await self.refuse(WireRefusal(code, message, close=True))
        except (TimeoutError, PeerStuck):
            await self.conn.drop(CLOSE_POLICY, code)
        except ConnectionGone:
            pass  # it went away meanwhile: served no longer, either way

    async def refresh_active(self) -> bool:
        if not self.active and self.support_session_id is not None:
            sid = self.support_session_id

            async def state(db: AsyncSession) -> str | None:
                found = await db.get(SupportSession, sid)
                return found.state if found else None

            self.active = await self.runtime.in_transaction(state) == S.ACTIVE
        return self.active

    # -- commands --------------------------------------------------------------------------------

    async def handle(self, message: ControlMessage, raw: str) -> None:
        if isinstance(message, E2EAccept):
            await self.relay_unchanged(raw, message.support_session_id, message.id)
        elif isinstance(message, SessionEnd):
            await self.end(message)
        elif isinstance(message, SessionExtendRequest):
            await self.extend(message)
        elif isinstance(message, CapabilityRevoke):
            await self.revoke(message, raw)
        else:
            raise WireRefusal(
                "protocol.unexpected_message",
                f"{message.type} is not sent by a technician",
                ref=message.id,
            )

    def _check_bound(self, support_session_id: str, ref: str) -> uuid.UUID:
        if self.support_session_id is None or support_session_id != self.sid:
            raise WireRefusal(
                "session.not_found",
                "this connection is not attached to that support session",
                ref=ref,
            )
        return self.support_session_id

    async def end(self, message: SessionEnd) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        reason = (
            message.reason
            if message.reason is EndReason.PROTOCOL_ERROR
            else EndReason.TECHNICIAN_ENDED
        )
        ended = await self.runtime.end(
            sid,
            ended_by=Party.TECHNICIAN,
            reason=reason,
            detail=message.detail,
            actor=self.technician,
        )
        if ended is None:
            await self.conn.close(CLOSE_POLICY, "support session already ended")

    async def extend(self, message: SessionExtendRequest) -> None:
        sid = self._check_bound(message.support_session_id, message.id)
        assert self.technician is not None  # noqa: S101 -- set by authenticate

        async def work(db: AsyncSession) -> tuple[SupportSession, extensions.ExtensionOutcome]:
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- attached sessions exist
            assert self.technician is not None  # noqa: S101 -- set by authenticate
            return found, await extensions.request_extension(
                db,
                support_session=found,
                seconds=message.requested_seconds,
                reason=message.reason,
                actor=self.technician,
                server_key=self.runtime.signing_key,
            )

        try:
            found, outcome = await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal(f"session.{exc.code}", exc.message, ref=message.id) from exc
        if outcome.grant is not None:
            await self.runtime.announce_extension(
                found,
                approved=True,
                decided_by=Party.SERVER,
                grant=outcome.grant,
                reason=outcome.decision.reason,
            )
        elif outcome.decision.effect is Effect.REQUIRE_APPROVAL:
            await self.send(state_text(found, "extension_pending"))
        else:
            await self.runtime.announce_extension(
                found,
                approved=False,
                decided_by=Party.SERVER,
                grant=None,
                reason=outcome.decision.reason,
            )

    async def revoke(self, message: CapabilityRevoke, raw: str) -> None:
        sid = self._check_bound(message.support_session_id, message.id)

        async def work(db: AsyncSession) -> None:
            found = await service.get_for_update(db, sid)
            assert found is not None  # noqa: S101 -- attached sessions exist
            assert self.technician is not None  # noqa: S101 -- set by authenticate
            await during.revoke_capability(
                db,
                support_session=found,
                capability=message.capability,
                revoked_by=Party.TECHNICIAN,
                reason=message.reason,
                actor=self.technician,
            )

        try:
            await self.runtime.in_transaction(work)
        except DomainError as exc:
            raise WireRefusal("session.not_active", exc.message, ref=message.id) from exc
        await self.relay_unchanged(raw, message.support_session_id, message.id)

    async def detach(self) -> None:
        if self.link is not None:
            self.runtime.technician_links.discard(self.link)
            self.link = None
        if self.attachment is None:
            return
        attachment, self.attachment = self.attachment, None
        sid = self.support_session_id

        async def state(db: AsyncSession) -> SupportSession | None:
            return await db.get(SupportSession, sid)

        found = await self.runtime.in_transaction(state)
        live = found is not None and not service.is_final(found)
        left = await self.runtime.hub.detach(attachment, session_live=live)
        if left and found is not None:
            # The grace period starts (scheduler.py); the person hears of it at once, since
            # what they write meanwhile reaches nobody.
            grace = self.runtime.settings.technician_grace_seconds
            self.conn.log.info(
                "technician left live support session %s; grace period starts", self.sid
            )
            await self.runtime.announce_state(
                found, "technician_lost", to=(Peer.AGENT,), wait_seconds=round(grace)
            )
