"""The screen channel of a recording as WebM files (``screen-<n>.webm``), with PyAV.

Called by the export (``export.py``) for every screen message the agent sent, already opened
and checked like every other frame. Segments: each ``screen.config`` (a start, a monitor
switch, a size or codec change) begins a new segment, and ``screen.stop`` ends one; a
segment with no picture writes no file. Nothing is rescaled.

* VP8 and VP9 frames are remuxed as they are, without re-encoding; their timestamps are the
  device's frame timestamps (from the segment's first frame). Frames before the segment's
  first keyframe cannot be decoded and are left out (``dropped``).
* JPEG rectangles are painted onto a canvas of the configured size (black at first) and each
  painted canvas is encoded to VP9 (libvpx); rectangles carry no timestamp, so their time is
  the relay's, when it recorded them.

Files are written to a private temporary directory and moved into the output directory only
when the whole export succeeded.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.container import OutputContainer
from av.video.stream import VideoStream

from auxilio.protocol.screen import (
    JPEG_CODEC,
    ScreenConfig,
    ScreenFrame,
    ScreenRects,
    ScreenStop,
    codec_family,
)
from auxilio.server.recordings.errors import RecordingCodecUnsupported, RecordingCorrupt
from auxilio.server.relay.recording import Record

_MICROSECONDS = Fraction(1, 1_000_000)
_REMUXED = {"vp8": "vp8", "vp09": "vp9"}
# How long a segment's only frame is shown (nothing says how long it stayed on screen).
_LAST_FRAME_US = 100_000


@dataclass
class ScreenVideo:
    """One written ``screen-<n>.webm``."""

    path: Path
    codec: str
    width: int
    height: int
    monitor: int
    frames: int
    dropped: int


class _Segment:
    def __init__(self, path: Path, config: ScreenConfig) -> None:
        self.path = path
        self.config = config
        self.container: OutputContainer | None = None
        self.stream: VideoStream | None = None
        self.frames = 0
        self.dropped = 0
        self.first_us: int | None = None
        self.last_pts = -1
        self.last_gap = _LAST_FRAME_US
        self.pending: av.Packet[Any] | None = None
        self.family = codec_family(config.codec)
        self.canvas: npt.NDArray[np.uint8] | None = None
        self.decoder: Any = None

    def _open(self, codec: str) -> VideoStream:
        container = av.open(str(self.path), "w", format="webm")
        self.container = container
        stream = container.add_stream(codec, rate=30)
        if not isinstance(stream, VideoStream):  # pragma: no cover -- both codecs are video
            raise RecordingCorrupt(f"{codec} is not a video codec", offset=0)
        width, height = self.config.width, self.config.height
        if self.family == JPEG_CODEC:
            width, height = width + width % 2, height + height % 2
            stream.codec_context.time_base = _MICROSECONDS
            stream.codec_context.options = {
                "deadline": "good",
                "cpu-used": "8",
                "crf": "20",
                "b": "0",
                "lag-in-frames": "0",
            }
            stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width, height
        self.stream = stream
        return stream

    def _pts(self, record: Record, at_us: int) -> int:
        if self.first_us is None:
            self.first_us = at_us
        pts = at_us - self.first_us
        if pts <= self.last_pts:
            raise RecordingCorrupt(
                f"at byte {record.offset}: the screen frame's time does not follow the one "
                "before it",
                offset=record.offset,
            )
        self.last_pts = pts
        return pts

    def video_frame(self, record: Record, frame: ScreenFrame) -> None:
        if self.family == JPEG_CODEC:
            raise RecordingCorrupt(
                f"at byte {record.offset}: a video frame in a JPEG rectangle stream",
                offset=record.offset,
            )
        if self.stream is None and not frame.keyframe:
            self.dropped += 1
            return
        stream = self.stream or self._open(_REMUXED[self.family])
        packet = av.Packet(frame.data)
        packet.stream = stream
        packet.time_base = _MICROSECONDS
        packet.pts = packet.dts = self._pts(record, frame.timestamp_us)
        packet.is_keyframe = frame.keyframe
        self._queue(packet)
        self.frames += 1

    def _queue(self, packet: av.Packet[Any] | None) -> None:
        """Mux the frame before ``packet``, shown until ``packet``; the last one is shown as
        long as the one before it."""
        previous = self.pending
        if previous is not None and self.container is not None:
            if packet is not None and packet.pts is not None and previous.pts is not None:
                self.last_gap = packet.pts - previous.pts
            previous.duration = self.last_gap
            self.container.mux(previous)
        self.pending = packet

    def rects(self, record: Record, rects: ScreenRects) -> None:
        if self.family != JPEG_CODEC:
            raise RecordingCorrupt(
                f"at byte {record.offset}: JPEG rectangles in a {self.config.codec} stream",
                offset=record.offset,
            )
        stream = self.stream or self._open("libvpx-vp9")
        width, height = self.config.width, self.config.height
        if self.canvas is None:
            self.canvas = np.zeros((stream.height, stream.width, 3), dtype=np.uint8)
            self.decoder = av.CodecContext.create("mjpeg", "r")
        for index, rect in enumerate(rects.rects):
            if rect.x + rect.width > width or rect.y + rect.height > height:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: rectangle {index} lies outside the "
                    f"{width}x{height} screen",
                    offset=record.offset,
                )
            try:
                images = self.decoder.decode(av.Packet(rect.data))
                pixels = images[0].to_ndarray(format="rgb24") if images else None
            except (av.error.FFmpegError, ValueError) as exc:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: rectangle {index} is not a readable JPEG ({exc})",
                    offset=record.offset,
                ) from exc
            if pixels is None or pixels.shape[:2] != (rect.height, rect.width):
                raise RecordingCorrupt(
                    f"at byte {record.offset}: rectangle {index}'s JPEG is not "
                    f"{rect.width}x{rect.height}",
                    offset=record.offset,
                )
            self.canvas[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width] = pixels
        picture = av.VideoFrame.from_ndarray(self.canvas, format="rgb24").reformat(format="yuv420p")
        picture.pts = self._pts(record, record.at_us)
        picture.time_base = _MICROSECONDS
        self._mux_encoded(stream.encode(picture))
        self.frames += 1

    def _mux_encoded(self, packets: list[av.Packet[Any]]) -> None:
        if self.container is not None and packets:
            self.container.mux(packets)

    def close(self) -> bool:
        """Finish the file; False when the segment had no picture (no file)."""
        if self.container is None or self.stream is None:
            return False
        if self.family == JPEG_CODEC:
            self._mux_encoded(self.stream.encode(None))
        else:
            self._queue(None)
        self.container.close()
        return True


class ScreenExport:
    """Gathers the screen channel's segments while the export reads the recording."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._segment: _Segment | None = None
        self._done: list[ScreenVideo] = []

    def message(self, record: Record, message: object) -> None:
        if isinstance(message, ScreenConfig):
            self._end()
            family = codec_family(message.codec)
            if family not in _REMUXED and family != JPEG_CODEC:
                raise RecordingCodecUnsupported(
                    f"at byte {record.offset}: the screen stream's codec {message.codec!r} "
                    "cannot be exported (VP8, VP9 and JPEG rectangles can)",
                    offset=record.offset,
                    codec=message.codec,
                )
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="auxilio-screen-"))
            path = self._dir / f"screen-{len(self._done) + 1}.webm"
            self._segment = _Segment(path, message)
        elif isinstance(message, ScreenStop):
            self._end()
        elif isinstance(message, (ScreenFrame, ScreenRects)):
            if self._segment is None:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: a screen picture outside a stream (no "
                    "screen.config before it)",
                    offset=record.offset,
                )
            try:
                if isinstance(message, ScreenFrame):
                    self._segment.video_frame(record, message)
                else:
                    self._segment.rects(record, message)
            except (av.error.FFmpegError, ValueError) as exc:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: the screen picture cannot be written ({exc})",
                    offset=record.offset,
                ) from exc

    def _end(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            written = segment.close()
        except (av.error.FFmpegError, ValueError) as exc:
            raise RecordingCorrupt(
                f"the screen segment {segment.path.name} cannot be finished ({exc})", offset=0
            ) from exc
        if written:
            config = segment.config
            self._done.append(
                ScreenVideo(
                    path=segment.path,
                    codec=config.codec,
                    width=config.width,
                    height=config.height,
                    monitor=config.monitor,
                    frames=segment.frames,
                    dropped=segment.dropped,
                )
            )
        else:
            segment.path.unlink(missing_ok=True)

    def finish(self, out_dir: Path) -> list[ScreenVideo]:
        """Close the last segment and move every file into ``out_dir`` (which exists)."""
        try:
            self._end()
            moved = []
            for video in self._done:
                target = out_dir / video.path.name
                shutil.move(video.path, target)
                video.path = target
                moved.append(video)
        finally:
            self.discard()
        return moved

    def discard(self) -> None:
        """Remove what was written (the export failed)."""
        segment, self._segment = self._segment, None
        if segment is not None and segment.container is not None:
            with contextlib.suppress(av.error.FFmpegError, ValueError):
                segment.container.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
