"""Time in support sessions: warnings, the hard stop, idleness, lost agents, stale requests.

One asyncio task per node, started in the app's lifespan; it looks after the sessions whose
``node_id`` is this node. Each decision re-reads the row under lock inside ``runtime.end``, so a
session that a peer ended a moment ago is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.protocol.frames import EndReason, Party
from auxilio.protocol.states import SupportSessionState
from auxilio.server.support_sessions import clock, during, service
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime

log = logging.getLogger("auxilio.support_sessions.scheduler")
S = SupportSessionState

# The agent's own prompt timer runs first; this margin lets its receipt (with "timed_out"
# decisions) arrive before the server gives up on a device that vanished mid-prompt.
CONSENT_MARGIN = timedelta(seconds=30)


class Scheduler:
    def __init__(self, runtime: SupportSessionRuntime) -> None:
        self.runtime = runtime
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="support-session-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        every = self.runtime.settings.support_session_tick_seconds
        while True:
            await asyncio.sleep(every)
            try:
                await self.tick()
            except Exception:  # a failed round is retried at the next tick; never kill the loop
                log.exception("support session scheduler round failed")

    async def tick(self) -> None:
        async def load(db: AsyncSession) -> list[SupportSession]:
            return await service.list_for_node(db, node_id=self.runtime.settings.node_id)

        for support_session in await self.runtime.in_transaction(load):
            await self._check(support_session)

    async def _check(self, support_session: SupportSession) -> None:
        now = clock.now()
        state = support_session.state
        sid = support_session.id
        hub = self.runtime.hub
        grace = self.runtime.settings.agent_grace_seconds
        if state == S.REQUESTED:
            if now >= support_session.created_at + service.JOIN_CODE_TTL:
                await self.runtime.end(sid, ended_by=Party.SERVER, reason=EndReason.POLICY,
                                       detail="join_code_expired")
            return
        gone = hub.agent_gone_seconds(str(sid))
        if gone is not None and gone >= grace:
            await self.runtime.end(sid, ended_by=Party.SERVER,
                                   reason=EndReason.CONNECTION_LOST, detail="device_lost")
            return
        if state == S.AWAITING_CONSENT:
            offered = support_session.offered_at or support_session.created_at
            deadline = offered + timedelta(seconds=support_session.consent_timeout_seconds)
            if now >= deadline + CONSENT_MARGIN:
                await self.runtime.end(sid, ended_by=Party.SERVER,
                                       reason=EndReason.CONSENT_TIMED_OUT, state=S.EXPIRED,
                                       detail="no_answer_from_device")
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
                await self.runtime.end(sid, ended_by=Party.SERVER, reason=EndReason.POLICY,
                                       detail="idle_timeout")
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
