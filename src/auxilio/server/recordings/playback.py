"""What the supervisor page's player needs to open a recording itself: ciphertext and sealed keys.

The server hands over exactly what it holds (nothing it has opens a frame): each epoch's keys as
the agent sealed them to the auditor key, and the recorded E2E frames of the channels the player
plays (chat and terminal), in file order, with their direction and the relay's timing. The page
unseals and opens them with the auditor's private key, which it never sends anywhere
(``static/js/recording-player.js``). Each (direction, channel) has its own E2E counter, so
leaving the other channels' frames out (files, screen: large, and not played) does not weaken
the page's check that no played frame was dropped, reordered or altered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from auxilio.crypto.keys import b64url_encode
from auxilio.protocol.binary import HEADER_SIZE, ChannelId
from auxilio.server.recordings.errors import RecordingCorrupt, RecordingTooLarge
from auxilio.server.relay.recording import Header, RecordingFileError, RecordKind, read_records

PLAYED_CHANNELS = frozenset({ChannelId.CHAT, ChannelId.TERMINAL})
# Frames handed to one page, before base64: a long terminal session is a few MiB; beyond this
# the command line export (which streams) is the way.
MAX_PLAYBACK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PlaybackRecord:
    offset: int  # byte offset in the file, for the page's error messages
    kind: RecordKind
    at_us: int
    body: bytes  # an epoch's transcript hash, or a frame as relayed
    channel: int | None = None  # a frame's header channel byte (public)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "offset": self.offset,
            "kind": chr(self.kind),
            "at_us": self.at_us,
            "body": b64url_encode(self.body),
        }
        if self.channel is not None:
            out["channel"] = self.channel
        return out


@dataclass
class Playback:
    header: Header
    records: list[PlaybackRecord] = field(default_factory=list)
    frame_bytes: int = 0


def _channel(frame: bytes) -> int | None:
    # A frame too short for a header is kept: the page reports it as damage at its offset.
    return frame[1] if len(frame) >= HEADER_SIZE else None


def read_playback(
    handle: BinaryIO, *, support_session_id: str, max_bytes: int = MAX_PLAYBACK_BYTES
) -> Playback:
    """Every epoch and every chat or terminal frame of the file, checked as the export checks
    the file's own structure (magic, record checksums, truncation, whose recording it is)."""
    try:
        header, records = read_records(handle)
        if header.support_session_id != support_session_id:
            raise RecordingCorrupt(
                f"at byte 0: the file is the recording of {header.support_session_id}, "
                f"not of {support_session_id}",
                offset=0,
            )
        playback = Playback(header=header)
        for record in records:
            if record.kind is RecordKind.EPOCH:
                playback.records.append(
                    PlaybackRecord(record.offset, record.kind, record.at_us, record.body)
                )
                continue
            channel = _channel(record.body)
            if channel is not None and channel not in PLAYED_CHANNELS:
                continue
            playback.frame_bytes += len(record.body)
            if playback.frame_bytes > max_bytes:
                raise RecordingTooLarge(
                    f"the chat and terminal frames are over {max_bytes // (1024 * 1024)} MiB; "
                    "use: auxilio recording export",
                    limit=max_bytes,
                )
            playback.records.append(
                PlaybackRecord(record.offset, record.kind, record.at_us, record.body, channel)
            )
    except RecordingFileError as exc:
        raise RecordingCorrupt(str(exc), offset=exc.offset) from exc
    return playback
