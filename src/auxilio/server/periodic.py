"""One background job per node that runs a round every few seconds (the support-session
scheduler, the ticket queue): started and stopped with the app, and a failed round is logged and
retried at the next one, never the end of the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class PeriodicJob:
    def __init__(
        self, name: str, every: float, round_: Callable[[], Awaitable[object]],
        log: logging.Logger,
    ) -> None:  # fmt: skip
        self._name = name
        self._every = every
        self._round = round_
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._round()
            except Exception:  # a failed round is retried at the next one; never kill the loop
                self._log.exception("%s round failed", self._name)
