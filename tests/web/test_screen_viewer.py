"""The screen viewer (static/js/screen-viewer.js) in chromium under the console's CSP, fed
the wire bytes Python encodes: VP8 / VP9 frames of a known picture decode onto the canvas with
the square where Python drew it, JPEG rectangles land at their places, every frame is
acknowledged in order, a broken frame asks for a keyframe; and the screen messages are the same
bytes, and bad ones the same error codes, in the page as in protocol/screen.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.protocol import app
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.screen import (
    ScreenConfig,
    ScreenFrame,
    ScreenMonitor,
    ScreenRect,
    ScreenRects,
)
from auxilio.protocol.screen_flow import ScreenFlow
from tests.protocol.test_screen_wire import BAD_SCREEN_PAYLOADS, MESSAGES

from .js_harness.screen_media import (
    CODECS,
    HEIGHT,
    WIDTH,
    VideoEncoder,
    encode_jpeg,
    encode_video,
    picture,
)
from .js_harness.server import Harness, serve_harness

MONITORS = (
    ScreenMonitor(index=0, name="eDP-1", x=0, y=0, width=WIDTH, height=HEIGHT, primary=True),
    ScreenMonitor(index=1, name="HDMI-1", x=WIDTH, y=0, width=1920, height=1080),
)
SQUARE_A = (200, 100, 160, 160)
SQUARE_B = (800, 420, 160, 160)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with serve_harness() as served:
        yield served


@pytest.fixture
def page(browser: Any, harness: Harness) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: _console_error(message, errors))
    page.goto(f"{harness.url}/harness/screen.html")
    page.locator("#ready", has_text="ready").wait_for()
    yield page
    context.close()
    assert errors == []


def _console_error(message: Any, errors: list[str]) -> None:
    # CSP violations and script errors count; the favicon the harness does not serve does not.
    if message.type == "error" and not message.location.get("url", "").endswith("favicon.ico"):
        errors.append(message.text)


def wire(*messages: app.AppMessage) -> list[str]:
    return [b64url_encode(app.encode_app_message(message)) for message in messages]


def feed(page: Any, *messages: app.AppMessage) -> None:
    page.evaluate("(list) => screenHarness.feed(list)", wire(*messages))


def sent(page: Any) -> list[app.AppMessage]:
    """What the viewer sent, decoded by Python; each is exactly Python's encoding."""
    out = []
    for text in page.evaluate("() => screenHarness.sent"):
        data = b64url_decode(text)
        message = app.decode_app_message(data)
        assert app.encode_app_message(message) == data
        out.append(message)
    return out


def wait_for_sent(page: Any, kind: str, count: int) -> list[app.AppMessage]:
    page.wait_for_function(
        """([kind, count]) => screenHarness.sent.filter((text) =>
             protocol.decodeAppMessage(e2e.b64urlDecode(text)).type === kind).length >= count""",
        arg=[kind, count],
        timeout=20_000,
    )
    return [message for message in sent(page) if message.type == kind]


def ack_seqs(page: Any, count: int) -> list[int]:
    acks = wait_for_sent(page, "screen.ack", count)
    return [ack.seq for ack in acks if isinstance(ack, app.ScreenAck)]


def pixel(page: Any, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = page.evaluate("([x, y]) => screenHarness.pixel(x, y)", [x, y])
    return r, g, b


def is_red(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return r > 180 and g < 80 and b < 80


def is_background(rgb: tuple[int, int, int]) -> bool:
    return all(abs(channel - 40) < 20 for channel in rgb)


def centre(square: tuple[int, int, int, int]) -> tuple[int, int]:
    x, y, w, h = square
    return x + w // 2, y + h // 2


def config(codec: str, **changes: Any) -> ScreenConfig:
    return ScreenConfig(
        codec=codec, width=WIDTH, height=HEIGHT, monitor=0, monitors=MONITORS, **changes
    )


def frames(kind: str, squares: list[tuple[int, int, int, int]]) -> list[ScreenFrame]:
    encoded = encode_video(kind, [picture(square) for square in squares])
    return [
        ScreenFrame(seq=seq, keyframe=key, timestamp_us=seq * 33_333, data=data)
        for seq, (key, data) in enumerate(encoded)
    ]


# -- video ---------------------------------------------------------------------------------


def test_the_viewer_offers_the_codecs_this_browser_decodes_and_jpeg_last(page: Any) -> None:
    page.evaluate("() => screenHarness.open().start({ monitor: 1, maxFps: 20 })")
    (start,) = wait_for_sent(page, "screen.start", 1)
    assert isinstance(start, app.ScreenStart)
    assert (start.monitor, start.max_fps) == (1, 20)
    assert start.codecs == ("vp09.00.40.08", "vp8", "av01.0.08M.08", "jpeg")


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_python_encoded_frames_paint_the_square_where_python_drew_it(page: Any, kind: str) -> None:
    stream = frames(kind, [SQUARE_A, SQUARE_A, SQUARE_B, SQUARE_B, SQUARE_B])
    assert [frame.keyframe for frame in stream] == [True, False, False, False, False]
    page.evaluate("() => screenHarness.open()")
    feed(page, config(CODECS[kind][1]), *stream[:2])
    wait_for_sent(page, "screen.ack", 2)
    assert is_red(pixel(page, *centre(SQUARE_A)))
    assert is_background(pixel(page, *centre(SQUARE_B)))

    feed(page, *stream[2:])
    acks = wait_for_sent(page, "screen.ack", 5)
    # Delta frames moved the square: it is at B now, and A is background again.
    assert is_red(pixel(page, *centre(SQUARE_B)))
    assert is_background(pixel(page, *centre(SQUARE_A)))
    assert is_background(pixel(page, 5, 5))
    assert [ack.seq for ack in acks if isinstance(ack, app.ScreenAck)] == [0, 1, 2, 3, 4]
    assert page.evaluate("() => screenHarness.viewer.stats().mode") == "video"
    assert not [m for m in sent(page) if m.type == "screen.keyframe_request"]


def test_a_corrupted_keyframe_asks_for_a_keyframe_and_is_still_acknowledged(page: Any) -> None:
    good = frames("vp8", [SQUARE_A])[0]
    broken = bytearray(good.data)
    broken[3:6] = b"\x00\x00\x00"  # the VP8 keyframe start code
    page.evaluate("() => screenHarness.open()")
    feed(page, config("vp8"), good.model_copy(update={"data": bytes(broken)}))
    (request,) = wait_for_sent(page, "screen.keyframe_request", 1)
    assert request == app.ScreenKeyframeRequest(reason="decoder_error")
    assert ack_seqs(page, 1) == [0]

    # The device answers with a keyframe: the new decoder paints it.
    feed(page, good.model_copy(update={"seq": 1}))
    assert ack_seqs(page, 2) == [0, 1]
    assert is_red(pixel(page, *centre(SQUARE_A)))


def test_a_delta_frame_without_its_keyframe_is_dropped_and_a_keyframe_asked_once(
    page: Any,
) -> None:
    stream = frames("vp8", [SQUARE_A, SQUARE_B, SQUARE_B])
    page.evaluate("() => screenHarness.open()")
    feed(page, config("vp8"), stream[1], stream[2])
    assert ack_seqs(page, 2) == [1, 2]
    requests = [m for m in sent(page) if m.type == "screen.keyframe_request"]
    assert requests == [app.ScreenKeyframeRequest(reason="frame_missing")]
    assert pixel(page, *centre(SQUARE_B)) == (0, 0, 0)  # nothing was painted (opaque black)


def test_an_unsupported_codec_falls_back_to_asking_for_jpeg(page: Any) -> None:
    page.evaluate("() => screenHarness.open()")
    feed(page, config("av01.9.99z.99"), frames("vp8", [SQUARE_A])[0])
    starts = wait_for_sent(page, "screen.start", 1)
    assert starts == [app.ScreenStart(monitor=0, max_fps=30, codecs=("jpeg",))]
    assert ack_seqs(page, 1) == [0]


def test_a_device_paced_by_the_viewers_acks_streams_through_a_broken_frame(page: Any) -> None:
    """The device side of section 3b (ScreenFlow, a live encoder, a virtual clock) against
    the page: every acknowledgement the viewer sends is one the window accepts, a broken frame
    brings a keyframe request and the device answers with a keyframe, and the last picture is
    on the canvas."""
    flow = ScreenFlow(max_frames=2, max_fps=30)
    encoder = VideoEncoder("vp8")
    squares = [(100 + 60 * n, 100 + 30 * n, 120, 120) for n in range(10)]
    page.evaluate("() => screenHarness.open()")
    feed(page, config("vp8"))
    now, handled, sent_frames, broken, keyframes = 0, 0, 0, None, []
    while sent_frames < len(squares) or flow.in_flight:
        now += 10_000  # virtual microseconds: nothing here reads the wall clock
        replies = sent(page)[handled:]
        handled += len(replies)
        for reply in replies:
            if isinstance(reply, app.ScreenAck):
                flow.acked(seq=reply.seq, decode_us=reply.decode_us, now_us=now)
            elif isinstance(reply, app.ScreenKeyframeRequest):
                flow.request_keyframe()
        if sent_frames < len(squares) and flow.may_send(now):
            keyframe, data = encoder.encode(picture(squares[sent_frames]),
                                            keyframe=flow.keyframe_due)  # fmt: skip
            if sent_frames == 4:
                broken, data = flow.next_seq, data[:2]  # cut short on the way
            seq = flow.sent(size=len(data), keyframe=keyframe, now_us=now)
            if keyframe:
                keyframes.append(seq)
            feed(page, ScreenFrame(seq=seq, keyframe=keyframe, timestamp_us=now, data=data))
            sent_frames += 1
            assert flow.in_flight <= 2
        elif not replies and (not flow.has_room() or sent_frames == len(squares)):
            # Only the viewer can move things on now (a wait that times out fails the test).
            page.wait_for_function("(n) => screenHarness.sent.length > n", arg=handled)
    requests = [m for m in sent(page) if isinstance(m, app.ScreenKeyframeRequest)]
    assert requests, "the broken frame asked for a keyframe"
    assert broken is not None and keyframes[0] == 0 and keyframes[-1] > broken
    assert [a.seq for a in sent(page) if isinstance(a, app.ScreenAck)][-1] == len(squares) - 1
    assert is_red(pixel(page, *centre(squares[-1])))
    assert is_background(pixel(page, *centre(squares[0])))
    assert flow.srtt_us is not None


# -- JPEG rectangles -----------------------------------------------------------------------


def test_jpeg_rectangles_are_painted_at_their_places(page: Any) -> None:
    blue = encode_jpeg(picture((0, 0, 96, 64), width=96, height=64, colour=(20, 40, 230)))
    green = encode_jpeg(picture((0, 0, 200, 120), width=200, height=120, colour=(20, 200, 40)))
    page.evaluate("() => screenHarness.open()")
    feed(
        page,
        config("jpeg"),
        ScreenRects(
            seq=0,
            rects=(
                ScreenRect(x=0, y=0, width=WIDTH, height=HEIGHT, data=encode_jpeg(picture(None))),
                ScreenRect(x=50, y=60, width=96, height=64, data=blue),
                ScreenRect(x=900, y=500, width=200, height=120, data=green),
            ),
        ),
    )
    assert ack_seqs(page, 1) == [0]
    r, g, b = pixel(page, 50 + 48, 60 + 32)
    assert b > 180 and r < 80 and g < 80
    r, g, b = pixel(page, 900 + 100, 500 + 60)
    assert g > 160 and r < 80 and b < 80
    for outside in ((45, 55), (150, 130), (895, 495), (1105, 625)):
        assert is_background(pixel(page, *outside)), outside
    assert page.evaluate("() => screenHarness.viewer.stats().mode") == "jpeg"


def test_a_broken_jpeg_asks_for_a_full_picture_and_is_acknowledged(page: Any) -> None:
    page.evaluate("() => screenHarness.open()")
    rect = ScreenRect(x=0, y=0, width=8, height=8, data=b"\xff\xd8 not really a jpeg")
    feed(page, config("jpeg"), ScreenRects(seq=0, rects=(rect,)))
    assert ack_seqs(page, 1) == [0]
    requests = wait_for_sent(page, "screen.keyframe_request", 1)
    assert requests == [app.ScreenKeyframeRequest(reason="decoder_error")]


def test_a_rectangle_outside_the_configured_screen_is_refused(page: Any) -> None:
    page.evaluate("() => screenHarness.open()")
    rect = ScreenRect(x=WIDTH - 4, y=0, width=8, height=8, data=encode_jpeg(picture(None, width=8,
                      height=8)))  # fmt: skip
    feed(page, config("jpeg"), ScreenRects(seq=0, rects=(rect,)))
    wait_for_sent(page, "screen.ack", 1)
    assert page.evaluate("() => screenHarness.errors") == ["protocol.invalid_field"]
    assert "protocol.invalid_field" in page.locator("#screen-status").inner_text()


# -- controls ------------------------------------------------------------------------------


def test_monitor_switch_pause_quality_and_scaling(page: Any) -> None:
    page.evaluate("() => screenHarness.open()")
    feed(page, config("vp8"), *frames("vp8", [SQUARE_A]))
    wait_for_sent(page, "screen.ack", 1)
    select = page.locator("#screen-monitor")
    assert select.locator("option").all_inner_texts() == [
        "Monitor 1: eDP-1 1280×720",
        "Monitor 2: HDMI-1 1920×1080",
    ]
    select.select_option("1")
    assert wait_for_sent(page, "screen.monitor", 1) == [app.ScreenMonitorSelect(monitor=1)]

    # Fitted into its 640x400 box, aspect kept; then actual size.
    box = page.locator("#screen").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (640, 360)
    page.locator("#screen-scale").click()
    box = page.locator("#screen").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (WIDTH, HEIGHT)

    feed(page, app.ScreenPaused(), app.ScreenStats(rtt_us=48_000))
    status = page.locator("#screen-status")
    assert status.inner_text() == "The person paused the screen view."
    page.locator("#screen-quality").filter(has_text="48 ms").wait_for(timeout=5_000)
    feed(page, app.ScreenResumed())
    assert status.inner_text() == ""

    page.locator("#screen-fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement?.id === 'screen-box'")


def test_stop_sends_screen_stop_and_ignores_later_frames(page: Any) -> None:
    page.evaluate("() => screenHarness.open()")
    page.evaluate("() => screenHarness.viewer.stop()")
    feed(page, config("vp8"), *frames("vp8", [SQUARE_A]))
    assert [m.type for m in sent(page)] == ["screen.stop"]
    assert page.locator("#screen-status").inner_text() == "The screen view has stopped."


# -- the same bytes, the same errors ------------------------------------------------------


def test_every_screen_message_is_the_same_bytes_in_python_and_in_the_page(page: Any) -> None:
    again = page.evaluate(
        """(list) => list.map((text) => {
             const message = protocol.decodeAppMessage(e2e.b64urlDecode(text));
             return [protocol.channelOf(message.type),
                     e2e.b64urlEncode(protocol.encodeAppMessage(message))];
           })""",
        wire(*MESSAGES),
    )
    for message, text, (channel, echoed) in zip(MESSAGES, wire(*MESSAGES), again, strict=True):
        assert channel == 4, message.type
        assert echoed == text, message.type


@pytest.mark.parametrize(("payload", "code"), BAD_SCREEN_PAYLOADS)
def test_bad_screen_payloads_get_the_same_code_in_the_page(
    page: Any, payload: bytes, code: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        app.decode_app_message(payload)
    assert caught.value.code == code
    result = page.evaluate(
        """(text) => { try { return protocol.decodeAppMessage(e2e.b64urlDecode(text)).type; }
                       catch (error) { return error.code ?? String(error); } }""",
        b64url_encode(payload),
    )
    assert result == code
