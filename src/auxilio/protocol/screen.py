"""Screen messages (channel SCREEN, docs/protocol.md section 3b): JSON set-up and feedback, and
two binary application payloads for the pictures themselves.

* ``0x04`` video frame: ``tag(1) | seq(u32) | flags(u8, bit 0 keyframe) | timestamp_us(u64) |
  payload`` -- one WebCodecs ``EncodedVideoChunk`` of the codec ``screen.config`` named.
* ``0x05`` JPEG rectangles: ``tag(1) | seq(u32) | count(u16) | count x (x u16 | y u16 | w u16 |
  h u16 | len u32 | JPEG bytes)`` -- the fallback when the viewer cannot decode video. Few large
  rectangles, never one per tile: a browser pays a fixed cost per image decoded.

Both carry a ``seq`` shared by the stream (one counter for video and JPEG) that ``screen.ack``
repeats; acknowledgements are cumulative (``protocol.screen_flow``).
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from auxilio.protocol.binary import MAX_FRAME_PLAINTEXT
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.types import WireModel

TAG_SCREEN_FRAME = 0x04
TAG_SCREEN_RECTS = 0x05
_FRAME_PREFIX = struct.Struct(">BIBQ")
_RECTS_PREFIX = struct.Struct(">BIH")
_RECT_HEADER = struct.Struct(">HHHHI")
FLAG_KEYFRAME = 0x01
# Largest screen side; also keeps every coordinate in a u16.
MAX_SCREEN_SIDE = 16384
MAX_SCREEN_RECTS = 64
MAX_MONITORS = 16
# Whole payload, prefix included, fits one E2E frame.
MAX_SCREEN_PAYLOAD = MAX_FRAME_PLAINTEXT
# Timestamps stay below 2**53 so the page reads them as exact numbers.
MAX_TIMESTAMP_US = 2**53
_JPEG_SOI = b"\xff\xd8"

Seq = Annotated[int, Field(ge=0, le=2**32 - 1)]
MonitorIndex = Annotated[int, Field(ge=0, lt=MAX_MONITORS)]
Side = Annotated[int, Field(ge=1, le=MAX_SCREEN_SIDE)]
Coordinate = Annotated[int, Field(ge=0, lt=MAX_SCREEN_SIDE)]
# A WebCodecs codec string ("vp8", "vp09.00.40.08", "av01.0.08M.08", "avc1.42001f") or "jpeg".
# In screen.start it names a family (the part before the first dot, codec_family); the device's
# screen.config gives the whole string of its stream (profile, level), checked again.
CodecString = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.]{1,63}$")]
# Any ``screen.*`` code is accepted on the wire (a newer device may add some); these are defined.
ScreenErrorCodeText = Annotated[
    str, StringConstraints(pattern=r"^screen(\.[a-z0-9_]+)+$", max_length=100)
]


class ScreenErrorCode(StrEnum):
    """The codes of ``screen.error`` (the capture and encoder use the same strings)."""

    NOT_ALLOWED = "screen.not_allowed"
    DISPLAY_UNAVAILABLE = "screen.display_unavailable"
    MONITOR_UNKNOWN = "screen.monitor_unknown"
    NO_COMMON_CODEC = "screen.no_common_codec"
    ENCODER_FAILED = "screen.encoder_failed"


# ``description`` of a VideoDecoderConfig (H.264 avcC, for example), unpadded base64url.
Description = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$", max_length=8192)]
JPEG_CODEC = "jpeg"


class ScreenMonitor(WireModel):
    index: MonitorIndex
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    x: int = Field(ge=-MAX_SCREEN_SIDE, le=MAX_SCREEN_SIDE)
    y: int = Field(ge=-MAX_SCREEN_SIDE, le=MAX_SCREEN_SIDE)
    width: Side
    height: Side
    primary: bool = False


class ScreenStart(WireModel):
    """Viewer -> device: show this monitor, at most ``max_fps``, in the first codec of
    ``codecs`` (the viewer's preference order, each one it checked it can decode) the device
    can encode; ``jpeg`` asks for the rectangles."""

    type: Literal["screen.start"] = "screen.start"
    monitor: MonitorIndex = 0
    max_fps: int = Field(default=30, ge=1, le=60)
    codecs: tuple[CodecString, ...] = Field(min_length=1, max_length=8)


class ScreenConfig(WireModel):
    """Device -> viewer: what the frames that follow are. Sent before the first frame and again
    on every change (monitor, size, codec); the next frame after it is a keyframe."""

    type: Literal["screen.config"] = "screen.config"
    codec: CodecString
    width: Side
    height: Side
    monitor: MonitorIndex
    monitors: tuple[ScreenMonitor, ...] = Field(min_length=1, max_length=MAX_MONITORS)
    description: Description | None = None


class ScreenAck(WireModel):
    """Viewer -> device: every frame up to ``seq`` is done with (painted, or dropped while
    waiting for a keyframe); ``decode_us`` is how long the last one took to decode."""

    type: Literal["screen.ack"] = "screen.ack"
    seq: Seq
    decode_us: int = Field(ge=0, le=60_000_000)


class ScreenKeyframeRequest(WireModel):
    type: Literal["screen.keyframe_request"] = "screen.keyframe_request"
    reason: Literal["decoder_error", "frame_missing", "decoder_reset"]


class ScreenMonitorSelect(WireModel):
    type: Literal["screen.monitor"] = "screen.monitor"
    monitor: MonitorIndex


class ScreenPaused(WireModel):
    """Device -> viewer: the person paused the view; no frame comes until ``screen.resumed``."""

    type: Literal["screen.paused"] = "screen.paused"
    by: Literal["person"] = "person"


class ScreenResumed(WireModel):
    type: Literal["screen.resumed"] = "screen.resumed"


class ScreenStats(WireModel):
    """Device -> viewer, about once a second: the smoothed round trip the device measures from
    acknowledgements, the viewer's decode time taken out."""

    type: Literal["screen.stats"] = "screen.stats"
    rtt_us: int = Field(ge=0, le=60_000_000)


class ScreenStop(WireModel):
    """Either way: the stream ends (the viewer closed it, or the device stopped sending)."""

    type: Literal["screen.stop"] = "screen.stop"


class ScreenError(WireModel):
    """Device -> viewer: the stream could not start or went on; ``code`` is stable
    (docs/protocol.md, section 3b)."""

    type: Literal["screen.error"] = "screen.error"
    code: ScreenErrorCodeText
    message: Annotated[str, StringConstraints(max_length=2000)] = ""


class ScreenFrame(WireModel):
    type: Literal["screen.frame"] = "screen.frame"
    seq: Seq
    keyframe: bool
    timestamp_us: int = Field(ge=0, le=MAX_TIMESTAMP_US)
    data: Annotated[bytes, Field(min_length=1, max_length=MAX_SCREEN_PAYLOAD - 14)]


def _jpeg(data: bytes) -> bytes:
    if not data.startswith(_JPEG_SOI):
        raise ValueError("not a JPEG image")
    return data


class ScreenRect(WireModel):
    x: Coordinate
    y: Coordinate
    width: Side
    height: Side
    data: Annotated[bytes, Field(min_length=2), AfterValidator(_jpeg)]


class ScreenRects(WireModel):
    type: Literal["screen.rects"] = "screen.rects"
    seq: Seq
    rects: tuple[ScreenRect, ...] = Field(min_length=1, max_length=MAX_SCREEN_RECTS)


def codec_family(codec: str) -> str:
    """``vp09.00.40.08`` -> ``vp09``: what a ``screen.start`` entry and a stream must share."""
    return codec.split(".", 1)[0]


SCREEN_JSON_TYPES = frozenset({
    "screen.start", "screen.config", "screen.ack", "screen.keyframe_request", "screen.monitor",
    "screen.paused", "screen.resumed", "screen.stats", "screen.stop", "screen.error",
})  # fmt: skip


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(ProtocolErrorCode.INVALID_FIELD, message)


def encode_screen_frame(frame: ScreenFrame) -> bytes:
    flags = FLAG_KEYFRAME if frame.keyframe else 0
    return _FRAME_PREFIX.pack(TAG_SCREEN_FRAME, frame.seq, flags, frame.timestamp_us) + frame.data


def encode_screen_rects(rects: ScreenRects) -> bytes:
    parts = [_RECTS_PREFIX.pack(TAG_SCREEN_RECTS, rects.seq, len(rects.rects))]
    for rect in rects.rects:
        parts.append(_RECT_HEADER.pack(rect.x, rect.y, rect.width, rect.height, len(rect.data)))
        parts.append(rect.data)
    encoded = b"".join(parts)
    if len(encoded) > MAX_SCREEN_PAYLOAD:
        raise ProtocolError(
            ProtocolErrorCode.TOO_LARGE,
            f"JPEG rectangles are {len(encoded)} bytes, the limit is {MAX_SCREEN_PAYLOAD}",
        )
    return encoded


def _check_size(data: bytes) -> None:
    if len(data) > MAX_SCREEN_PAYLOAD:
        raise ProtocolError(
            ProtocolErrorCode.TOO_LARGE,
            f"screen payload is {len(data)} bytes, the limit is {MAX_SCREEN_PAYLOAD}",
        )


def decode_screen_frame(data: bytes) -> ScreenFrame:
    _check_size(data)
    if len(data) < _FRAME_PREFIX.size:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "short screen frame")
    _, seq, flags, timestamp_us = _FRAME_PREFIX.unpack_from(data)
    if flags & ~FLAG_KEYFRAME:
        raise _invalid(f"screen frame: undefined flags 0x{flags:02x}")
    if timestamp_us > MAX_TIMESTAMP_US:
        raise _invalid("screen frame: timestamp out of range")
    payload = bytes(data[_FRAME_PREFIX.size :])
    if not payload:
        raise _invalid("screen frame: empty payload")
    return ScreenFrame(
        seq=seq, keyframe=bool(flags & FLAG_KEYFRAME), timestamp_us=timestamp_us, data=payload
    )


def decode_screen_rects(data: bytes) -> ScreenRects:
    _check_size(data)
    if len(data) < _RECTS_PREFIX.size:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "short JPEG rectangles")
    _, seq, count = _RECTS_PREFIX.unpack_from(data)
    if not 1 <= count <= MAX_SCREEN_RECTS:
        raise _invalid(f"JPEG rectangles: count {count}, allowed 1 to {MAX_SCREEN_RECTS}")
    rects: list[ScreenRect] = []
    offset = _RECTS_PREFIX.size
    for index in range(count):
        if len(data) < offset + _RECT_HEADER.size:
            raise ProtocolError(ProtocolErrorCode.MALFORMED, f"rectangle {index}: short header")
        x, y, width, height, length = _RECT_HEADER.unpack_from(data, offset)
        offset += _RECT_HEADER.size
        if len(data) < offset + length:
            raise ProtocolError(ProtocolErrorCode.MALFORMED, f"rectangle {index}: short image")
        image = bytes(data[offset : offset + length])
        offset += length
        if width == 0 or height == 0:
            raise _invalid(f"rectangle {index}: empty")
        if x + width > MAX_SCREEN_SIDE or y + height > MAX_SCREEN_SIDE:
            raise _invalid(f"rectangle {index}: outside the largest screen")
        if not image.startswith(_JPEG_SOI):
            raise _invalid(f"rectangle {index}: not a JPEG image")
        rects.append(ScreenRect(x=x, y=y, width=width, height=height, data=image))
    if offset != len(data):
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "JPEG rectangles: trailing bytes")
    return ScreenRects(seq=seq, rects=tuple(rects))
