"""The ticket queue job: tickets that wait for a technician with their skill in working hours are
routed again every ``ticket_queue_seconds``, so the first such technician to come on duty takes
them. One asyncio task per node; rows are locked while routed, so two nodes never assign the same
ticket twice (``skip_locked`` on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.server.tickets.assignment import assign_waiting_tickets

log = logging.getLogger("auxilio.tickets.queue")


class TicketQueue:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], every: float) -> None:
        self._sessionmaker = sessionmaker
        self._every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ticket-queue")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> int:
        async with self._sessionmaker() as db, db.begin():
            return await assign_waiting_tickets(db)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                assigned = await self.run_once()
            except Exception:  # a failed round is retried at the next one; never kill the loop
                log.exception("ticket queue round failed")
                continue
            if assigned:
                log.info("ticket queue: %d waiting ticket(s) assigned", assigned)
