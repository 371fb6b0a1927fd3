"""Grabbed frames to bytes for the console: libvpx in real time, JPEG rectangles as the fallback.

Why VP9 through libvpx (BSD) by default, VP8 as the second choice and JPEG rectangles when the
video encoder fails: docs/adr/0008-screen-codec.md, with the figures. PyAV's wheels also carry
libx264 and libx265, which are GPL; nothing here opens them. Video frames carry the WebCodecs
codec string the browser's ``VideoDecoder`` is configured with.

PyAV is optional (``VIDEO_AVAILABLE``): the single-file agent ships without it
(docs/adr/0011-one-file-agent.md), and then the pipeline sends JPEG rectangles only. JPEG
rectangles are encoded with Pillow (libjpeg-turbo) where it is installed, as fast as FFmpeg's
mjpeg for about the same size (ADR 0011's figures); with PyAV and no Pillow, with mjpeg.
"""

from __future__ import annotations

import contextlib
import enum
import io
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt

from auxilio.agent.screen.capture import ENCODER_FAILED, Pixels, ScreenError, ScreenSource
from auxilio.agent.screen.changes import ChangeDetector, Rect

try:
    import av
    import av.error
    from av.codec.context import CodecContext
    from av.video.codeccontext import VideoCodecContext
    from av.video.frame import PictureType
    from av.video.reformatter import VideoReformatter
except ImportError:  # the single-file agent: JPEG rectangles only
    VIDEO_AVAILABLE = False
else:
    VIDEO_AVAILABLE = True

try:
    from PIL import Image
except ImportError:
    PILLOW_AVAILABLE = False
else:
    PILLOW_AVAILABLE = True

NO_VIDEO_REASON = "PyAV is not installed: this agent sends JPEG rectangles only"
JpegBackend = Literal["pillow", "ffmpeg"]

_MICROSECONDS = Fraction(1, 1_000_000)


def jpeg_available() -> bool:
    """Whether this install can encode JPEG rectangles at all (Pillow, or PyAV's mjpeg)."""
    return PILLOW_AVAILABLE or VIDEO_AVAILABLE


def encodable_codecs() -> tuple[str, ...]:
    """The codec families this install encodes, best first: what discovery may promise."""
    video = ("vp9", "vp8") if VIDEO_AVAILABLE else ()
    return (*video, "jpeg") if jpeg_available() else video


class EncoderFailed(ScreenError):
    """The encoder could not be opened or failed on a frame; the pipeline falls back to JPEG."""

    def __init__(self, message: str) -> None:
        super().__init__(ENCODER_FAILED, message)


class VideoCodec(enum.StrEnum):
    VP8 = "vp8"
    VP9 = "vp9"


_LIBRARY = {VideoCodec.VP8: "libvpx", VideoCodec.VP9: "libvpx-vp9"}

# VP9 levels by the largest picture (luma samples, longest side); the WebCodecs string names it.
_VP9_LEVELS = (
    (36_864, 512, "10"),
    (73_728, 768, "11"),
    (122_880, 960, "20"),
    (245_760, 1344, "21"),
    (552_960, 2048, "30"),
    (983_040, 2752, "31"),
    (2_228_224, 4160, "40"),
    (8_912_896, 8384, "50"),
    (35_651_584, 16832, "60"),
)


def webcodecs_codec(codec: VideoCodec, width: int, height: int) -> str:
    """The ``codec`` string of WebCodecs' ``VideoDecoderConfig`` for this stream."""
    if codec is VideoCodec.VP8:
        return "vp8"
    samples, side = width * height, max(width, height)
    level = next((lv for s, d, lv in _VP9_LEVELS if samples <= s and side <= d), "62")
    return f"vp09.00.{level}.08"  # profile 0 (4:2:0), 8 bits


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One video frame. ``width`` and ``height`` are the coded size: the monitor's, rounded up to
    even numbers (4:2:0 needs them; the extra column or row repeats the edge)."""

    codec: str
    keyframe: bool
    width: int
    height: int
    timestamp_us: int
    data: bytes


@dataclass(frozen=True, slots=True)
class JpegRect:
    x: int
    y: int
    w: int
    h: int
    data: bytes


@dataclass(frozen=True, slots=True)
class JpegRectsFrame:
    """The changed rectangles of one frame as JPEG images; ``keyframe`` when they cover it all."""

    keyframe: bool
    width: int
    height: int
    timestamp_us: int
    rects: tuple[JpegRect, ...]

    @property
    def size(self) -> int:
        return sum(len(r.data) for r in self.rects)


def _even_bgra(pixels: Pixels) -> npt.NDArray[np.uint8]:
    height, width = pixels.shape
    bgra = pixels.view(np.uint8).reshape(height, width, 4)
    if height % 2 or width % 2:
        bgra = np.pad(bgra, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return bgra


class VideoEncoder:
    """A real-time libvpx encoder for frames of one size (a new size needs a new encoder).

    ``speed`` is libvpx's cpu-used (FFmpeg allows VP8 -16..16, VP9 -8..8; higher is faster);
    ``threads`` above 1 lets libvpx split the frame (VP9 with row-mt): scrolling at 1080p went
    from 15.7 to 22.7 fps with 28.8 instead of 30.8 ms of CPU per frame and 1.91 instead of 1.76
    Mbit/s (the pipeline alone, load about 8; docs/adr/0010). VP8 with two threads fell to 3 fps,
    so only VP9 gets two by default. Rate control is libvpx's variable one aiming at
    ``bitrate``: its constant-bitrate mode coded the frame after a keyframe coarsely, and an
    unchanged screen is not sent again to refine it.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        codec: VideoCodec = VideoCodec.VP9,
        bitrate: int = 2_000_000,
        fps: int = 30,
        threads: int | None = None,
        speed: int = 8,
    ) -> None:
        if not VIDEO_AVAILABLE:
            raise EncoderFailed(NO_VIDEO_REASON)
        if threads is None:
            threads = 2 if codec is VideoCodec.VP9 else 1
        if width < 2 or height < 2:
            raise EncoderFailed(f"frame too small to encode: {width}x{height}")
        self.codec = codec
        self.source_size = (width, height)
        self.width, self.height = width + width % 2, height + height % 2
        self.codec_string = webcodecs_codec(codec, self.width, self.height)
        options = {
            "deadline": "realtime",
            "cpu-used": str(speed),
            "lag-in-frames": "0",  # no look-ahead: every frame leaves when it is encoded
            "auto-alt-ref": "0",
            "static-thresh": "100",  # skip unchanged blocks cheaply (most of a desktop)
        }
        if codec is VideoCodec.VP9:
            options |= {"row-mt": "1" if threads > 1 else "0", "tune-content": "screen"}
        elif codec is VideoCodec.VP8:
            options |= {"screen-content-mode": "1"}
        try:
            context = CodecContext.create(_LIBRARY[codec], "w")
            if not isinstance(context, VideoCodecContext):
                raise EncoderFailed(f"{_LIBRARY[codec]} is not a video encoder")
            context.width, context.height = self.width, self.height
            context.pix_fmt = "yuv420p"
            context.time_base = _MICROSECONDS
            context.framerate = Fraction(fps, 1)
            context.bit_rate = bitrate
            context.gop_size = 1 << 30  # keyframes only when asked (the pipeline decides)
            context.thread_count = threads
            context.options = options
            context.open()
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderFailed(f"cannot open {_LIBRARY[codec]}: {exc}") from exc
        self._context: VideoCodecContext | None = context
        self._to_yuv = VideoReformatter()
        self._planes: list[npt.NDArray[np.uint8]] | None = None  # the YUV image as last encoded

    def encode(
        self,
        pixels: Pixels,
        timestamp_us: int,
        *,
        keyframe: bool = False,
        changed: list[Rect] | None = None,
    ) -> EncodedFrame | None:
        """Encode one frame; ``None`` when the encoder dropped it (rate control may).

        ``changed`` (from ``ChangeDetector``) says where this frame differs from the one before:
        only those rectangles are converted to YUV, the rest is kept from earlier frames. The
        conversion of a full 1080p frame costs more CPU than encoding a frame of typing.
        """
        if (pixels.shape[1], pixels.shape[0]) != self.source_size:
            raise EncoderFailed(
                f"frame is {pixels.shape[1]}x{pixels.shape[0]}, encoder is "
                f"{self.source_size[0]}x{self.source_size[1]}"
            )
        if self._context is None:
            raise EncoderFailed("the encoder is closed")
        try:
            frame = self._yuv_frame(pixels, None if keyframe else changed)
            frame.pts = timestamp_us
            frame.time_base = _MICROSECONDS
            if keyframe:
                frame.pict_type = PictureType.I  # libvpx then forces a keyframe
            packets = self._context.encode(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderFailed(f"{_LIBRARY[self.codec]} failed on a frame: {exc}") from exc
        if not packets:
            return None
        # lag-in-frames=0: one frame in, at most one packet out.
        return EncodedFrame(
            codec=self.codec_string,
            keyframe=any(p.is_keyframe for p in packets),
            width=self.width,
            height=self.height,
            timestamp_us=timestamp_us,
            data=b"".join(bytes(p) for p in packets),
        )

    def _convert(self, bgra: npt.NDArray[np.uint8]) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(bgra, format="bgra")
        # No scaling, only 4:2:0 chroma averaging: the fast filter does it for less CPU.
        return self._to_yuv.reformat(frame, format="yuv420p", interpolation="FAST_BILINEAR")

    def _yuv_frame(self, pixels: Pixels, changed: list[Rect] | None) -> av.VideoFrame:
        odd = self.source_size != (self.width, self.height)
        if changed is None or self._planes is None or odd:
            # The whole frame: the first, a keyframe, or an odd size (padded, kept simple).
            frame = self._convert(_even_bgra(pixels))
            self._planes = [view.copy() for view in _plane_views(frame)]
            return frame
        bgra = pixels.view(np.uint8).reshape(self.height, self.width, 4)
        for r in changed:
            # Rectangles start on 64 px tiles and end on a tile or the (even) frame edge, so
            # every 2x2 chroma block is whole.
            crop = np.ascontiguousarray(bgra[r.y : r.y + r.h, r.x : r.x + r.w])
            for plane, part, step in zip(
                self._planes, _plane_views(self._convert(crop)), (1, 2, 2), strict=True
            ):
                y, x = r.y // step, r.x // step
                plane[y : y + part.shape[0], x : x + part.shape[1]] = part
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for view, plane in zip(_plane_views(frame), self._planes, strict=True):
            view[...] = plane
        return frame

    def close(self) -> None:
        """Flush and free the encoder (PyAV frees its context when the last reference goes)."""
        context, self._context = self._context, None
        if context is not None:
            with contextlib.suppress(av.error.FFmpegError):
                context.encode(None)


def _plane_views(frame: av.VideoFrame) -> list[npt.NDArray[np.uint8]]:
    """The Y, U and V planes of a yuv420p frame as writable ``(height, width)`` arrays."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
            plane.height, plane.line_size
        )
        views.append(rows[:, : plane.width])
    return views


def pillow_quality(quantiser: int) -> int:
    """Pillow's 1-95 quality for FFmpeg's JPEG quantiser (2 best .. 31 smallest): about the same
    size of a desktop rectangle (q 5 -> 77 gave 3.4 kB to mjpeg's 3.5 kB for 256x64)."""
    return max(5, min(95, round(100 - 4.6 * quantiser)))


class JpegRectsEncoder:
    """The changed rectangles as JPEG images, 4:2:0. ``quality`` is the JPEG quantiser as FFmpeg
    counts it: 2 (best) to 31 (smallest). ``backend``: ``"pillow"`` (libjpeg-turbo; the
    default where Pillow is installed) or ``"ffmpeg"`` (PyAV's mjpeg encoder)."""

    _CONTEXTS_KEPT = 32

    def __init__(self, *, quality: int = 5, backend: JpegBackend | None = None) -> None:
        if not 2 <= quality <= 31:
            raise ValueError("quality must be between 2 and 31")
        if backend is None:
            backend = "pillow" if PILLOW_AVAILABLE else "ffmpeg"
        available = {"pillow": PILLOW_AVAILABLE, "ffmpeg": VIDEO_AVAILABLE}
        if backend not in available:
            raise ValueError(f"unknown JPEG backend {backend!r}")
        if not available[backend]:
            raise EncoderFailed(
                "no JPEG encoder: install Pillow (or PyAV)"
                if not jpeg_available()
                else f"the {backend} JPEG encoder is not installed"
            )
        self.quality = quality
        self.backend: JpegBackend = backend
        # One context per rectangle size: opening one per rectangle would cost more than encoding.
        self._contexts: OrderedDict[tuple[int, int], VideoCodecContext] = OrderedDict()

    def _context(self, width: int, height: int) -> VideoCodecContext:
        key = (width, height)
        if (context := self._contexts.get(key)) is not None:
            self._contexts.move_to_end(key)
            return context
        try:
            created = CodecContext.create("mjpeg", "w")
            if not isinstance(created, VideoCodecContext):
                raise EncoderFailed("mjpeg is not a video encoder")
            created.width, created.height = width, height
            created.pix_fmt = "yuvj420p"
            created.time_base = Fraction(1, 30)
            q = str(self.quality)
            created.options = {"qmin": q, "qmax": q}
            created.open()
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderFailed(f"cannot open the JPEG encoder: {exc}") from exc
        self._contexts[key] = created
        if len(self._contexts) > self._CONTEXTS_KEPT:
            self._contexts.popitem(last=False)  # PyAV frees a context when it is dropped
        return created

    def _ffmpeg(self, crop: npt.NDArray[np.uint8], width: int, height: int) -> bytes:
        try:
            frame = av.VideoFrame.from_ndarray(crop, format="bgra").reformat(format="yuvj420p")
            packets = self._context(width, height).encode(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            raise EncoderFailed(f"the JPEG encoder failed: {exc}") from exc
        return b"".join(bytes(p) for p in packets)

    def _pillow(self, crop: npt.NDArray[np.uint8], width: int, height: int) -> bytes:
        # BGRX straight from the grab: Pillow drops the fourth byte while unpacking, no copy.
        image = Image.frombuffer("RGB", (width, height), crop, "raw", "BGRX", 0, 1)
        out = io.BytesIO()
        try:
            image.save(out, "JPEG", quality=pillow_quality(self.quality), subsampling="4:2:0")
        except (OSError, ValueError) as exc:
            raise EncoderFailed(f"the JPEG encoder failed: {exc}") from exc
        return out.getvalue()

    def encode(self, pixels: Pixels, rects: list[Rect], timestamp_us: int) -> JpegRectsFrame:
        """JPEG images of ``rects``; ``[]`` or a rectangle covering the frame is a keyframe."""
        height, width = pixels.shape
        if not rects:
            rects = [Rect(0, 0, width, height)]
        bgra = pixels.view(np.uint8).reshape(height, width, 4)
        encode = self._pillow if self.backend == "pillow" else self._ffmpeg
        out = []
        for r in rects:
            if (
                r.w <= 0
                or r.h <= 0
                or r.x < 0
                or r.y < 0
                or r.x + r.w > width
                or r.y + r.h > height
            ):
                raise ValueError(f"rectangle {r} is outside the {width}x{height} frame")
            crop = np.ascontiguousarray(bgra[r.y : r.y + r.h, r.x : r.x + r.w])
            out.append(JpegRect(r.x, r.y, r.w, r.h, encode(crop, r.w, r.h)))
        full = any(r.w == width and r.h == height for r in rects)
        return JpegRectsFrame(
            keyframe=full, width=width, height=height, timestamp_us=timestamp_us, rects=tuple(out)
        )

    def close(self) -> None:
        self._contexts.clear()


@dataclass(frozen=True, slots=True)
class FrameReport:
    """What one delivered frame cost: CPU of this process (all threads, libvpx's included) and
    the time of each stage, in milliseconds."""

    cpu_ms: float
    grab_ms: float
    diff_ms: float
    encode_ms: float
    rects: int
    changed_pixels: int
    size: int
    keyframe: bool


@dataclass(frozen=True, slots=True)
class PipelineOutput:
    """One frame to send: ``video`` in video mode, ``jpeg`` after falling back."""

    video: EncodedFrame | None
    jpeg: JpegRectsFrame | None
    report: FrameReport


@dataclass(slots=True)
class PipelineStats:
    """Totals of ``ScreenPipeline.run``."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    grabs: int = 0
    frames: int = 0
    unchanged: int = 0
    late: int = 0
    bytes: int = 0
    keyframes: int = 0


EncoderFactory = Callable[[int, int], VideoEncoder]


class ScreenPipeline:
    """Grab, find changes, encode: one ``step`` per frame slot, nothing when nothing changed.

    A keyframe goes out first, every ``keyframe_interval_s`` and on ``request_keyframe`` (a
    viewer joined or lost a frame). When the video encoder fails, the pipeline says why in
    ``fallback_reason`` and carries on with JPEG rectangles (``mode == "jpeg"``), starting
    with a full frame. ``codec=None`` starts in JPEG mode, and so does an install without
    PyAV (``fallback_reason`` is then ``NO_VIDEO_REASON``).
    """

    def __init__(
        self,
        source: ScreenSource,
        *,
        codec: VideoCodec | None = VideoCodec.VP9,
        fps: int = 30,
        keyframe_interval_s: float = 10.0,
        encoder_factory: EncoderFactory | None = None,
        jpeg_quality: int = 5,
        jpeg_backend: JpegBackend | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if fps < 1:
            raise ValueError("fps must be at least 1")
        self.source = source
        self.fps = fps
        self.keyframe_interval_ns = int(keyframe_interval_s * 1e9)
        self._factory = encoder_factory or (
            (lambda w, h: VideoEncoder(w, h, codec=codec, fps=fps)) if codec else None
        )
        self._clock = clock
        self._changes = ChangeDetector()
        self._video: VideoEncoder | None = None
        self._jpeg = JpegRectsEncoder(quality=jpeg_quality, backend=jpeg_backend)
        self.fallback_reason: str | None = None
        if self._factory is not None and encoder_factory is None and not VIDEO_AVAILABLE:
            self.fallback_reason = NO_VIDEO_REASON  # JPEG from the first frame
        self._keyframe_wanted = True
        self._last_keyframe_ns: int | None = None
        self._started_ns = clock()

    @property
    def mode(self) -> str:
        return "video" if self._factory is not None and self.fallback_reason is None else "jpeg"

    def request_keyframe(self) -> None:
        self._keyframe_wanted = True

    def _fall_back(self, exc: EncoderFailed) -> None:
        self.fallback_reason = exc.message
        if self._video is not None:
            self._video.close()
            self._video = None
        self._keyframe_wanted = True

    def step(self) -> PipelineOutput | None:
        """One frame slot; ``None`` when the screen did not change and no keyframe is due."""
        cpu0, t0 = time.process_time(), time.perf_counter()
        frame = self.source.grab()
        t1 = time.perf_counter()
        rects = self._changes.changes(frame.pixels)
        t2 = time.perf_counter()
        now = self._clock()
        due = self._keyframe_wanted or (
            self._last_keyframe_ns is not None
            and now - self._last_keyframe_ns >= self.keyframe_interval_ns
        )
        if not rects and not due:
            return None
        timestamp_us = (now - self._started_ns) // 1000
        video, jpeg = None, None
        if self.mode == "video":
            try:
                video = self._encode_video(frame.pixels, timestamp_us, keyframe=due, changed=rects)
            except EncoderFailed as exc:
                self._fall_back(exc)
                due = True
        if self.mode == "jpeg":
            jpeg = self._jpeg.encode(frame.pixels, [] if due else rects, timestamp_us)
        if video is None and jpeg is None:
            return None  # rate control dropped the frame; the next one carries the change
        keyframe = bool(video and video.keyframe) or bool(jpeg and jpeg.keyframe)
        if keyframe:
            self._keyframe_wanted = False
            self._last_keyframe_ns = now
        report = FrameReport(
            cpu_ms=(time.process_time() - cpu0) * 1000,
            grab_ms=(t1 - t0) * 1000,
            diff_ms=(t2 - t1) * 1000,
            encode_ms=(time.perf_counter() - t2) * 1000,
            rects=len(rects),
            changed_pixels=sum(r.area for r in rects),
            size=len(video.data) if video else (jpeg.size if jpeg else 0),
            keyframe=keyframe,
        )
        return PipelineOutput(video=video, jpeg=jpeg, report=report)

    def _encode_video(
        self, pixels: Pixels, timestamp_us: int, *, keyframe: bool, changed: list[Rect]
    ) -> EncodedFrame | None:
        height, width = pixels.shape
        if self._video is None or self._video.source_size != (width, height):
            assert self._factory is not None  # noqa: S101 - mode "video" implies a factory
            if self._video is not None:
                self._video.close()
            self._video = self._factory(width, height)  # a new size starts with a keyframe
            keyframe = True
        return self._video.encode(pixels, timestamp_us, keyframe=keyframe, changed=changed)

    def run(
        self,
        seconds: float,
        on_output: Callable[[PipelineOutput], None],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> PipelineStats:
        """Step at ``fps`` for ``seconds``; a slot that overruns is not caught up (no burst)."""
        stats = PipelineStats()
        period = 1.0 / self.fps
        start, cpu0 = time.perf_counter(), time.process_time()
        due = start
        while (now := time.perf_counter()) - start < seconds:
            if now < due:
                sleep(due - now)
            elif now - due > period:
                stats.late += 1
            due = max(due + period, now)
            stats.grabs += 1
            output = self.step()
            if output is None:
                stats.unchanged += 1
                continue
            stats.frames += 1
            stats.bytes += output.report.size
            stats.keyframes += output.report.keyframe
            on_output(output)
        stats.seconds = time.perf_counter() - start
        stats.cpu_seconds = time.process_time() - cpu0
        return stats

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        self._jpeg.close()
