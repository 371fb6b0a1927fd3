"""The automated runs' round: every few seconds, on every node, due runs of online devices are
checked again, signed and forwarded (``sending.send_due``); rows are locked and skipped when
another node holds them, so a run is sent once."""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.server.automation import sending
from auxilio.server.devices.channel import forward_to_device, online_devices
from auxilio.server.periodic import PeriodicJob
from auxilio.server.relay.bus import Bus

log = logging.getLogger("auxilio.automation.scheduler")

ROUND_SECONDS = 5.0


class AutomationScheduler:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, bus: Bus,
        server_key: Ed25519PrivateKey, every: float = ROUND_SECONDS,
    ) -> None:  # fmt: skip
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._key = server_key
        self._job = PeriodicJob("automation-scheduler", every, self.run_once, log)

    def start(self) -> None:
        self._job.start()

    async def stop(self) -> None:
        await self._job.stop()

    async def run_once(self) -> int:
        """One round; how many orders were forwarded to a device."""
        async with self._sessionmaker() as db, db.begin():
            online = await online_devices(self._bus, await sending.due_device_ids(db))
            outgoing = await sending.send_due(db, server_key=self._key, online=online)
        # After the commit: the device's answer must find the run "sent".
        forwarded = 0
        for item in outgoing:
            if await forward_to_device(self._bus, item.device_id, item.message):
                forwarded += 1
            else:  # gone in between: no answer will come, the run expires (no_result)
                log.warning("automated run order for device %s found no connection",
                            item.device_id)  # fmt: skip
        return forwarded
