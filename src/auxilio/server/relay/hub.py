"""The relay hub: which connection stands for which peer of which support session.

Transport only: the hub knows support session ids as opaque strings and the two peers
(``agent``, ``technician``); what a session may do is decided elsewhere. Delivery goes through
the bus (topic per session and peer), so the same code joins peers on one node or, with a shared
bus, on several. The hub also keeps the per-node facts the scheduler needs: when a session last
relayed a frame and since when each of its peers has been gone, and, for a recorded session,
the file its frames are appended to (``recording.py``; ciphertext only).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from auxilio.server.relay.bus import Bus, BusMessage, MessageKind, Subscription
from auxilio.server.relay.connection import Connection, ConnectionGone
from auxilio.server.relay.recording import RecordingWriter, RecordKind, file_name


class Peer(StrEnum):
    AGENT = "agent"
    TECHNICIAN = "technician"

    @property
    def other(self) -> Peer:
        return Peer.TECHNICIAN if self is Peer.AGENT else Peer.AGENT


def topic(support_session_id: str, peer: Peer) -> str:
    return f"support_session:{support_session_id}:{peer}"


@dataclass
class _Track:
    last_frame: float = field(default_factory=time.monotonic)
    # Since when each peer that left a live session has been missing (monotonic clock).
    lost_at: dict[Peer, float] = field(default_factory=dict)


class Attachment:
    """A connection subscribed as one peer of a support session."""

    def __init__(self, hub: Hub, support_session_id: str, peer: Peer, conn: Connection) -> None:
        self.hub = hub
        self.support_session_id = support_session_id
        self.peer = peer
        self.conn = conn
        self._subscription: Subscription | None = None

    async def deliver(self, message: BusMessage) -> None:
        if message.kind is MessageKind.CLOSE:
            await self.conn.close(message.code, str(message.data))
        elif message.kind is MessageKind.TEXT:
            await self.conn.send_text(str(message.data))
        else:
            assert isinstance(message.data, bytes)  # noqa: S101 -- BINARY always carries bytes
            await self.conn.send_bytes(message.data)

    async def cancel(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None


class Hub:
    def __init__(self, bus: Bus, *, recordings_dir: Path | None = None) -> None:
        self.bus = bus
        self.recordings_dir = recordings_dir
        self._tracks: dict[str, _Track] = {}
        self._recordings: dict[str, RecordingWriter] = {}

    async def attach(self, support_session_id: str, peer: Peer, conn: Connection) -> Attachment:
        """Subscribe ``conn`` as ``peer``; an earlier connection of the same peer is closed
        (a reconnecting agent or a technician attaching again replaces the stale one)."""
        name = topic(support_session_id, peer)
        await self.bus.publish(name, BusMessage.close(4000, "replaced by a new connection"))
        attachment = Attachment(self, support_session_id, peer, conn)
        attachment._subscription = await self.bus.subscribe(name, attachment.deliver)
        track = self._tracks.setdefault(support_session_id, _Track())
        track.lost_at.pop(peer, None)
        return attachment

    async def detach(self, attachment: Attachment, *, session_live: bool) -> bool:
        """Unsubscribe; True when that left a live session without this peer (a connection
        replaced by a newer one of the same peer leaves nobody missing)."""
        await attachment.cancel()
        if not session_live or await self.is_attached(
            attachment.support_session_id, attachment.peer
        ):
            return False
        track = self._tracks.setdefault(attachment.support_session_id, _Track())
        track.lost_at[attachment.peer] = time.monotonic()
        return True

    async def is_attached(self, support_session_id: str, peer: Peer) -> bool:
        return await self.bus.subscribers(topic(support_session_id, peer)) > 0

    async def send(self, support_session_id: str, peer: Peer, message: BusMessage) -> int:
        with contextlib.suppress(ConnectionGone):
            return await self.bus.publish(topic(support_session_id, peer), message)
        return 0

    async def send_both(self, support_session_id: str, message: BusMessage) -> None:
        for peer in Peer:
            await self.send(support_session_id, peer, message)

    async def relay(self, support_session_id: str, sender: Peer, message: BusMessage) -> int:
        """Forward a frame to the other peer and note the session as busy (not idle)."""
        self.touch(support_session_id)
        return await self.send(support_session_id, sender.other, message)

    # -- facts for the scheduler -----------------------------------------------------------------

    def touch(self, support_session_id: str) -> None:
        track = self._tracks.get(support_session_id)
        if track is None:
            self._tracks[support_session_id] = _Track()
        else:
            track.last_frame = time.monotonic()

    def idle_seconds(self, support_session_id: str) -> float | None:
        """Seconds since the last relayed frame; None when this node never relayed one."""
        track = self._tracks.get(support_session_id)
        return None if track is None else time.monotonic() - track.last_frame

    def gone_seconds(self, support_session_id: str, peer: Peer) -> float | None:
        """Seconds since ``peer`` left the live session on this node; None while it is here
        (or never was)."""
        track = self._tracks.get(support_session_id)
        lost_at = None if track is None else track.lost_at.get(peer)
        return None if lost_at is None else time.monotonic() - lost_at

    def agent_gone_seconds(self, support_session_id: str) -> float | None:
        return self.gone_seconds(support_session_id, Peer.AGENT)

    def technician_gone_seconds(self, support_session_id: str) -> float | None:
        return self.gone_seconds(support_session_id, Peer.TECHNICIAN)

    def forget(self, support_session_id: str) -> None:
        self._tracks.pop(support_session_id, None)
        writer = self._recordings.pop(support_session_id, None)
        if writer is not None:
            writer.close()

    # -- recording (ciphertext only) -------------------------------------------------------------

    def record_epoch(self, support_session_id: str, transcript: bytes) -> None:
        """A recorded session starts a new E2E epoch; its frames are appended from now on."""
        if self.recordings_dir is None:
            raise RuntimeError("this hub was built without a recordings directory")
        writer = self._recordings.get(support_session_id)
        if writer is None:
            path = self.recordings_dir / file_name(support_session_id)
            writer = self._recordings[support_session_id] = RecordingWriter(
                path, support_session_id
            )
        writer.epoch(transcript)

    def record_frame(self, support_session_id: str, sender: Peer, frame: bytes) -> None:
        writer = self._recordings.get(support_session_id)
        if writer is not None:
            kind = (
                RecordKind.AGENT_TO_TECHNICIAN
                if sender is Peer.AGENT
                else RecordKind.TECHNICIAN_TO_AGENT
            )
            writer.frame(kind, frame)

    def flush_recording(self, support_session_id: str) -> None:
        """Write out what the session's recording holds in memory, so that the file on disk is
        complete up to now (the session ended: an export may follow at once)."""
        writer = self._recordings.get(support_session_id)
        if writer is not None:
            writer.flush()

    def close_recordings(self) -> None:
        for writer in self._recordings.values():
            writer.close()
        self._recordings.clear()
