"""Flow control of the screen stream, on the sending (device) side: pure, no clock, no I/O.

The device sends a frame only while the window has room: fewer than ``max_frames`` frames and
fewer than ``max_bytes`` bytes sent and not yet acknowledged. A frame is measured only once it is
encoded, so the last one sent may take the bytes past the budget (by at most one frame, itself at
most one E2E frame); with nothing in flight a frame may always go, however large. A slow viewer
therefore never fills the relay's queues: the device stops sending until acknowledgements come,
and the latency stays bounded by the window.

What is sent is always the newest picture: the caller asks ``may_send(now_us)`` *before* it
captures and encodes, so a stale picture is never encoded or queued (a video codec cannot skip
an encoded delta frame anyway: the next one depends on it). For the JPEG fallback the caller
compares the capture with what it last sent, so skipped captures lose no change.

The frame rate is paced from the moment each frame's capture *began* (``captured_us``), so the
time spent grabbing and encoding counts towards the frame interval: paced from the moment the
frame was handed over instead, each frame cost its encode time plus a whole interval (about
16 fps at 1080p with a 30 ms encode, bench/bench_screen_e2e.py).

Acknowledgements (``screen.ack``) are cumulative: ``seq`` acknowledges every frame up to it.
Each one gives a round-trip sample (sent to acknowledged, less the viewer's decode time),
smoothed like TCP's SRTT (RFC 6298, alpha 1/8).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode

DEFAULT_MAX_FRAMES = 2
# Two 1080p keyframes at a generous bitrate, well under the relay's per-connection queue.
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
MAX_SEQ = 2**32 - 1


@dataclass(frozen=True, slots=True)
class _InFlight:
    sent_at_us: int
    size: int


class ScreenFlow:
    """The window of one screen stream; ``seq`` numbers are assigned here, from 0."""

    def __init__(
        self,
        *,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_fps: int = 30,
    ) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("the window must hold at least one frame and one byte")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._interval_us = 0
        self.set_max_fps(max_fps)
        self._in_flight: OrderedDict[int, _InFlight] = OrderedDict()
        self._in_flight_bytes = 0
        self._next_seq = 0
        self._last_captured_us: int | None = None  # when the last frame sent began its capture
        self._keyframe_due = True  # the first frame of a stream is a keyframe
        self.srtt_us: int | None = None
        self.last_decode_us: int | None = None
        self.last_ack_us: int | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight_bytes

    @property
    def keyframe_due(self) -> bool:
        """The next frame must be a keyframe (stream start, monitor switch, viewer request)."""
        return self._keyframe_due

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def set_max_fps(self, max_fps: int) -> None:
        if not 1 <= max_fps <= 60:
            raise ValueError("max_fps is 1 to 60")
        self._interval_us = 1_000_000 // max_fps

    def request_keyframe(self) -> None:
        """The viewer lost its decoder state (``screen.keyframe_request``), or the picture
        changed size or monitor (a new ``screen.config``)."""
        self._keyframe_due = True

    # -- sending ----------------------------------------------------------------------------

    def has_room(self) -> bool:
        if not self._in_flight:
            return True
        return len(self._in_flight) < self.max_frames and self._in_flight_bytes < self.max_bytes

    def may_send(self, now_us: int) -> bool:
        """Capture and encode now? The window has room and the frame rate allows it."""
        if not self.has_room():
            return False
        return (
            self._last_captured_us is None or now_us - self._last_captured_us >= self._interval_us
        )

    def pacing_wait_us(self, now_us: int) -> int:
        """How long until the frame rate allows the next frame (0: now). The window's room is
        apart: an ack, not the clock, makes room."""
        if self._last_captured_us is None:
            return 0
        return max(0, self._interval_us - (now_us - self._last_captured_us))

    def sent(
        self, *, size: int, keyframe: bool, now_us: int, captured_us: int | None = None
    ) -> int:
        """Record a frame handed to the channel at ``now_us`` (its round trip starts there);
        ``captured_us`` is when its capture began (the frame rate is paced from it; default
        ``now_us``). Returns its ``seq``. Raises ``RuntimeError`` when the window had no room
        (a caller bug: it must ask ``may_send`` first)."""
        if size < 1:
            raise ValueError("a frame has at least one byte")
        if not self.has_room():
            raise RuntimeError("screen window full: wait for an acknowledgement")
        if self._next_seq > MAX_SEQ:
            raise RuntimeError("screen sequence numbers exhausted: start a new stream")
        seq = self._next_seq
        self._next_seq += 1
        self._in_flight[seq] = _InFlight(sent_at_us=now_us, size=size)
        self._in_flight_bytes += size
        self._last_captured_us = now_us if captured_us is None else min(captured_us, now_us)
        if keyframe:
            self._keyframe_due = False
        return seq

    # -- acknowledgements -------------------------------------------------------------------

    def acked(self, *, seq: int, decode_us: int, now_us: int) -> int:
        """Apply a cumulative ``screen.ack``; returns the round-trip sample in microseconds.

        An acknowledgement of a frame never sent, or of one already acknowledged, is a peer
        bug (``protocol.invalid_field``) and changes nothing."""
        if seq >= self._next_seq:
            raise ProtocolError(
                ProtocolErrorCode.INVALID_FIELD, f"screen.ack: frame {seq} was never sent"
            )
        if seq not in self._in_flight:
            raise ProtocolError(
                ProtocolErrorCode.INVALID_FIELD, f"screen.ack: frame {seq} already acknowledged"
            )
        acked = self._in_flight[seq]
        while self._in_flight:
            first, frame = next(iter(self._in_flight.items()))
            if first > seq:
                break
            del self._in_flight[first]
            self._in_flight_bytes -= frame.size
        sample = max(0, now_us - acked.sent_at_us - decode_us)
        self.srtt_us = sample if self.srtt_us is None else (7 * self.srtt_us + sample) // 8
        self.last_decode_us = decode_us
        self.last_ack_us = now_us
        return sample

    def stalled(self, now_us: int, *, after_us: int) -> bool:
        """Frames have waited ``after_us`` for an acknowledgement: the viewer is gone or stuck
        (the caller decides: stop the stream, tell the technician)."""
        if not self._in_flight:
            return False
        oldest = next(iter(self._in_flight.values()))
        return now_us - oldest.sent_at_us >= after_us
