"""Encoded frames decode to the screen they came from; keyframes come when asked; failures fall
back to JPEG rectangles."""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np
import pytest
from av.codec.context import CodecContext

from auxilio.agent.screen.capture import (
    DISPLAY_UNAVAILABLE,
    ENCODER_FAILED,
    ScreenError,
    ScreenSource,
)
from auxilio.agent.screen.changes import Rect
from auxilio.agent.screen.encoder import (
    EncodedFrame,
    EncoderFailed,
    JpegRectsEncoder,
    ScreenPipeline,
    VideoCodec,
    VideoEncoder,
    webcodecs_codec,
)

from .conftest import Scene, XServer

RED, GREEN, GREY = 0xFF0000, 0x00FF00, 0x202020
DECODER = {VideoCodec.VP8: "vp8", VideoCodec.VP9: "vp9"}
# 4:2:0 and the real-time quantiser move flat colours: a few levels on average, more in the odd
# block of a first keyframe at a real-time bitrate. Another colour is 255 levels away.
MEAN_TOLERANCE, PIXEL_TOLERANCE = 8, 48


def synthetic(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A grey desktop with a red window and some text-like dark bars."""
    rng = np.random.default_rng(seed)
    frame = np.full((height, width), 0xFF000000 | GREY, dtype=np.uint32)
    frame[100:300, 200:600] = 0xFF000000 | RED
    for y in range(320, min(height - 20, 700), 24):
        frame[y : y + 12, 40 : 40 + int(rng.integers(100, width // 2))] = 0xFFE0E0E0
    return frame


def decode(codec: VideoCodec, frames: list[EncodedFrame]) -> list[np.ndarray]:
    decoder = CodecContext.create(DECODER[codec], "r")
    images = []
    for f in frames:
        for decoded in decoder.decode(av.Packet(f.data)):
            images.append(decoded.to_ndarray(format="bgra"))
    return images


def colour_near(bgra: np.ndarray, rgb: int) -> bool:
    want = np.array([rgb & 0xFF, (rgb >> 8) & 0xFF, rgb >> 16], dtype=np.int16)
    error = np.abs(bgra[..., :3].astype(np.int16) - want)
    return bool(error.mean() <= MEAN_TOLERANCE and error.max() <= PIXEL_TOLERANCE)


@pytest.mark.parametrize("codec", list(VideoCodec))
def test_a_video_frame_decodes_to_the_screen_it_came_from(
    codec: VideoCodec, screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(1920, 1080)
    scene = scene_for(server.name)
    scene.background(GREY)
    scene.paint(320, 192, 640, 384, RED)
    with ScreenSource(server.name) as source:
        encoder = VideoEncoder(1920, 1080, codec=codec)
        first = encoder.encode(source.grab().pixels, 0)
        scene.paint(1280, 640, 256, 256, GREEN)
        second = encoder.encode(source.grab().pixels, 33_333)
    assert first is not None and second is not None
    assert first.keyframe and not second.keyframe
    assert (first.width, first.height, first.codec) == (
        1920,
        1080,
        webcodecs_codec(codec, 1920, 1080),
    )
    images = decode(codec, [first, second])
    assert len(images) == 2
    # Inside the windows, a few pixels away from their edges (4:2:0 blurs edges by a pixel).
    assert colour_near(images[0][196:572, 324:956], RED)
    assert colour_near(images[0][644:892, 1284:1532], GREY)
    assert colour_near(images[1][644:892, 1284:1532], GREEN)
    assert colour_near(images[1][196:572, 324:956], RED)


@pytest.mark.parametrize("codec", list(VideoCodec))
def test_a_keyframe_comes_when_asked_and_decodes_alone(codec: VideoCodec) -> None:
    encoder = VideoEncoder(1280, 720, codec=codec)
    frames = [encoder.encode(synthetic(1280, 720, seed=i), i * 33_333) for i in range(4)]
    asked = encoder.encode(synthetic(1280, 720, seed=9), 4 * 33_333, keyframe=True)
    assert all(f is not None for f in frames) and asked is not None
    assert [f.keyframe for f in frames if f] == [True, False, False, False]
    assert asked.keyframe
    # A viewer joining now starts from this frame only.
    (image,) = decode(codec, [asked])
    assert colour_near(image[104:296, 204:596], RED)


@pytest.mark.parametrize("codec", list(VideoCodec))
def test_converting_only_the_changed_rectangles_gives_the_same_picture(codec: VideoCodec) -> None:
    before = synthetic(1366, 768)
    after = before.copy()
    after[64:192, 1280:1366] = 0xFF000000 | GREEN  # the last tile column, 86 px wide
    after[704:768, 0:64] = 0xFF000000 | GREEN
    changed = [Rect(1280, 64, 86, 128), Rect(0, 704, 64, 64)]
    partial, full = VideoEncoder(1366, 768, codec=codec), VideoEncoder(1366, 768, codec=codec)
    frames = {}
    for name, encoder, rects in (("partial", partial, changed), ("full", full, None)):
        first = encoder.encode(before, 0)
        second = encoder.encode(after, 33_333, changed=rects)
        assert first is not None and second is not None
        frames[name] = decode(codec, [first, second])[1]
    assert colour_near(frames["partial"][68:188, 1284:1362], GREEN)
    assert colour_near(frames["partial"][708:764, 4:60], GREEN)
    assert colour_near(frames["partial"][104:296, 204:596], RED)
    difference = np.abs(frames["partial"].astype(np.int16) - frames["full"].astype(np.int16))
    assert difference.mean() < 1.0


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (1365, 767), (1360, 1080)])
def test_odd_and_awkward_sizes_are_coded_at_even_sizes(width: int, height: int) -> None:
    encoder = VideoEncoder(width, height, codec=VideoCodec.VP8)
    encoded = encoder.encode(synthetic(width, height), 0)
    assert encoded is not None
    assert (encoded.width, encoded.height) == (width + width % 2, height + height % 2)
    (image,) = decode(VideoCodec.VP8, [encoded])
    assert image.shape[:2] == (encoded.height, encoded.width)
    assert colour_near(image[104:296, 204:596], RED)


def test_the_webcodecs_strings_name_a_level_large_enough() -> None:
    assert webcodecs_codec(VideoCodec.VP8, 1920, 1080) == "vp8"
    assert webcodecs_codec(VideoCodec.VP9, 1920, 1080) == "vp09.00.40.08"
    assert webcodecs_codec(VideoCodec.VP9, 1280, 720) == "vp09.00.31.08"
    assert webcodecs_codec(VideoCodec.VP9, 3840, 2160) == "vp09.00.50.08"


def test_a_frame_of_another_size_is_an_encoder_failure() -> None:
    encoder = VideoEncoder(640, 480)
    with pytest.raises(EncoderFailed) as caught:
        encoder.encode(synthetic(800, 600), 0)
    assert caught.value.code == ENCODER_FAILED


def test_a_frame_too_small_to_encode_is_refused() -> None:
    with pytest.raises(EncoderFailed) as caught:
        VideoEncoder(1, 1)
    assert caught.value.code == ENCODER_FAILED


def test_jpeg_rectangles_decode_and_cover_the_change() -> None:
    frame = synthetic(1366, 768)
    rects = [Rect(192, 64, 448, 256), Rect(1344, 704, 22, 64)]
    frame[704:768, 1344:1366] = 0xFF000000 | GREEN
    encoded = JpegRectsEncoder().encode(frame, rects, 1000)
    assert not encoded.keyframe
    assert [(r.x, r.y, r.w, r.h) for r in encoded.rects] == [
        (192, 64, 448, 256),
        (1344, 704, 22, 64),
    ]
    decoder = CodecContext.create("mjpeg", "r")
    images = []
    for r in encoded.rects:
        assert r.data[:2] == b"\xff\xd8"  # a JPEG start-of-image marker
        (decoded,) = decoder.decode(av.Packet(r.data))
        images.append(decoded.to_ndarray(format="bgra"))
    assert images[0].shape[:2] == (256, 448)
    # The red window lies at x 200..600, y 100..300: inside the first rectangle at 8, 36.
    assert colour_near(images[0][40:232, 12:404], RED)
    assert colour_near(images[1][2:62, 2:20], GREEN)


def test_no_rectangles_means_a_full_jpeg_keyframe() -> None:
    encoded = JpegRectsEncoder().encode(synthetic(640, 480), [], 0)
    assert encoded.keyframe
    assert [(r.x, r.y, r.w, r.h) for r in encoded.rects] == [(0, 0, 640, 480)]


def test_a_rectangle_outside_the_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        JpegRectsEncoder().encode(synthetic(640, 480), [Rect(600, 0, 64, 64)], 0)


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def test_the_pipeline_sends_a_keyframe_then_only_changes(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(1366, 768)
    scene = scene_for(server.name)
    scene.background(GREY)
    window = scene.paint(128, 128, 128, 128, RED)
    clock = FakeClock()
    with ScreenSource(server.name) as source:
        pipeline = ScreenPipeline(source, keyframe_interval_s=10, clock=clock)
        first = pipeline.step()
        assert first is not None and first.video is not None and first.video.keyframe
        clock.ns += 33_000_000
        assert pipeline.step() is None  # nothing changed, nothing sent
        scene.recolour(window, GREEN)
        clock.ns += 33_000_000
        changed = pipeline.step()
        assert changed is not None and changed.video is not None
        assert not changed.video.keyframe
        assert (changed.report.rects, changed.report.changed_pixels) == (1, 128 * 128)
        assert changed.video.timestamp_us == 66_000
        pipeline.request_keyframe()
        clock.ns += 33_000_000
        asked = pipeline.step()  # the screen did not change, but a keyframe was asked for
        assert asked is not None and asked.video is not None and asked.video.keyframe
        clock.ns += 10_000_000_000
        periodic = pipeline.step()
        assert periodic is not None and periodic.video is not None and periodic.video.keyframe
        assert pipeline.mode == "video" and pipeline.fallback_reason is None


class BrokenEncoder(VideoEncoder):
    def encode(
        self,
        pixels: np.ndarray,
        timestamp_us: int,
        *,
        keyframe: bool = False,
        changed: list[Rect] | None = None,
    ) -> None:
        raise EncoderFailed("libvpx failed on a frame: simulated")


def test_a_failing_encoder_falls_back_to_full_jpeg_then_rectangles(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(1366, 768)
    scene = scene_for(server.name)
    scene.background(GREY)
    window = scene.paint(128, 128, 128, 128, RED)
    with ScreenSource(server.name) as source:
        pipeline = ScreenPipeline(source, encoder_factory=lambda w, h: BrokenEncoder(w, h))
        first = pipeline.step()
        assert first is not None and first.video is None and first.jpeg is not None
        assert first.jpeg.keyframe
        assert pipeline.mode == "jpeg"
        assert pipeline.fallback_reason == "libvpx failed on a frame: simulated"
        scene.recolour(window, GREEN)
        changed = pipeline.step()
        assert changed is not None and changed.jpeg is not None
        assert [(r.x, r.y, r.w, r.h) for r in changed.jpeg.rects] == [(128, 128, 128, 128)]


def test_the_pipeline_reports_a_killed_display(screen: Callable[..., XServer]) -> None:
    server = screen(640, 480)
    with ScreenSource(server.name) as source:
        pipeline = ScreenPipeline(source)
        assert pipeline.step() is not None
        server.kill()
        with pytest.raises(ScreenError) as caught:
            pipeline.step()
        assert caught.value.code == DISPLAY_UNAVAILABLE


def test_run_delivers_frames_at_most_at_the_target_rate(
    screen: Callable[..., XServer], scene_for: Callable[[str], Scene]
) -> None:
    server = screen(640, 480)
    scene = scene_for(server.name)
    window = scene.paint(0, 0, 64, 64, RED)
    sent: list[int] = []
    with ScreenSource(server.name) as source:
        pipeline = ScreenPipeline(source, fps=10)
        colours = iter([GREEN, RED] * 50)

        def on_output(output: object) -> None:
            sent.append(1)
            scene.recolour(window, next(colours))

        stats = pipeline.run(0.5, on_output)
    # Counted by slots, not timed: every slot grabbed once, each change sent once.
    assert stats.grabs == stats.frames + stats.unchanged
    assert stats.frames == len(sent) >= 1
    assert stats.keyframes >= 1
    assert stats.grabs <= 0.5 * 10 + 1
