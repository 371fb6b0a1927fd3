"""The screen capability on the device, on a real Xvfb: screen.start to frames paced by acks,
the person's pause, the viewer's stop, a viewer gone silent, the display going away, the video
encoder failing, and what is refused."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

for module in ("mss", "av", "numpy", "Xlib"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

import av  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from auxilio.agent.capabilities import screen as screen_module  # noqa: E402
from auxilio.agent.capabilities.screen import (  # noqa: E402
    STALL_US,
    ScreenHandler,
    choose_codec,
)
from auxilio.agent.capability_discovery import (  # noqa: E402
    available_capabilities,
    screen_viewable,
)
from auxilio.agent.dispatch import refusal  # noqa: E402
from auxilio.agent.screen.capture import Pixels, ScreenSource  # noqa: E402
from auxilio.agent.screen.changes import Rect  # noqa: E402
from auxilio.agent.screen.encoder import (  # noqa: E402
    EncodedFrame,
    EncoderFailed,
    ScreenPipeline,
    VideoCodec,
    VideoEncoder,
)
from auxilio.agent.session_window import SessionView, SessionWindow  # noqa: E402
from auxilio.protocol.app import AppMessage, decode_app_message, encode_app_message  # noqa: E402
from auxilio.protocol.frames import ActivityKind  # noqa: E402
from auxilio.protocol.screen import (  # noqa: E402
    ScreenAck,
    ScreenConfig,
    ScreenError,
    ScreenFrame,
    ScreenKeyframeRequest,
    ScreenPaused,
    ScreenRects,
    ScreenResumed,
    ScreenStart,
    ScreenStats,
    ScreenStop,
)
from auxilio.protocol.types import Capability  # noqa: E402

from . import xserver  # noqa: E402
from .capability_services import WAIT_SECONDS, Recorder, make_recorder  # noqa: E402
from .factories import now  # noqa: E402
from .screen.conftest import Scene, XServer, xvfb_screen  # noqa: E402
from .xserver import click, need_xdotool  # noqa: E402

display = xserver.display  # the fixture: a private Xvfb as DISPLAY
RED, BLUE, GREY = 0xFF0000, 0x0000FF, 0x808080
QUIET_SECONDS = 1.5  # how long "nothing more is sent" is watched (a pass proves a bound only)


@pytest.fixture
def server() -> Iterator[XServer]:
    with xvfb_screen(320, 240) as found:
        yield found


@pytest.fixture
def scene(server: XServer) -> Iterator[Scene]:
    painted = Scene(server.name)
    painted.background(GREY)
    painted.paint(40, 60, 120, 80, RED)
    try:
        yield painted
    finally:
        painted.close()


@pytest.fixture
def recorder(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Recorder:
    return make_recorder(
        tmp_path, server_key, technician_key, capabilities=(Capability.CHAT, Capability.SCREEN)
    )


@pytest.fixture
async def handler(
    recorder: Recorder, server: XServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ScreenHandler]:
    monkeypatch.setenv("DISPLAY", server.name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    made = ScreenHandler(recorder.services())
    try:
        yield made
    finally:
        await made.close()


async def next_of(recorder: Recorder, *kinds: type[AppMessage]) -> AppMessage:
    """The next message of one of ``kinds``; stats (about once a second) and a config not
    asked for are skipped, anything else fails."""
    while True:
        message = await recorder.next_sent()
        if isinstance(message, kinds):
            return message
        assert isinstance(message, ScreenStats | ScreenConfig), message


async def quiet(recorder: Recorder) -> list[AppMessage]:
    """What the handler sends within QUIET_SECONDS, stats left out."""
    found: list[AppMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUIET_SECONDS
    while (left := deadline - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(recorder.sent.get(), left)
        except TimeoutError:
            break
        if not isinstance(message, ScreenStats):
            found.append(message)
    return found


def decoded_rgb(config: ScreenConfig, frame: ScreenFrame) -> tuple[int, int, int, int, int, int]:
    """The keyframe decoded with libvpx: the colour at the red window's centre and outside it."""
    decoder = av.CodecContext.create("libvpx" if config.codec == "vp8" else "vp9", "r")
    pictures = decoder.decode(av.Packet(frame.data))
    assert pictures, "the keyframe did not decode"
    image = pictures[0].to_ndarray(format="rgb24")
    inside, outside = image[100, 100], image[200, 280]
    return (*map(int, inside), *map(int, outside))  # type: ignore[return-value]


def near(value: int, expected: int) -> bool:
    return abs(value - expected) <= 24  # lossy 4:2:0 video


async def test_config_then_a_keyframe_that_shows_the_screen_then_only_as_acks_allow(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("vp8", "jpeg"), max_fps=30))
    config = await next_of(recorder, ScreenConfig)
    assert isinstance(config, ScreenConfig)
    assert (config.codec, config.width, config.height, config.monitor) == ("vp8", 320, 240, 0)
    assert [(m.width, m.height) for m in config.monitors] == [(320, 240)]
    first = await next_of(recorder, ScreenFrame)
    assert isinstance(first, ScreenFrame)
    assert first.seq == 0 and first.keyframe
    r, g, b, r2, g2, b2 = decoded_rgb(config, first)
    assert near(r, 255) and near(g, 0) and near(b, 0)
    assert near(r2, 128) and near(g2, 128) and near(b2, 128)
    # The window holds two frames: with the screen changing and no ack, a second one comes
    # and then nothing more.
    scene.recolour(scene.windows[0], BLUE)
    second = await next_of(recorder, ScreenFrame)
    assert isinstance(second, ScreenFrame) and second.seq == 1
    scene.recolour(scene.windows[0], RED)
    assert [m for m in await quiet(recorder) if isinstance(m, ScreenFrame)] == []
    # One ack of both opens the window: the change waiting is sent.
    await handler.handle(ScreenAck(seq=1, decode_us=500))
    third = await next_of(recorder, ScreenFrame)
    assert isinstance(third, ScreenFrame) and third.seq == 2 and not third.keyframe
    # An ack of a frame never sent changes nothing (logged, not fatal).
    await handler.handle(ScreenAck(seq=99, decode_us=0))
    assert any("never sent" in str(e.get("what", "")) for e in recorder.log.events())
    # A keyframe request is honoured by the next frame.
    await handler.handle(ScreenAck(seq=2, decode_us=500))
    await handler.handle(ScreenKeyframeRequest(reason="decoder_error"))
    keyframe = await next_of(recorder, ScreenFrame)
    assert isinstance(keyframe, ScreenFrame) and keyframe.keyframe
    assert recorder.used == [Capability.SCREEN]
    assert [a.kind for a in recorder.activities] == [ActivityKind.SCREEN_VIEWED]
    assert "Your screen is being shared" in recorder.feed_text()
    # Each message goes over the wire and back unchanged (0x04 frames).
    assert decode_app_message(encode_app_message(keyframe)) == keyframe


async def test_jpeg_rectangles_when_the_viewer_asks_for_them(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("jpeg",)))
    config = await next_of(recorder, ScreenConfig)
    assert isinstance(config, ScreenConfig) and config.codec == "jpeg"
    rects = await next_of(recorder, ScreenRects)
    assert isinstance(rects, ScreenRects) and rects.seq == 0
    covered = sum(r.width * r.height for r in rects.rects)
    assert covered >= 320 * 240  # the first one covers the whole screen


async def test_pause_sends_nothing_until_resumed_and_resumes_with_a_keyframe(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("vp8",)))
    await next_of(recorder, ScreenConfig)
    first = await next_of(recorder, ScreenFrame)
    assert isinstance(first, ScreenFrame)
    await handler.set_paused(True)
    assert isinstance(await next_of(recorder, ScreenPaused, ScreenFrame), ScreenPaused)
    # Frames already sent may be acknowledged; nothing new is grabbed while paused.
    await handler.handle(ScreenAck(seq=first.seq, decode_us=0))
    scene.recolour(scene.windows[0], BLUE)
    assert [m for m in await quiet(recorder) if isinstance(m, ScreenFrame)] == []
    assert "paused" in recorder.feed_text()
    await handler.set_paused(False)
    assert isinstance(await next_of(recorder, ScreenResumed), ScreenResumed)
    after = await next_of(recorder, ScreenFrame)
    assert isinstance(after, ScreenFrame) and after.keyframe


async def test_the_viewers_stop_ends_the_stream_and_close_tells_the_viewer(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("vp8",)))
    await next_of(recorder, ScreenFrame)
    await handler.handle(ScreenStop())
    assert not handler.running
    scene.recolour(scene.windows[0], BLUE)
    await handler.handle(ScreenAck(seq=0, decode_us=0))
    assert [m for m in await quiet(recorder) if isinstance(m, ScreenFrame)] == []
    await handler.handle(ScreenStart(codecs=("vp8",)))
    await next_of(recorder, ScreenFrame)
    await handler.close()  # revoked: the viewer is told
    assert isinstance(await next_of(recorder, ScreenStop, ScreenFrame), ScreenStop)
    assert "no longer shared" in recorder.feed_text()


async def test_a_technician_gone_stops_the_stream_without_a_word_and_a_new_start_restarts(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    """technician_lost (agent/session.py): nothing more is sent, not even screen.stop, which
    would reach a console coming back before its new handshake."""
    await handler.handle(ScreenStart(codecs=("vp8",)))
    await next_of(recorder, ScreenFrame)
    await handler.viewer_gone()
    assert not handler.running
    scene.recolour(scene.windows[0], BLUE)
    await handler.handle(ScreenAck(seq=0, decode_us=0))
    assert [m for m in await quiet(recorder) if isinstance(m, ScreenFrame | ScreenStop)] == []
    await handler.handle(ScreenStart(codecs=("vp8",)))  # after the new handshake
    first = await next_of(recorder, ScreenFrame)
    assert first.seq == 0 and first.keyframe


async def test_the_display_going_away_is_screen_display_unavailable(
    handler: ScreenHandler, recorder: Recorder, server: XServer
) -> None:
    await handler.handle(ScreenStart(codecs=("jpeg",)))
    first = await next_of(recorder, ScreenRects)
    assert isinstance(first, ScreenRects)
    server.kill()
    await handler.handle(ScreenAck(seq=first.seq, decode_us=0))
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.display_unavailable"
    assert not handler.running


async def test_a_viewer_gone_silent_stops_the_stream_after_the_stall_time(
    recorder: Recorder, server: XServer, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer's page closed without a screen.stop (or it hangs): no ack comes. The device
    sends the window's frames and nothing more; once nothing has been acknowledged for
    STALL_US it ends the stream with screen.stop and tells the person."""
    monkeypatch.setenv("DISPLAY", server.name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    skipped = [0]  # the test's clock runs STALL_US ahead once the window is full
    handler = ScreenHandler(
        recorder.services(), now_us=lambda: screen_module._now_us() + skipped[0]
    )
    try:
        await handler.handle(ScreenStart(codecs=("vp8",)))
        first = await next_of(recorder, ScreenFrame)
        scene.recolour(scene.windows[0], BLUE)
        second = await next_of(recorder, ScreenFrame)
        assert isinstance(first, ScreenFrame) and isinstance(second, ScreenFrame)
        assert (first.seq, second.seq) == (0, 1)
        scene.recolour(scene.windows[0], RED)
        assert [m for m in await quiet(recorder) if isinstance(m, ScreenFrame)] == []
        assert handler.running  # a slow viewer is waited for
        skipped[0] = STALL_US
        assert isinstance(await next_of(recorder, ScreenStop, ScreenFrame), ScreenStop)
        assert not handler.running
        assert "screen_stalled" in recorder.events()
        assert "no longer shared" in recorder.feed_text()
    finally:
        await handler.close()


class FailingEncoder(VideoEncoder):
    """A real libvpx encoder that fails from its second frame on (as a broken library would)."""

    frames = 0

    def encode(
        self,
        pixels: Pixels,
        timestamp_us: int,
        *,
        keyframe: bool = False,
        changed: list[Rect] | None = None,
    ) -> EncodedFrame | None:
        FailingEncoder.frames += 1
        if FailingEncoder.frames > 1:
            raise EncoderFailed("libvpx failed on a frame: injected by the test")
        return super().encode(pixels, timestamp_us, keyframe=keyframe, changed=changed)


@pytest.fixture
def failing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    FailingEncoder.frames = 0

    def pipeline(source: ScreenSource, *, codec: VideoCodec | None, fps: int) -> ScreenPipeline:
        def factory(width: int, height: int) -> VideoEncoder:
            assert codec is not None
            return FailingEncoder(width, height, codec=codec, fps=fps)

        return ScreenPipeline(source, codec=codec, fps=fps, encoder_factory=factory)

    monkeypatch.setattr(screen_module, "ScreenPipeline", pipeline)


@pytest.mark.usefixtures("failing_encoder")
async def test_an_encoder_error_falls_back_to_jpeg_rectangles_the_viewer_listed(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("vp8", "jpeg")))
    config = await next_of(recorder, ScreenConfig)
    assert isinstance(config, ScreenConfig) and config.codec == "vp8"
    first = await next_of(recorder, ScreenFrame)
    assert isinstance(first, ScreenFrame) and first.keyframe
    await handler.handle(ScreenAck(seq=first.seq, decode_us=0))
    scene.recolour(scene.windows[0], BLUE)
    # The next frame fails to encode: a new screen.config (jpeg), then the whole screen.
    message = await recorder.next_sent()
    while isinstance(message, ScreenStats):
        message = await recorder.next_sent()
    assert isinstance(message, ScreenConfig) and message.codec == "jpeg"
    rects = await next_of(recorder, ScreenRects)
    assert isinstance(rects, ScreenRects) and rects.seq == 1
    assert sum(r.width * r.height for r in rects.rects) >= 320 * 240
    assert handler.running


@pytest.mark.usefixtures("failing_encoder")
async def test_an_encoder_error_without_jpeg_is_screen_encoder_failed(
    handler: ScreenHandler, recorder: Recorder, scene: Scene
) -> None:
    await handler.handle(ScreenStart(codecs=("vp8",)))
    first = await next_of(recorder, ScreenFrame)
    assert isinstance(first, ScreenFrame)
    await handler.handle(ScreenAck(seq=first.seq, decode_us=0))
    scene.recolour(scene.windows[0], BLUE)
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.encoder_failed"
    assert "injected by the test" in error.message
    assert not handler.running
    assert "screen.encoder_failed" in recorder.feed_text()


async def test_refusals_have_their_codes(
    handler: ScreenHandler, recorder: Recorder, server: XServer
) -> None:
    await handler.handle(ScreenStart(codecs=("avc1.42001f",)))
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.no_common_codec"
    await handler.handle(ScreenStart(codecs=("vp8",), monitor=3))
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.monitor_unknown"
    assert not handler.running
    recorder.allowed.discard(Capability.SCREEN)
    await handler.handle(ScreenStart(codecs=("vp8",)))
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.not_allowed"
    answer = refusal(ScreenStart(codecs=("vp8",)), "not_allowed")
    assert isinstance(answer, ScreenError) and answer.code == "screen.not_allowed"


async def test_no_display_is_screen_display_unavailable(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    handler = ScreenHandler(recorder.services())
    await handler.handle(ScreenStart(codecs=("vp8",)))
    error = await next_of(recorder, ScreenError)
    assert isinstance(error, ScreenError) and error.code == "screen.display_unavailable"
    assert recorder.used == []


def test_codec_choice_follows_the_viewers_order() -> None:
    assert choose_codec(("vp09", "vp8")) is VideoCodec.VP9
    assert choose_codec(("avc1", "vp8", "jpeg")) is VideoCodec.VP8
    assert choose_codec(("jpeg", "vp8")) == "jpeg"
    assert choose_codec(("avc1", "hev1")) is None


def test_screen_is_offered_only_where_it_can_be_seen(server: XServer) -> None:
    assert screen_viewable({"DISPLAY": server.name})
    assert not screen_viewable({})
    assert not screen_viewable({"XDG_SESSION_TYPE": "wayland", "DISPLAY": server.name})
    assert not screen_viewable({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": server.name})
    offered = available_capabilities(program="/bin/sh", env={"DISPLAY": server.name})
    assert Capability.SCREEN in offered
    assert Capability.INPUT in offered  # Xvfb has XTEST and RECORD
    assert Capability.SCREEN not in available_capabilities(program="/bin/sh", env={})


def test_the_session_windows_pause_button_asks_the_runner_to_pause_the_view(
    display: str,
) -> None:
    """The person's button next to the screen's Revoke posts ``screen_pause`` (the runner
    toggles the view's pause, as the typed 'p' does)."""
    need_xdotool()
    events: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    window = SessionWindow(on_event=lambda kind, value: events.put((kind, value)))
    consented = (Capability.CHAT, Capability.SCREEN)
    view = SessionView(technician="Tomás", organisation="Escuela", consented=consented,
                       allowed=consented, ends_at=now() + timedelta(minutes=30))  # fmt: skip
    window.start()
    try:
        window.show(view)
        click(display, "auxilio-pause-screen")
        assert events.get(timeout=WAIT_SECONDS) == ("screen_pause", None)
    finally:
        window.close()
