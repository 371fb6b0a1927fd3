"""Reaching an enrolled device's connection, whichever node holds it (docs/unattended.md).

The node that holds an enrolled agent's connection subscribes to ``device:<id>`` on the bus (the
in-memory bus on one node, Redis across several). Anyone else reaches the device by publishing
there: a control message to forward as it is, a support session to offer, or a close. A device
is online when some node holds its topic.

Each bus message is a small JSON object:

    {"kind": "forward", "message": {...}}         a control message, sent to the agent unchanged
    {"kind": "offer", "support_session_id": "…"}  bind to this unattended session and offer it
    {"kind": "end", "support_session_id": "…"}    the session ended elsewhere (stop bound work)
    close (BusMessage.close)                      close the connection (device revoked)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from auxilio.protocol.frames import ControlMessage, encode_message
from auxilio.server.relay.bus import Bus, BusMessage

# WebSocket close code for a device the organisation revoked (4000-4999: application codes).
CLOSE_DEVICE_REVOKED = 4403


def device_topic(device_id: uuid.UUID | str) -> str:
    return f"device:{device_id}"


async def is_online(bus: Bus, device_id: uuid.UUID | str) -> bool:
    return await bus.subscribers(device_topic(device_id)) > 0


async def online_devices(bus: Bus, device_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    return {device_id for device_id in device_ids if await is_online(bus, device_id)}


async def _publish(bus: Bus, device_id: uuid.UUID | str, payload: dict[str, Any]) -> bool:
    data = orjson.dumps(payload).decode()
    return await bus.publish(device_topic(device_id), BusMessage.text(data)) > 0


async def forward_to_device(
    bus: Bus, device_id: uuid.UUID | str, message: ControlMessage
) -> bool:
    """Send ``message`` to the device's agent; False when no node holds its connection."""
    wire = orjson.loads(encode_message(message))
    return await _publish(bus, device_id, {"kind": "forward", "message": wire})


async def offer_to_device(
    bus: Bus, device_id: uuid.UUID | str, support_session_id: uuid.UUID
) -> bool:
    return await _publish(bus, device_id, {"kind": "offer",
                                           "support_session_id": str(support_session_id)})


async def close_device(bus: Bus, device_id: uuid.UUID | str, reason: str) -> bool:
    topic = device_topic(device_id)
    return await bus.publish(topic, BusMessage.close(CLOSE_DEVICE_REVOKED, reason)) > 0


def parse(message: BusMessage) -> dict[str, Any] | None:
    """The payload of a text message on a device topic (None for anything else)."""
    if not isinstance(message.data, str) or not message.data:
        return None
    try:
        payload = orjson.loads(message.data)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None
