"""The screen channel of a recording exported as WebM: real frames from the agent's encoders
(a red square on a grey screen), recorded as the relay records them, exported with the auditor
key and decoded again with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.screen.changes import Rect
from auxilio.agent.screen.encoder import JpegRectsEncoder, VideoCodec, VideoEncoder
from auxilio.protocol.app import ChatMessage
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.screen import (
    ScreenConfig,
    ScreenFrame,
    ScreenMonitor,
    ScreenRect,
    ScreenRects,
    ScreenStop,
)
from auxilio.server.recordings.errors import RecordingCodecUnsupported, RecordingCorrupt
from auxilio.server.relay.recording import RecordingWriter, file_name
from tests.agent.factories import now
from tests.server.recordings.test_export import SID, Session, _offsets, export

GREY = 0xFF808080
RED = 0xFFFF0000  # BGRA in a little-endian uint32
STEP_US = 40_000


def picture(width: int, height: int, square_at: int) -> npt.NDArray[np.uint32]:
    """A grey screen with a 32x32 red square at (square_at, 16)."""
    pixels = np.full((height, width), GREY, dtype=np.uint32)
    pixels[16:48, square_at : square_at + 32] = RED
    return pixels


def config(codec: str, width: int, height: int, monitor: int = 0) -> ScreenConfig:
    monitors = tuple(
        ScreenMonitor(index=i, x=i * width, y=0, width=width, height=height) for i in range(2)
    )
    return ScreenConfig(codec=codec, width=width, height=height, monitor=monitor, monitors=monitors)


def send_video(
    session: Session, codec: VideoCodec, width: int, height: int, count: int, monitor: int = 0
) -> list[int]:
    """``count`` frames, the square moving right; returns their timestamps."""
    encoder = VideoEncoder(width, height, codec=codec)
    session.send(True, config(encoder.codec_string, width, height, monitor), ChannelId.SCREEN)
    stamps = []
    for index in range(count):
        at = 1_000_000 + index * STEP_US  # a device clock, not starting at zero
        encoded = encoder.encode(picture(width, height, 8 + index * 4), at, keyframe=index == 0)
        assert encoded is not None
        frame = ScreenFrame(
            seq=index, keyframe=encoded.keyframe, timestamp_us=at, data=encoded.data
        )
        session.send(True, frame, ChannelId.SCREEN)
        stamps.append(at)
    return stamps


def decoded(path: Path) -> tuple[list[npt.NDArray[np.uint8]], list[float], float]:
    """RGB pictures, their times in seconds, and the container's duration in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = float(container.duration or 0) / av.time_base
        times = [float(f.time or 0) for f in frames]
        return [f.to_ndarray(format="rgb24") for f in frames], times, duration


def is_red(region: npt.NDArray[np.uint8]) -> bool:
    r, g, b = (region[..., i].astype(int).mean() for i in range(3))
    return bool(r > 200 and g < 50 and b < 50)


def is_grey(region: npt.NDArray[np.uint8]) -> bool:
    return bool(np.all(np.abs(region.astype(int) - 0x80) < 24))


def new_recording(tmp_path: Path, auditor: X25519PrivateKey) -> tuple[RecordingWriter, Session]:
    writer = RecordingWriter(tmp_path / file_name(SID), SID)
    return writer, Session(writer, auditor)


@pytest.mark.parametrize("codec", [VideoCodec.VP9, VideoCodec.VP8])
def test_video_frames_are_remuxed_with_their_timestamps(tmp_path: Path, codec: VideoCodec) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    session.send(False, ChatMessage(text="le miro la pantalla", sent_at=now()), ChannelId.CHAT)
    stamps = send_video(session, codec, 160, 96, 10)
    writer.close()
    out = tmp_path / "out"
    result = export(writer.path, auditor, {session.epoch: session.sealed}, out)
    assert [v.path for v in result.videos] == [out / "screen-1.webm"]
    video = result.videos[0]
    assert (video.frames, video.dropped, video.width, video.height) == (10, 0, 160, 96)
    assert len(result.chat_lines) == 1
    pictures, times, duration = decoded(video.path)
    assert len(pictures) == 10
    assert times == pytest.approx([(s - stamps[0]) / 1e6 for s in stamps], abs=0.0011)
    # The last frame is shown as long as the one before it.
    assert duration == pytest.approx(10 * STEP_US / 1e6, abs=0.0011)
    for index, rgb in enumerate(pictures):
        x = 8 + index * 4
        assert rgb.shape == (96, 160, 3)
        assert is_red(rgb[20:44, x + 4 : x + 28]), index
        assert is_grey(rgb[60:90, 100:150]), index
        assert not is_red(rgb[20:44, x + 40 : x + 60]), index


def test_each_screen_config_starts_a_new_file_and_stop_ends_one(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    send_video(session, VideoCodec.VP9, 160, 96, 3)
    # A monitor switch with a new size; then the stream stops; a config with no frame after.
    send_video(session, VideoCodec.VP8, 128, 64, 4, monitor=1)
    session.send(True, ScreenStop(), ChannelId.SCREEN)
    session.send(True, config("vp8", 64, 64), ChannelId.SCREEN)
    writer.close()
    out = tmp_path / "out"
    result = export(writer.path, auditor, {session.epoch: session.sealed}, out)
    assert [(v.path.name, v.width, v.height, v.monitor, v.frames) for v in result.videos] == [
        ("screen-1.webm", 160, 96, 0, 3),
        ("screen-2.webm", 128, 64, 1, 4),
    ]
    assert sorted(p.name for p in out.iterdir()) == ["chat.txt", "screen-1.webm", "screen-2.webm"]
    pictures, _, _ = decoded(out / "screen-2.webm")
    assert len(pictures) == 4 and pictures[0].shape == (64, 128, 3)


def test_frames_before_the_first_keyframe_are_dropped_and_counted(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    encoder = VideoEncoder(160, 96, codec=VideoCodec.VP9)
    session.send(True, config(encoder.codec_string, 160, 96), ChannelId.SCREEN)
    for index in range(4):
        encoded = encoder.encode(picture(160, 96, 8), 10 + index * STEP_US, keyframe=index == 2)
        assert encoded is not None
        if index == 0:
            continue  # the viewer joined late: the first keyframe is not in the recording
        frame = ScreenFrame(
            seq=index, keyframe=encoded.keyframe, timestamp_us=encoded.timestamp_us,
            data=encoded.data,
        )  # fmt: skip
        session.send(True, frame, ChannelId.SCREEN)
    writer.close()
    result = export(writer.path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert (result.videos[0].frames, result.videos[0].dropped) == (2, 1)
    pictures, times, _ = decoded(result.videos[0].path)
    assert len(pictures) == 2 and times[0] == 0.0
    assert is_red(pictures[0][20:44, 12:36])


def test_jpeg_rectangles_are_painted_and_encoded_to_vp9(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    width, height = 160, 96
    session.send(True, config("jpeg", width, height), ChannelId.SCREEN)
    jpeg = JpegRectsEncoder(quality=3)
    first = picture(width, height, 8)
    moved = picture(width, height, 100)
    frames = [
        jpeg.encode(first, [], 0),  # the whole screen
        jpeg.encode(moved, [Rect(0, 0, 80, 64), Rect(96, 0, 48, 64)], 1),  # the two changes
    ]
    for seq, frame in enumerate(frames):
        rects = tuple(
            ScreenRect(x=r.x, y=r.y, width=r.w, height=r.h, data=r.data) for r in frame.rects
        )
        session.send(True, ScreenRects(seq=seq, rects=rects), ChannelId.SCREEN)
    writer.close()
    result = export(writer.path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    (video,) = result.videos
    assert (video.codec, video.frames) == ("jpeg", 2)
    with av.open(str(video.path)) as container:
        assert container.streams.video[0].codec_context.name in {"vp9", "libvpx-vp9"}
    pictures, _, _ = decoded(video.path)
    assert len(pictures) == 2
    assert is_red(pictures[0][20:44, 12:36]) and is_grey(pictures[0][20:44, 104:128])
    assert is_grey(pictures[1][20:44, 12:36]) and is_red(pictures[1][20:44, 104:128])


def test_a_tampered_screen_frame_is_refused_with_its_offset_and_nothing_written(
    tmp_path: Path,
) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    send_video(session, VideoCodec.VP9, 160, 96, 5)
    writer.close()
    offsets = _offsets(writer.path)
    target = offsets[4]  # epoch, config, frames 0..: the third frame
    damaged = bytearray(writer.path.read_bytes())
    damaged[target + 40] ^= 0x01
    bad = tmp_path / "bad.rec"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(RecordingCorrupt) as caught:
        export(bad, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert caught.value.code == "recording_corrupt"
    assert caught.value.details["offset"] == target
    assert f"at byte {target}" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_an_unknown_codec_is_refused_with_a_code(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    session.send(True, config("avc1.42001f", 160, 96), ChannelId.SCREEN)
    writer.close()
    with pytest.raises(RecordingCodecUnsupported) as caught:
        export(writer.path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert caught.value.code == "recording_codec_unsupported"
    assert caught.value.details["codec"] == "avc1.42001f"
    assert caught.value.details["offset"] == _offsets(writer.path)[1]
    assert not (tmp_path / "out").exists()


def test_a_picture_without_a_config_is_corrupt(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    frame = ScreenFrame(seq=0, keyframe=True, timestamp_us=0, data=b"\x10\x00")
    session.send(True, frame, ChannelId.SCREEN)
    writer.close()
    with pytest.raises(RecordingCorrupt, match=r"no screen\.config") as caught:
        export(writer.path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert caught.value.details["offset"] == _offsets(writer.path)[1]


def test_a_rectangle_outside_the_configured_screen_is_corrupt(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    writer, session = new_recording(tmp_path, auditor)
    session.send(True, config("jpeg", 64, 64), ChannelId.SCREEN)
    whole = JpegRectsEncoder().encode(picture(160, 96, 8), [Rect(0, 0, 80, 80)], 0).rects[0]
    rect = ScreenRect(x=0, y=0, width=80, height=80, data=whole.data)
    session.send(True, ScreenRects(seq=0, rects=(rect,)), ChannelId.SCREEN)
    writer.close()
    with pytest.raises(RecordingCorrupt, match="outside the 64x64 screen") as caught:
        export(writer.path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert caught.value.details["offset"] == _offsets(writer.path)[2]
    assert not (tmp_path / "out").exists()
