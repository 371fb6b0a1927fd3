"""End-to-end encrypted channels between the technician client and the agent.

Key schedule (both sides compute it; see ``handshake.py`` for how the keys are authenticated)::

    shared     = X25519(agent_ephemeral, technician_ephemeral)
    transcript = SHA-256("auxilio-e2e-v1" || u16be(len(sid)) || sid || agent_pub || technician_pub)
    k_a2t      = HKDF-SHA256(ikm=shared, salt=transcript, info="auxilio e2e v1 agent->technician")
    k_t2a      = HKDF-SHA256(ikm=shared, salt=transcript, info="auxilio e2e v1 technician->agent")

Each binary frame on the wire is ``header(3) | counter(8, big-endian) | ciphertext | tag(16)``
with AES-256-GCM, the key of the sending direction, and::

    nonce = direction(1) || channel(1) || 0x0000 || counter(8)
    aad   = "auxilio-e2e-v1" || u16be(len(sid)) || sid || header(3) || counter(8)

Each (direction, channel) pair has its own counter starting at 0; the receiver accepts only the
next counter, so a frame replayed, reordered or dropped by the relay is detected at the next frame.
A separate counter per channel lets the relay record one channel (terminal) as a gap-free stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auxilio.crypto.errors import (
    CounterExhausted,
    FrameOutOfOrder,
    FrameReplayed,
    FrameTampered,
    FrameTooLarge,
    FrameTruncated,
)
from auxilio.protocol.binary import (
    HEADER_SIZE,
    MAX_BINARY_FRAME_BYTES,
    MAX_FRAME_PLAINTEXT,
    ChannelId,
    FrameHeader,
    parse_header,
)
from auxilio.protocol.errors import ProtocolError

LABEL = b"auxilio-e2e-v1"
INFO_AGENT_TO_TECHNICIAN = b"auxilio e2e v1 agent->technician"
INFO_TECHNICIAN_TO_AGENT = b"auxilio e2e v1 technician->agent"
COUNTER_SIZE = 8
TAG_SIZE = 16
MIN_FRAME_SIZE = HEADER_SIZE + COUNTER_SIZE + TAG_SIZE
# One below 2**64: the last counter value is never used, so "exhausted" needs no special nonce.
MAX_COUNTER = 2**64 - 2


class Role(StrEnum):
    AGENT = "agent"
    TECHNICIAN = "technician"


class Direction(IntEnum):
    """First nonce byte. Keys already differ per direction; the byte keeps nonces distinct even
    if a future change ever shared a key."""

    AGENT_TO_TECHNICIAN = 0x41  # "A"
    TECHNICIAN_TO_AGENT = 0x54  # "T"


def _length_prefixed(support_session_id: str) -> bytes:
    sid = support_session_id.encode("utf-8")
    return len(sid).to_bytes(2, "big") + sid


def transcript_hash(
    support_session_id: str, agent_public: bytes, technician_public: bytes
) -> bytes:
    return hashlib.sha256(
        LABEL + _length_prefixed(support_session_id) + agent_public + technician_public
    ).digest()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    support_session_id: str
    transcript: bytes
    agent_to_technician: bytes = field(repr=False)
    technician_to_agent: bytes = field(repr=False)


def derive_session_keys(
    shared_secret: bytes, *, support_session_id: str, agent_public: bytes, technician_public: bytes
) -> SessionKeys:
    transcript = transcript_hash(support_session_id, agent_public, technician_public)

    def expand(info: bytes) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=transcript, info=info)
        return hkdf.derive(shared_secret)

    return SessionKeys(
        support_session_id=support_session_id,
        transcript=transcript,
        agent_to_technician=expand(INFO_AGENT_TO_TECHNICIAN),
        technician_to_agent=expand(INFO_TECHNICIAN_TO_AGENT),
    )


def _nonce(direction: Direction, channel: ChannelId, counter: int) -> bytes:
    return bytes((direction, channel, 0, 0)) + counter.to_bytes(COUNTER_SIZE, "big")


def _read_header(frame: bytes) -> FrameHeader:
    """Size and header checks shared by ``Channel.open`` and ``E2ESession.open``."""
    if len(frame) > MAX_BINARY_FRAME_BYTES:
        raise FrameTooLarge(f"frame of {len(frame)} bytes; the limit is {MAX_BINARY_FRAME_BYTES}")
    if len(frame) < MIN_FRAME_SIZE:
        raise FrameTruncated(f"frame of {len(frame)} bytes is shorter than {MIN_FRAME_SIZE}")
    try:
        return parse_header(frame)
    except ProtocolError as exc:
        # The header is authenticated data: a changed version or channel byte is tampering.
        raise FrameTampered(f"bad frame header: {exc.message}") from exc


class Channel:
    """One logical channel of an ``E2ESession``, as seen from one side: seals outgoing frames
    and opens incoming ones. A rejected frame leaves the counters unchanged."""

    def __init__(
        self,
        channel_id: ChannelId,
        *,
        role: Role,
        keys: SessionKeys,
    ) -> None:
        self.channel_id = channel_id
        if role is Role.AGENT:
            send_key, receive_key = keys.agent_to_technician, keys.technician_to_agent
            self._send_direction = Direction.AGENT_TO_TECHNICIAN
            self._receive_direction = Direction.TECHNICIAN_TO_AGENT
        else:
            send_key, receive_key = keys.technician_to_agent, keys.agent_to_technician
            self._send_direction = Direction.TECHNICIAN_TO_AGENT
            self._receive_direction = Direction.AGENT_TO_TECHNICIAN
        self._send = AESGCM(send_key)
        self._receive = AESGCM(receive_key)
        self._aad_prefix = LABEL + _length_prefixed(keys.support_session_id)
        self._header = FrameHeader(channel=channel_id).encode()
        self.sent = 0  # counter of the next frame to seal
        self.received = 0  # counter the next opened frame must carry

    def seal(self, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_FRAME_PLAINTEXT:
            raise FrameTooLarge(
                f"{len(plaintext)} bytes of plaintext; the limit is {MAX_FRAME_PLAINTEXT}"
            )
        if self.sent > MAX_COUNTER:
            raise CounterExhausted("this channel has sent 2**64-1 frames; start a new session")
        counter = self.sent.to_bytes(COUNTER_SIZE, "big")
        nonce = _nonce(self._send_direction, self.channel_id, self.sent)
        ciphertext = self._send.encrypt(nonce, plaintext, self._aad_prefix + self._header + counter)
        self.sent += 1
        return self._header + counter + ciphertext

    def open(self, frame: bytes) -> bytes:
        header = _read_header(frame)
        if header.channel != self.channel_id:
            raise FrameTampered(
                f"frame for channel {header.channel.name} opened on {self.channel_id.name}"
            )
        counter_bytes = frame[HEADER_SIZE : HEADER_SIZE + COUNTER_SIZE]
        counter = int.from_bytes(counter_bytes, "big")
        # Checked before decrypting: cheap, and the counter is authenticated anyway (nonce, aad),
        # so a forged counter still fails once the expected one is reached.
        if counter < self.received:
            raise FrameReplayed(f"frame {counter} already received on {self.channel_id.name}")
        if counter > self.received:
            raise FrameOutOfOrder(
                f"frame {counter} arrived while {self.received} was expected on "
                f"{self.channel_id.name}"
            )
        nonce = _nonce(self._receive_direction, self.channel_id, counter)
        aad = self._aad_prefix + frame[:HEADER_SIZE] + counter_bytes
        try:
            # A memoryview avoids copying up to 1 MiB of ciphertext before decrypting it.
            body = memoryview(frame)[HEADER_SIZE + COUNTER_SIZE :]
            plaintext = self._receive.decrypt(nonce, body, aad)
        except InvalidTag:
            raise FrameTampered(f"frame {counter} on {self.channel_id.name} failed") from None
        self.received += 1
        return plaintext


class E2ESession:
    """The keys of one support session on one side, and its channels (created on first use).

    Returned by the handshake once both sides have confirmed the keys; at that point the
    ``CONTROL_E2E`` channel has used counter 0 in each direction for the confirmations.
    """

    def __init__(self, *, role: Role, keys: SessionKeys) -> None:
        self.role = role
        self.keys = keys
        self._channels: dict[ChannelId, Channel] = {}

    @property
    def support_session_id(self) -> str:
        return self.keys.support_session_id

    def channel(self, channel_id: ChannelId) -> Channel:
        existing = self._channels.get(channel_id)
        if existing is None:
            existing = self._channels[channel_id] = Channel(
                channel_id, role=self.role, keys=self.keys
            )
        return existing

    def seal(self, channel_id: ChannelId, plaintext: bytes) -> bytes:
        return self.channel(channel_id).seal(plaintext)

    def open(self, frame: bytes) -> tuple[ChannelId, bytes]:
        """Open a frame from the peer on whichever channel its header names."""
        header = _read_header(frame)
        return header.channel, self.channel(header.channel).open(frame)
