"""The ticket queue job: tickets that wait for a technician with their skill in working hours are
routed again every ``ticket_queue_seconds``, so the first such technician to come on duty takes
them. One asyncio task per node; rows are locked while routed, so two nodes never assign the same
ticket twice (``skip_locked`` on PostgreSQL)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.server.periodic import PeriodicJob
from auxilio.server.tickets.assignment import assign_waiting_tickets

log = logging.getLogger("auxilio.tickets.queue")


class TicketQueue:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], every: float) -> None:
        self._sessionmaker = sessionmaker
        self._job = PeriodicJob("ticket-queue", every, self._round, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def run_once(self) -> int:
        async with self._sessionmaker() as db, db.begin():
            return await assign_waiting_tickets(db)

    async def _round(self) -> None:
        assigned = await self.run_once()
        if assigned:
            log.info("ticket queue: %d waiting ticket(s) assigned", assigned)
