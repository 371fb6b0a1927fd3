"""Time in support sessions: warnings, the hard stop, idleness, lost agents and technicians,
stale requests, and technicians who lost their access since the session began (``access.py``).

One asyncio task per node, started in the app's lifespan; it looks after the sessions whose
``node_id`` is this node. Each decision re-reads the row under lock inside ``runtime.end``, so a
session that a peer ended a moment ago is left alone.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.protocol.frames import EndReason, Party
from auxilio.protocol.states import SupportSessionState
from auxilio.server.identity import auth
from auxilio.server.periodic import PeriodicJob
from auxilio.server.support_sessions import clock, during, service
from auxilio.server.support_sessions.access import AccessCheck
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime, TechnicianLink

log = logging.getLogger("auxilio.support_sessions.scheduler")
S = SupportSessionState

# The agent's own prompt timer runs first; this margin lets its receipt (with "timed_out"
# decisions) arrive before the server gives up on a device that vanished mid-prompt.
CONSENT_MARGIN = timedelta(seconds=30)


class Scheduler:
    def __init__(self, runtime: SupportSessionRuntime) -> None:
        self.runtime = runtime
        every = runtime.settings.support_session_tick_seconds
        self._job = PeriodicJob("support-session-scheduler", every, self.tick, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def tick(self) -> None:
        async def load(db: AsyncSession) -> list[tuple[SupportSession, str | None]]:
            rows = await service.list_for_node(db, node_id=self.runtime.settings.node_id)
            check = AccessCheck(db, clock.now())
            return [(row, await check.lost(row)) for row in rows]

        for support_session, lost in await self.runtime.in_transaction(load):
            if lost is not None:
                await self._end_for_access(support_session.id, lost)
            else:
                await self._check(support_session)
        await self._check_links()

    async def _end_for_access(self, support_session_id: uuid.UUID, detail: str) -> bool:
        ended = await self.runtime.end(
            support_session_id,
            ended_by=Party.SERVER,
            reason=EndReason.ACCESS_REVOKED,
            detail=detail,
        )
        if ended is not None:
            log.warning(
                "support session %s ended: the technician lost access (%s)",
                support_session_id,
                detail,
            )
        return ended is not None

    async def _check_links(self) -> None:
        """Technician connections on this node whose token stopped working since attach."""
        links = list(self.runtime.technician_links)
        if not links:
            return

        async def problems(db: AsyncSession) -> list[tuple[TechnicianLink, str]]:
            found = []
            for link in links:
                problem = await auth.token_problem(db, token_id=link.token_id)
                if problem is not None:
                    found.append((link, problem))
            return found

        for link, problem in await self.runtime.in_transaction(problems):
            if problem in ("revoked", "inactive_user"):
                # The session may live on another node: end it from here, over the bus.
                detail = "token_revoked" if problem == "revoked" else "user_deactivated"
                if await self._end_for_access(link.support_session_id, detail):
                    continue  # session.end has closed the connection already
            # An expired (or vanished) token ends this connection, not the session: the
            # technician may log in again and attach with a fresh token.
            self.runtime.technician_links.discard(link)
            await link.stop(
                f"auth.token_{problem}",
                "the token this connection authenticated with no longer works",
            )

    async def _check(self, support_session: SupportSession) -> None:
        now = clock.now()
        state = support_session.state
        sid = support_session.id
        hub = self.runtime.hub
        grace = self.runtime.settings.agent_grace_seconds
        # In every live state: a requested session's code cannot be used without its technician,
        # and a person must not wait in a prompt or a session for somebody who is gone.
        away = hub.technician_gone_seconds(str(sid))
        if away is not None and away >= self.runtime.settings.technician_grace_seconds:
            await self.runtime.end(
                sid,
                ended_by=Party.SERVER,
                reason=EndReason.TECHNICIAN_LOST,
                detail="technician_connection_lost",
            )
            return
        if state == S.REQUESTED:
            if now >= support_session.created_at + service.JOIN_CODE_TTL:
                # An unattended request has no code: its device never came for the offer.
                detail = ("device_not_reached" if support_session.mode == "unattended"
                          else "join_code_expired")
                await self.runtime.end(
                    sid, ended_by=Party.SERVER, reason=EndReason.POLICY, detail=detail
                )
            return
        gone = hub.agent_gone_seconds(str(sid))
        if gone is not None and gone >= grace:
            await self.runtime.end(
                sid, ended_by=Party.SERVER, reason=EndReason.CONNECTION_LOST, detail="device_lost"
            )
            return
        if state == S.AWAITING_CONSENT:
            offered = support_session.offered_at or support_session.created_at
            deadline = offered + timedelta(seconds=support_session.consent_timeout_seconds)
            if now >= deadline + CONSENT_MARGIN:
                await self.runtime.end(
                    sid,
                    ended_by=Party.SERVER,
                    reason=EndReason.CONSENT_TIMED_OUT,
                    state=S.EXPIRED,
                    detail="no_answer_from_device",
                )
            return
        not_after = support_session.not_after
        if not_after is None:
            return
        if now >= not_after:
            await self.runtime.end(sid, ended_by=Party.SERVER, reason=EndReason.TIME_LIMIT)
            return
        idle_limit = support_session.idle_timeout_seconds
        if idle_limit:
            idle = hub.idle_seconds(str(sid))
            if idle is None and support_session.activated_at is not None:
                idle = (now - support_session.activated_at).total_seconds()
            if idle is not None and idle >= idle_limit:
                await self.runtime.end(
                    sid, ended_by=Party.SERVER, reason=EndReason.POLICY, detail="idle_timeout"
                )
                return
        warn_at = not_after - timedelta(seconds=support_session.warn_before_seconds)
        if support_session.warned_at is None and now >= warn_at:
            await self._warn(support_session.id)

    async def _warn(self, support_session_id: uuid.UUID) -> None:
        async def work(db: AsyncSession) -> tuple[SupportSession, int] | None:
            found = await service.get_for_update(db, support_session_id)
            if found is None or found.state != S.ACTIVE or found.warned_at is not None:
                return None
            return found, await during.mark_warned(db, support_session=found)

        warned = await self.runtime.in_transaction(work)
        if warned is not None:
            await self.runtime.announce_warning(*warned)
