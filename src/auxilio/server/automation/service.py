"""Automated runs on the server: scheduling, sending to the device, recording the signed result
(docs/unattended.md, "Automated runs")."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.protocol.types import SignedDocument
from auxilio.server.devices.models import Device


async def record_result(
    db: AsyncSession, *, device: Device, run_id: str, signed: SignedDocument
) -> None:
    """Verify and store the device-signed outcome of one run (called by the device's WS)."""
    raise NotImplementedError
