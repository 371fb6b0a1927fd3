"""Test pictures for the screen viewer, encoded with PyAV the way the device's encoder does
(VP8 / VP9 in realtime mode, one packet per frame; JPEG for the fallback rectangles)."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType
from numpy.typing import NDArray

WIDTH, HEIGHT = 1280, 720
RED = (230, 20, 20)
# (FFmpeg encoder, the WebCodecs string of a 1280x720 stream as the agent's encoder names it,
# options for one packet per picture at once: no look-ahead, no alt-ref).
_VPX = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "vp8": ("libvpx", "vp8", _VPX),
    "vp9": ("libvpx-vp9", "vp09.00.31.08", _VPX),
    "av1": ("libsvtav1", "av01.0.05M.08", {"preset": "12", "svtav1-params": "rtc=1:rc=2:lp=1"}),
}


def picture(
    square: tuple[int, int, int, int] | None,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    colour: tuple[int, int, int] = RED,
) -> NDArray[np.uint8]:
    """A dark grey picture with one filled rectangle (x, y, w, h)."""
    rgb = np.full((height, width, 3), 40, dtype=np.uint8)
    if square is not None:
        x, y, w, h = square
        rgb[y : y + h, x : x + w] = colour
    return rgb  # fmt: skip


class VideoEncoder:
    """A realtime VP8 / VP9 / AV1 encoder giving one packet per picture at once, a keyframe
    when asked."""

    def __init__(self, kind: str, *, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.context = av.CodecContext.create(CODECS[kind][0], "w")
        self.context.width, self.context.height = width, height
        self.context.pix_fmt = "yuv420p"
        self.context.time_base = Fraction(1, 30)
        self.context.bit_rate = 4_000_000
        self.context.options = dict(CODECS[kind][2])
        self.pts = 0

    def encode(self, rgb: NDArray[np.uint8], *, keyframe: bool = False) -> tuple[bool, bytes]:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = self.pts
        self.pts += 1
        if keyframe:
            frame.pict_type = PictureType.I
        packets = self.context.encode(frame)
        _normal_scheduling()
        assert len(packets) == 1, "one packet per picture"
        return packets[0].is_keyframe, bytes(packets[0])

    def close(self) -> None:
        """Flush (SVT-AV1 complains when closed without an end of stream)."""
        self.context.encode(None)
        _normal_scheduling()


def _normal_scheduling() -> None:
    """SVT-AV1, run as root, puts the thread that drives it under SCHED_FIFO 99 (and the
    threads and processes it starts after inherit it): a test worker that had encoded AV1
    frames started chromium at real-time priority, whose idle processes then spun and starved
    the machine. Auxilio never encodes AV1; only these test pictures do."""
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def encode_video(kind: str, pictures: list[NDArray[np.uint8]]) -> list[tuple[bool, bytes]]:
    """(keyframe, bytes) per picture: the first is a keyframe, the rest delta frames."""
    height, width = pictures[0].shape[:2]
    encoder = VideoEncoder(kind, width=width, height=height)
    encoded = [encoder.encode(rgb) for rgb in pictures]
    encoder.close()
    return encoded


def encode_jpeg(rgb: NDArray[np.uint8]) -> bytes:
    height, width = rgb.shape[:2]
    context = av.CodecContext.create("mjpeg", "w")
    context.width, context.height = width, height
    context.pix_fmt = "yuvj444p"
    context.time_base = Fraction(1, 30)
    context.options = {"qmin": "2", "qmax": "4"}
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
    frame.pts = 0
    packets = [*context.encode(frame), *context.encode(None)]
    return b"".join(bytes(packet) for packet in packets)
