"""The agent's end of the E2E channel: handshake, then sealing and opening application messages.

A fresh ephemeral key for every ``technician_ready`` (a technician who attaches again gets new
keys); the technician's key is accepted only as named in the verified grant (``AgentOffer``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.agent.connection import ConnectionLost, Link
from auxilio.crypto.e2e import E2ESession, SessionKeys
from auxilio.crypto.grants import Grant
from auxilio.crypto.handshake import AgentOffer, Handshake
from auxilio.protocol.app import (
    CHANNEL_OF,
    AppMessage,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import E2EAccept


class E2EChannel:
    def __init__(self, link: Link, *, device_key: Ed25519PrivateKey) -> None:
        self._link = link
        self._device_key = device_key
        self._offer: AgentOffer | None = None
        self._session: E2ESession | None = None

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def keys(self) -> SessionKeys | None:
        """The current epoch's keys (sealed to the auditor key in a recorded session)."""
        return self._session.keys if self._session is not None else None

    def reset(self) -> None:
        self._offer = None
        self._session = None

    async def start(self, grant: Grant) -> None:
        """Send ``e2e.hello`` with a new ephemeral key, signed by the device key."""
        self.reset()
        self._offer = Handshake.agent_offer(device_key=self._device_key, grant=grant)
        await self._link.send(self._offer.hello)

    async def accept(self, message: E2EAccept) -> bool:
        """Complete the handshake and send ``e2e.confirm``; ``False`` if no hello is pending.
        Raises ``E2EError`` when the technician's key or confirmation is wrong."""
        if self._offer is None:
            return False
        offer, self._offer = self._offer, None
        session, confirm = offer.complete(message)
        await self._link.send(confirm)
        self._session = session
        return True

    def open(self, frame: bytes) -> tuple[ChannelId, AppMessage] | None:
        """The application message in ``frame``; ``None`` before the channel is set up. Raises
        ``E2EError`` (replayed, out of order, tampered, truncated, too large) or
        ``ProtocolError`` (authentic but not a valid application message)."""
        if self._session is None:
            return None
        channel, plaintext = self._session.open(frame)
        return channel, decode_app_message(plaintext)

    async def send(self, message: AppMessage) -> bool:
        """Seal and send; ``False`` when there is no channel or the connection is gone."""
        if self._session is None:
            return False
        frame = self._session.seal(CHANNEL_OF[type(message)], encode_app_message(message))
        try:
            await self._link.send_binary(frame)
        except ConnectionLost:
            return False
        return True
