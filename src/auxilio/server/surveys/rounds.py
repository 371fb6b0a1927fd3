"""The survey job: send surveys whose delay has passed, expire those nobody answered. One
asyncio task per node; rows are locked while changed (``skip_locked`` on PostgreSQL), so two
nodes never send or expire the same survey twice."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.server.periodic import PeriodicJob
from auxilio.server.surveys import service

log = logging.getLogger("auxilio.surveys")

# A delay is minutes or hours (policy post_session.survey.delay): a round a minute is on time.
ROUND_SECONDS = 60.0


class SurveyRounds:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], every: float = ROUND_SECONDS
    ) -> None:
        self._sessionmaker = sessionmaker
        self._job = PeriodicJob("surveys", every, self.run_once, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def run_once(self) -> tuple[int, int]:
        async with self._sessionmaker() as db, db.begin():
            sent = await service.send_due(db)
            expired = await service.expire_due(db)
        if sent or expired:
            log.info("surveys: %d sent, %d expired", sent, expired)
        return sent, expired
