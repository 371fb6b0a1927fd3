"""Screen view on the device: ``screen.start`` to frames, paced by the viewer's acknowledgements.

On ``screen.start`` (capability ``screen`` granted and consented) the handler opens the X display
(``agent.screen.capture``), picks the first codec of the viewer's list it can encode (VP8, VP9,
AV1 where the encoder has it, or JPEG rectangles) and streams: ``screen.config`` before the
first frame and again whenever the stream changes (codec, size, monitor), then ``0x04`` video
frames or ``0x05`` JPEG rectangles.
A frame is grabbed and encoded only while ``ScreenFlow``'s window has room and the frame rate
allows it, so a slow viewer slows the device instead of filling queues; ``screen.ack`` opens the
window again. Grabbing and encoding run in one worker thread of the stream's own (the capture is
not thread-safe, and a 1080p encode must not hold up the session's loop, which takes the
person's answers and revocations).

The person sees "your screen is being shared" in their feed while it runs, can pause and resume
it (``p``; the viewer gets ``screen.paused`` / ``screen.resumed`` and no frame meanwhile) and
revoke it (``r screen``, the session window's Revoke): the dispatcher then closes this handler,
which stops the stream and tells the viewer ``screen.stop``.

Errors reach the viewer as ``screen.error`` with a stable code: ``screen.not_allowed``,
``screen.no_common_codec``, ``screen.display_unavailable`` (no X display, Wayland, the display
went away), ``screen.monitor_unknown``, ``screen.encoder_failed`` (a frame too large to send).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import ValidationError

from auxilio.agent.capabilities.base import Activity, SessionServices
from auxilio.agent.screen.capture import Monitor, ScreenSource
from auxilio.agent.screen.capture import ScreenError as CaptureError
from auxilio.agent.screen.encoder import PipelineOutput, ScreenPipeline, VideoCodec
from auxilio.protocol.app import AppMessage
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.screen import (
    JPEG_CODEC,
    MAX_SCREEN_PAYLOAD,
    ScreenAck,
    ScreenConfig,
    ScreenError,
    ScreenErrorCode,
    ScreenFrame,
    ScreenKeyframeRequest,
    ScreenMonitor,
    ScreenMonitorSelect,
    ScreenPaused,
    ScreenRect,
    ScreenRects,
    ScreenResumed,
    ScreenStart,
    ScreenStats,
    ScreenStop,
    codec_family,
)
from auxilio.protocol.screen_flow import ScreenFlow
from auxilio.protocol.types import Capability

logger = logging.getLogger(__name__)
T = TypeVar("T")

# WebCodecs families (what screen.start names) to the encoders the device has (AV1 only where
# the encoder module offers it).
_FAMILY_NAMES = {"vp8": "VP8", "vp09": "VP9", "av01": "AV1"}
VIDEO_FAMILIES: dict[str, VideoCodec] = {
    family: VideoCodec[name]
    for family, name in _FAMILY_NAMES.items()
    if name in VideoCodec.__members__
}
STATS_EVERY_US = 1_000_000
# Nothing acknowledged for this long: the viewer is gone; the stream stops (screen.stop).
STALL_US = 30_000_000
IDLE_WAIT_S = 0.25
_PAYLOAD_PREFIX = 14  # the larger binary prefix (0x04's); a rectangle adds its own header
_RECT_OVERHEAD = 12  # longest sleep between two looks at the screen while nothing changes

SourceFactory = Callable[[], ScreenSource]


def default_source() -> ScreenSource:
    return ScreenSource(env=os.environ)


def choose_codec(codecs: tuple[str, ...]) -> VideoCodec | Literal["jpeg"] | None:
    """The first of the viewer's codecs the device encodes: a ``VideoCodec``, ``"jpeg"`` for
    the JPEG rectangles, or ``None`` when there is none in common."""
    for codec in codecs:
        family = codec_family(codec).lower()
        if family == JPEG_CODEC:
            return "jpeg"
        if family in VIDEO_FAMILIES:
            return VIDEO_FAMILIES[family]
    return None


@dataclass(frozen=True, slots=True)
class _StreamKey:
    codec: str
    width: int
    height: int
    monitor: int


class _Stream:
    """One running stream: its source, pipeline and window, and the worker thread they live in."""

    def __init__(
        self,
        source: ScreenSource,
        pipeline: ScreenPipeline,
        flow: ScreenFlow,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.flow = flow
        self.pool = pool
        self.key: _StreamKey | None = None  # the screen.config last sent
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.jpeg_allowed = True

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class ScreenHandler:
    """The ``screen`` capability of one session (made by the dispatcher on first use)."""

    def __init__(
        self,
        services: SessionServices,
        *,
        source_factory: SourceFactory = default_source,
        now_us: Callable[[], int] = _now_us,
    ) -> None:
        self._s = services
        self._source_factory = source_factory
        self._now_us = now_us
        self._stream: _Stream | None = None
        self.paused = False
        self._last_stats_us = 0

    @property
    def running(self) -> bool:
        return self._stream is not None

    @property
    def monitor(self) -> Monitor | None:
        """The monitor being shown now (remote control acts on it), or None when not viewing."""
        return self._stream.source.monitor if self._stream is not None else None

    # -- messages from the viewer -------------------------------------------------------------

    async def handle(self, message: AppMessage) -> None:
        if not self._s.gate(Capability.SCREEN):
            await self._stop(tell=True)
            if isinstance(message, ScreenStart):
                await self._error(ScreenErrorCode.NOT_ALLOWED, "screen is not allowed")
            return
        if isinstance(message, ScreenStart):
            await self._start(message)
        elif isinstance(message, ScreenAck):
            self._ack(message)
        elif isinstance(message, ScreenKeyframeRequest):
            if self._stream is not None:
                self._stream.flow.request_keyframe()
                self._stream.pipeline.request_keyframe()
                self._stream.wake.set()
        elif isinstance(message, ScreenMonitorSelect):
            await self._select(message.monitor)
        elif isinstance(message, ScreenStop):
            await self._stop(tell=False)
        else:
            self._s.log.append("ignored", what=f"{message.type} from the technician")

    async def _start(self, message: ScreenStart) -> None:
        await self._stop(tell=False)  # a second start replaces the stream
        choice = choose_codec(message.codecs)
        if choice is None:
            await self._error(
                ScreenErrorCode.NO_COMMON_CODEC,
                f"this device encodes vp8, vp09, av01 or jpeg; the viewer asked {message.codecs}",
            )
            return
        codec = choice if isinstance(choice, VideoCodec) else None
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auxilio-screen")
        loop = asyncio.get_running_loop()

        def open_source() -> tuple[ScreenSource, ScreenPipeline]:
            source = self._source_factory()
            try:
                source.select(message.monitor)
                return source, ScreenPipeline(source, codec=codec, fps=message.max_fps)
            except BaseException:
                source.close()
                raise

        try:
            source, pipeline = await loop.run_in_executor(pool, open_source)
        except CaptureError as exc:
            pool.shutdown(wait=False)
            await self._error(exc.code, exc.message)
            return
        stream = _Stream(source, pipeline, ScreenFlow(max_fps=message.max_fps), pool)
        stream.jpeg_allowed = any(codec_family(c).lower() == JPEG_CODEC for c in message.codecs)
        self._stream = stream
        await self._s.mark_used(Capability.SCREEN)
        monitor = source.monitor
        await self._s.report(
            Activity(
                Capability.SCREEN,
                ActivityKind.SCREEN_VIEWED,
                f"monitor {monitor.index} ({monitor.width}x{monitor.height})",
            )
        )
        texts = self._s.feed.texts.screen
        self._s.feed.warning(texts.sharing.format(technician=self._s.grant().technician_name))
        self._s.feed.info(texts.how_to_pause)
        self._s.log.append("screen_started", monitor=monitor.index, codec=pipeline.mode)
        if self.paused:
            await self._s.send(ScreenPaused())
        stream.task = asyncio.create_task(self._pump(stream))

    def _ack(self, message: ScreenAck) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            stream.flow.acked(seq=message.seq, decode_us=message.decode_us, now_us=self._now_us())
        except ProtocolError as exc:
            self._s.log.append("ignored", what=f"screen.ack: {exc.message}")
            return
        stream.wake.set()

    async def _select(self, index: int) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            await stream.run(lambda: stream.source.select(index))
        except CaptureError as exc:
            await self._error(exc.code, exc.message)
            return
        stream.flow.request_keyframe()
        stream.pipeline.request_keyframe()
        stream.wake.set()

    # -- the person ---------------------------------------------------------------------------

    async def set_paused(self, paused: bool) -> None:
        """The person paused (or resumed) the view; nothing is grabbed while paused."""
        if paused == self.paused:
            return
        self.paused = paused
        texts = self._s.feed.texts.screen
        self._s.log.append("screen_paused" if paused else "screen_resumed")
        if paused:
            self._s.feed.warning(texts.paused)
        else:
            self._s.feed.activity(texts.resumed)
        stream = self._stream
        if stream is None:
            return
        await self._s.send(ScreenPaused() if paused else ScreenResumed())
        if not paused:
            stream.flow.request_keyframe()
            stream.pipeline.request_keyframe()
        stream.wake.set()

    # -- the stream ---------------------------------------------------------------------------

    async def _pump(self, stream: _Stream) -> None:
        try:
            while self._stream is stream:
                if not self._s.gate(Capability.SCREEN):
                    break
                now = self._now_us()
                if stream.flow.stalled(now, after_us=STALL_US):
                    self._s.log.append("screen_stalled")
                    break
                if self.paused or not stream.flow.may_send(now):
                    # A full window waits for an ack (it wakes the pump); the frame rate only for
                    # the rest of its interval, not a whole idle wait (that capped the stream at
                    # about 4 fps, bench/bench_screen_e2e.py).
                    wait = IDLE_WAIT_S
                    if not self.paused and stream.flow.has_room():
                        wait = min(wait, stream.flow.pacing_wait_us(now) / 1_000_000)
                    await self._wait(stream, wait)
                    continue
                output = await stream.run(stream.pipeline.step)
                if self._stream is not stream or self.paused:
                    continue
                if output is not None:
                    await self._send_output(stream, output, captured_us=now)
                await self._maybe_stats(stream)
                if output is None:
                    await self._wait(stream, 1 / max(1, stream.pipeline.fps))
        except CaptureError as exc:
            if self._stream is stream:
                await self._error(exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("the screen stream failed")
            if self._stream is stream:
                await self._error(ScreenErrorCode.ENCODER_FAILED, f"the stream failed: {exc}")
        else:
            if self._stream is stream:
                await self._s.send(ScreenStop())
        if self._stream is stream:
            self._stream = None
            self._s.feed.activity(self._s.feed.texts.screen.stopped)
            await self._dispose(stream)

    async def _wait(self, stream: _Stream, seconds: float) -> None:
        stream.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream.wake.wait(), seconds)

    async def _send_output(
        self, stream: _Stream, output: PipelineOutput, *, captured_us: int
    ) -> None:
        monitor = stream.source.monitor
        if output.video is not None:
            video = output.video
            key = _StreamKey(video.codec, video.width, video.height, monitor.index)
            frame_size = len(video.data)
        elif output.jpeg is not None:
            if not stream.jpeg_allowed:
                raise CaptureError(
                    ScreenErrorCode.ENCODER_FAILED,
                    f"the video encoder failed ({stream.pipeline.fallback_reason}) and the "
                    "viewer did not ask for JPEG rectangles",
                )
            jpeg = output.jpeg
            key = _StreamKey(JPEG_CODEC, jpeg.width, jpeg.height, monitor.index)
            frame_size = jpeg.size + len(jpeg.rects) * _RECT_OVERHEAD
        else:
            return
        keyframe = output.report.keyframe
        if key != stream.key:
            if not keyframe:
                # A new stream must start with a keyframe; this one comes next.
                stream.pipeline.request_keyframe()
                return
            await self._s.send(self._config(stream, key))
            stream.key = key
        now = self._now_us()
        seq = stream.flow.next_seq
        try:
            message: AppMessage
            if output.video is not None:
                message = ScreenFrame(
                    seq=seq,
                    keyframe=keyframe,
                    timestamp_us=output.video.timestamp_us,
                    data=output.video.data,
                )
            else:
                assert output.jpeg is not None  # noqa: S101 - checked above
                message = ScreenRects(
                    seq=seq,
                    rects=tuple(
                        ScreenRect(x=r.x, y=r.y, width=r.w, height=r.h, data=r.data)
                        for r in output.jpeg.rects
                    ),
                )
            if frame_size + _PAYLOAD_PREFIX > MAX_SCREEN_PAYLOAD:
                raise ValueError(f"{frame_size} bytes do not fit one frame")
        except (ValidationError, ValueError) as exc:
            if keyframe:
                raise CaptureError(
                    ScreenErrorCode.ENCODER_FAILED,
                    f"a keyframe of {frame_size} bytes does not fit one frame",
                ) from exc
            stream.pipeline.request_keyframe()  # the viewer needs a fresh start after a gap
            return
        stream.flow.sent(
            size=max(1, frame_size), keyframe=keyframe, now_us=now, captured_us=captured_us
        )
        await self._s.send(message)

    def _config(self, stream: _Stream, key: _StreamKey) -> ScreenConfig:
        monitors = tuple(
            ScreenMonitor(
                index=m.index,
                name=(m.name or "")[:200],
                x=m.left,
                y=m.top,
                width=m.width,
                height=m.height,
                primary=m.primary,
            )
            for m in stream.source.monitors()[:16]
        )
        return ScreenConfig(
            codec=key.codec,
            width=key.width,
            height=key.height,
            monitor=key.monitor,
            monitors=monitors,
        )

    async def _maybe_stats(self, stream: _Stream) -> None:
        now = self._now_us()
        rtt = stream.flow.srtt_us
        if rtt is None or now - self._last_stats_us < STATS_EVERY_US:
            return
        self._last_stats_us = now
        await self._s.send(ScreenStats(rtt_us=min(rtt, 60_000_000)))

    # -- ending -------------------------------------------------------------------------------

    async def _error(self, code: str, message: str) -> None:
        self._s.log.append("screen_error", code=code, message=message)
        self._s.feed.alert(self._s.feed.texts.screen.failed.format(code=code, message=message))
        await self._s.send(ScreenError(code=code, message=message[:2000]))
        await self._stop(tell=False)

    async def _stop(self, *, tell: bool) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        if stream.task is not None and stream.task is not asyncio.current_task():
            stream.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream.task
        if tell:
            await self._s.send(ScreenStop())
        self._s.feed.activity(self._s.feed.texts.screen.stopped)
        self._s.log.append("screen_stopped")
        await self._dispose(stream)

    async def _dispose(self, stream: _Stream) -> None:
        def close() -> None:
            stream.pipeline.close()
            stream.source.close()

        try:
            await stream.run(close)
        finally:
            stream.pool.shutdown(wait=False)

    async def close(self) -> None:
        """Revoked, expired or the session over: the viewer is told the stream stopped."""
        await self._stop(tell=True)

    async def viewer_gone(self) -> None:
        """The technician's connection dropped: the stream stops without a word (nobody holds
        the channel's keys to read one), and a technician who comes back starts a new one
        after the new handshake."""
        await self._stop(tell=False)
