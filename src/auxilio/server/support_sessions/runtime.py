"""The support-session side of the running server: state changes that must also reach the
connected peers. Each method commits its transaction first and tells the peers after, so a peer
never hears of a change that was rolled back (Zulip's "publish after commit")."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.frames import (
    EndReason,
    ErrorMessage,
    Party,
    SessionEnd,
    SessionExtendDecision,
    SessionReportMessage,
    SessionStateMessage,
    SessionWarning,
    encode_message,
)
from auxilio.protocol.report import SessionReport
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import Capability, SignedDocument
from auxilio.server.context import Actor
from auxilio.server.relay.bus import BusMessage
from auxilio.server.relay.hub import Hub, Peer
from auxilio.server.settings import Settings
from auxilio.server.support_sessions import clock, during, service
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.surveys.invite import send_survey_invite

log = logging.getLogger("auxilio.support_sessions")
T = TypeVar("T")


def message_id() -> str:
    return secrets.token_urlsafe(9)


def error_text(code: str, message: str, ref: str | None = None) -> str:
    return encode_message(ErrorMessage(id=message_id(), code=code, message=message[:4000], ref=ref))


def end_text(support_session: SupportSession) -> str:
    return encode_message(
        SessionEnd(
            id=message_id(),
            support_session_id=str(support_session.id),
            ended_by=Party(support_session.ended_by or Party.SERVER),
            reason=EndReason(support_session.end_reason or EndReason.POLICY),
            detail=support_session.end_detail or "",
        )
    )


def state_text(
    support_session: SupportSession, reason: str = "", *, wait_seconds: int | None = None
) -> str:
    return encode_message(
        SessionStateMessage(
            id=message_id(),
            support_session_id=str(support_session.id),
            state=SupportSessionState(support_session.state),
            changed_at=clock.now(),
            not_after=support_session.not_after,
            granted=tuple(Capability(c) for c in support_session.granted_capabilities),
            reason=reason,
            wait_seconds=wait_seconds,
        )
    )


# Ends after which the technician writes the summary straight away (their client asks for it);
# after any other (access revoked, technician lost, a protocol error...) none is coming now.
_SUMMARY_FOLLOWS = frozenset({
    str(EndReason.USER_ENDED), str(EndReason.TECHNICIAN_ENDED), str(EndReason.SUPERVISOR_ENDED),
    str(EndReason.TIME_LIMIT),
})  # fmt: skip


@dataclass(eq=False)
class TechnicianLink:
    """A technician WebSocket on this node and the token it authenticated with: the scheduler
    re-checks the token every tick, since a connection outlives the check made at attach."""

    support_session_id: uuid.UUID
    token_id: uuid.UUID
    # Stop serving the connection: an ``error`` with this code, then close.
    stop: Callable[[str, str], Awaitable[None]]


@dataclass
class SupportSessionRuntime:
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: Hub
    settings: Settings
    signing_key: Ed25519PrivateKey
    technician_links: set[TechnicianLink] = field(default_factory=set)
    # Ended sessions whose agent waits for the summary: the timer that lets it go anyway.
    _report_waits: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Future[None]] = field(default_factory=set)

    async def in_transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.sessionmaker() as db, db.begin():
            return await work(db)

    # -- telling the peers -----------------------------------------------------------------------

    async def announce_end(self, support_session: SupportSession) -> None:
        """``session.end`` to both peers and the one report to the agent; then the technician's
        connection closes. The agent's stays open until the summary arrives (the report is sent
        again with it) or ``report_wait_seconds`` pass, so the person gets the summary too."""
        sid = str(support_session.id)
        # A technician who is gone (lost, killed) writes no summary now: no reason to hold
        # the person's connection for one; the summary reaches their report later via the API.
        technician_here = await self.hub.is_attached(sid, Peer.TECHNICIAN)
        # Before the peers hear of the end: whoever sees it may export the recording at once
        # (the writer keeps up to 64 KiB in memory until its session is forgotten).
        self.hub.flush_recording(sid)
        await self.hub.send_both(sid, BusMessage.text(end_text(support_session)))
        await self.hub.send(sid, Peer.TECHNICIAN, BusMessage.close(1000, "support session ended"))
        # Before the report: the agent's wait for it ends with the report.
        await send_survey_invite(self, support_session.id)
        report = await self._send_report(support_session.id)
        self.hub.forget(sid)
        if (
            technician_here
            and support_session.end_reason in _SUMMARY_FOLLOWS
            and report is not None
            and report.summary_state == "pending"
        ):
            loop = asyncio.get_running_loop()
            self._report_waits[sid] = loop.call_later(
                self.settings.report_wait_seconds,
                lambda: self._background(self._close_agent(sid)),
            )
        else:
            self._close_agent_soon(sid)

    async def announce_ends(self, ended: list[SupportSession]) -> None:
        """Many sessions ended at once (an emergency): ``session.end`` to every peer of every
        session and the technicians' connections closed first, so that all of them stop within
        the same moment; then, in the background, each agent's report as ``announce_end`` sends
        it, and its connection closes after the dispute window. These ends never wait for a
        summary (they are not in ``_SUMMARY_FOLLOWS``)."""
        for support_session in ended:
            sid = str(support_session.id)
            self.hub.flush_recording(sid)
            await self.hub.send_both(sid, BusMessage.text(end_text(support_session)))
            await self.hub.send(sid, Peer.TECHNICIAN,
                                BusMessage.close(1000, "support session ended"))
        self._background(self._reports_after_ends([row.id for row in ended]))

    async def _reports_after_ends(self, ids: list[uuid.UUID]) -> None:
        for support_session_id in ids:
            sid = str(support_session_id)
            try:
                await self._send_report(support_session_id)
            except Exception:  # one report that cannot be built must not keep the rest back
                log.exception("no report for support session %s after its end", sid)
            self.hub.forget(sid)
            self._close_agent_soon(sid)

    async def announce_report(self, support_session: SupportSession) -> None:
        """The summary was written: the agent gets the report again, with it, and is let go."""
        sid = str(support_session.id)
        waiting = self._report_waits.pop(sid, None)
        if waiting is not None:
            waiting.cancel()
        await self._send_report(support_session.id)
        self._close_agent_soon(sid)

    def _close_agent_soon(self, sid: str) -> None:
        """Close the agent's connection once it has had ``report_dispute_seconds`` to dispute
        the report it was just sent (``session.report.mismatch``)."""
        loop = asyncio.get_running_loop()
        self._report_waits[sid] = loop.call_later(
            self.settings.report_dispute_seconds,
            lambda: self._background(self._close_agent(sid)),
        )

    async def _send_report(self, support_session_id: uuid.UUID) -> SessionReport | None:
        async def build(db: AsyncSession) -> SessionReport | None:
            found = await db.get(SupportSession, support_session_id)
            return None if found is None else await during.build_session_report(
                db, support_session=found)  # fmt: skip

        report = await self.in_transaction(build)
        if report is not None:
            sid = str(support_session_id)
            signed = sign_document(self.signing_key, report.model_dump(mode="json"),
                                   kind=DocumentKind.SESSION_REPORT)  # fmt: skip
            text = encode_message(
                SessionReportMessage(id=message_id(), support_session_id=sid, report=signed)
            )
            await self.hub.send(str(support_session_id), Peer.AGENT, BusMessage.text(text))
        return report

    async def _close_agent(self, sid: str) -> None:
        self._report_waits.pop(sid, None)
        await self.hub.send(sid, Peer.AGENT, BusMessage.close(1000, "support session ended"))

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announce_state(
        self,
        support_session: SupportSession,
        reason: str = "",
        *,
        to: tuple[Peer, ...] = tuple(Peer),
        wait_seconds: int | None = None,
    ) -> None:
        text = state_text(support_session, reason, wait_seconds=wait_seconds)
        for peer in to:
            await self.hub.send(str(support_session.id), peer, BusMessage.text(text))

    async def announce_technician_ready(self, support_session: SupportSession) -> None:
        """Start (or restart) the E2E handshake: only when active and both peers are here.
        An active session whose technician is away tells the agent so instead."""
        sid = str(support_session.id)
        if support_session.state != SupportSessionState.ACTIVE:
            return
        if not await self.hub.is_attached(sid, Peer.AGENT):
            return
        if await self.hub.is_attached(sid, Peer.TECHNICIAN):
            await self.announce_state(support_session, "technician_ready", to=(Peer.AGENT,))
            return
        # The person consented (or the agent came back) while the technician is away: the
        # notice they may have missed in the prompt, with what is left of the grace period.
        gone = self.hub.technician_gone_seconds(sid)
        left = (
            None if gone is None else max(0, round(self.settings.technician_grace_seconds - gone))
        )
        await self.announce_state(
            support_session, "technician_lost", to=(Peer.AGENT,), wait_seconds=left
        )

    async def announce_extension(
        self,
        support_session: SupportSession,
        *,
        approved: bool,
        decided_by: Party,
        grant: SignedDocument | None,
        reason: str,
        to: tuple[Peer, ...] = tuple(Peer),
    ) -> None:
        """An extension decided. With a ``grant`` it goes to the device for the person's answer
        (the technician is told it awaits them); without one it is the outcome."""
        text = encode_message(
            SessionExtendDecision(
                id=message_id(),
                support_session_id=str(support_session.id),
                approved=approved,
                decided_by=decided_by,
                new_not_after=support_session.not_after if approved and grant is None else None,
                grant=grant,
                reason=reason[:16000],
            )
        )
        if grant is not None:
            await self.hub.send(str(support_session.id), Peer.AGENT, BusMessage.text(text))
            await self.announce_state(
                support_session, "extension_awaiting_person", to=(Peer.TECHNICIAN,)
            )
            return
        for peer in to:
            await self.hub.send(str(support_session.id), peer, BusMessage.text(text))

    async def announce_warning(self, support_session: SupportSession, remaining: int) -> None:
        assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
        text = encode_message(
            SessionWarning(
                id=message_id(),
                support_session_id=str(support_session.id),
                ends_at=support_session.not_after,
                remaining_seconds=remaining,
            )
        )
        await self.hub.send_both(str(support_session.id), BusMessage.text(text))

    # -- ending ----------------------------------------------------------------------------------

    async def end(
        self,
        support_session_id: uuid.UUID,
        *,
        ended_by: Party,
        reason: EndReason,
        detail: str = "",
        actor: Actor | None = None,
        state: SupportSessionState = SupportSessionState.ENDED,
    ) -> SupportSession | None:
        """End a live session (no-op on a final one) and tell both peers."""

        async def work(db: AsyncSession) -> SupportSession | None:
            found = await service.get_for_update(db, support_session_id)
            if found is None or service.is_final(found):
                return None
            return await service.end_support_session(
                db,
                support_session=found,
                ended_by=ended_by,
                reason=reason,
                detail=detail,
                actor=actor or Actor.system(found.organisation_id),
                state=state,
            )

        ended = await self.in_transaction(work)
        if ended is not None:
            log.info("support session %s ended: %s %s %s", ended.id, ended_by, reason, detail)
            await self.announce_end(ended)
        return ended

    async def end_unfinished(self) -> int:
        """On start: this node's live sessions lost their connections with the old process."""

        async def work(db: AsyncSession) -> list[uuid.UUID]:
            rows = await service.list_for_node(db, node_id=self.settings.node_id)
            return [row.id for row in rows]

        count = 0
        for sid in await self.in_transaction(work):
            ended = await self.end(
                sid,
                ended_by=Party.SERVER,
                reason=EndReason.CONNECTION_LOST,
                detail="server_restart",
            )
            count += ended is not None
        if count:
            log.warning("ended %d support sessions left unfinished by a previous run", count)
        return count


def remaining_seconds(support_session: SupportSession, now: datetime) -> float:
    assert support_session.not_after is not None  # noqa: S101 -- callers check the state
    return (support_session.not_after - now).total_seconds()
