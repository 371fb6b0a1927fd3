"""Screen messages (protocol.screen, docs/protocol.md section 3b): the binary frames' exact
bytes, their limits, and the JSON messages through app.decode_app_message."""

from __future__ import annotations

import struct

import pytest
from pydantic import ValidationError

from auxilio.protocol import app
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.screen import (
    MAX_SCREEN_PAYLOAD,
    MAX_SCREEN_RECTS,
    ScreenAck,
    ScreenConfig,
    ScreenError,
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

JPEG = b"\xff\xd8\xff\xe0fake"
MONITORS = (
    ScreenMonitor(index=0, name="eDP-1", x=0, y=0, width=1280, height=720, primary=True),
    ScreenMonitor(index=1, name="HDMI-1", x=1280, y=0, width=1920, height=1080),
)
MESSAGES = [
    ScreenStart(monitor=1, max_fps=20, codecs=("vp09.00.10.08", "vp8", "jpeg")),
    ScreenConfig(codec="vp8", width=1280, height=720, monitor=0, monitors=MONITORS),
    ScreenConfig(
        codec="avc1.42001f", width=8, height=8, monitor=0, monitors=MONITORS, description="AQID"
    ),
    ScreenAck(seq=41, decode_us=1900),
    ScreenKeyframeRequest(reason="decoder_error"),
    ScreenMonitorSelect(monitor=1),
    ScreenPaused(),
    ScreenResumed(),
    ScreenStats(rtt_us=12_000),
    ScreenStop(),
    ScreenError(code="screen.monitor_unknown", message="monitor 3"),
    ScreenError(code="screen.input.rate_limited"),
    ScreenFrame(seq=7, keyframe=True, timestamp_us=33_333, data=b"\x9d\x01\x2a"),
    ScreenRects(seq=8, rects=(ScreenRect(x=10, y=20, width=30, height=40, data=JPEG),)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_screen_messages_round_trip_on_the_screen_channel(message: app.AppMessage) -> None:
    assert app.decode_app_message(app.encode_app_message(message)) == message
    assert app.CHANNEL_OF[type(message)] is ChannelId.SCREEN


def test_a_video_frame_is_tag_seq_flags_timestamp_then_the_chunk() -> None:
    frame = ScreenFrame(seq=0x01020304, keyframe=True, timestamp_us=2**40 + 5, data=b"AB")
    assert app.encode_app_message(frame) == (
        b"\x04\x01\x02\x03\x04\x01" + (2**40 + 5).to_bytes(8, "big") + b"AB"
    )
    delta = frame.model_copy(update={"keyframe": False})
    assert app.encode_app_message(delta)[5] == 0


def test_jpeg_rectangles_are_counted_then_each_with_its_place_and_length() -> None:
    rects = ScreenRects(
        seq=3,
        rects=(
            ScreenRect(x=1, y=2, width=3, height=4, data=JPEG),
            ScreenRect(x=500, y=600, width=70, height=80, data=JPEG + b"!"),
        ),
    )
    expected = (
        b"\x05\x00\x00\x00\x03\x00\x02"
        + struct.pack(">HHHHI", 1, 2, 3, 4, len(JPEG)) + JPEG
        + struct.pack(">HHHHI", 500, 600, 70, 80, len(JPEG) + 1) + JPEG + b"!"
    )  # fmt: skip
    assert app.encode_app_message(rects) == expected


def _rects(*parts: tuple[int, int, int, int, bytes], count: int | None = None) -> bytes:
    body = b"".join(struct.pack(">HHHHI", x, y, w, h, len(d)) + d for x, y, w, h, d in parts)
    return (
        b"\x05\x00\x00\x00\x01" + struct.pack(">H", len(parts) if count is None else count) + body
    )


# The same samples go through the page's decoder in tests/web/test_screen_viewer.py.
BAD_SCREEN_PAYLOADS = [
    (b"\x04\x00\x00\x00\x01\x01", "protocol.malformed"),  # shorter than the prefix
    (b"\x04\x00\x00\x00\x01\x01" + bytes(8), "protocol.invalid_field"),  # no payload
    (b"\x04\x00\x00\x00\x01\x02" + bytes(8) + b"x", "protocol.invalid_field"),  # unknown flag
    (b"\x04\x00\x00\x00\x01\x00" + (2**53 + 1).to_bytes(8, "big") + b"x",
     "protocol.invalid_field"),  # timestamp past 2**53
    (b"\x04" + bytes(13) + bytes(MAX_SCREEN_PAYLOAD), "protocol.too_large"),
    (b"\x05\x00\x00\x00\x01\x00", "protocol.malformed"),  # no count
    (_rects(), "protocol.invalid_field"),  # count 0
    (_rects(*[(0, 0, 1, 1, JPEG)] * (MAX_SCREEN_RECTS + 1)), "protocol.invalid_field"),
    (_rects((0, 0, 1, 1, JPEG), count=2), "protocol.malformed"),  # a rectangle missing
    (_rects((0, 0, 1, 1, JPEG))[:-1], "protocol.malformed"),  # image cut short
    (_rects((0, 0, 1, 1, JPEG)) + b"\x00", "protocol.malformed"),  # trailing bytes
    (_rects((0, 0, 0, 1, JPEG)), "protocol.invalid_field"),  # empty rectangle
    (_rects((16380, 0, 10, 1, JPEG)), "protocol.invalid_field"),  # past the largest screen
    (_rects((0, 0, 1, 1, b"\x89PNG")), "protocol.invalid_field"),  # not a JPEG
    (b'{"type":"screen.frame","seq":1}', "protocol.unknown_type"),  # binary only
    (b'{"type":"screen.start","monitor":0,"max_fps":30,"codecs":[]}', "protocol.invalid_field"),
    (b'{"type":"screen.start","monitor":0,"max_fps":61,"codecs":["vp8"]}',
     "protocol.invalid_field"),
    (b'{"type":"screen.start","monitor":0,"max_fps":30,"codecs":["VP8!"]}',
     "protocol.invalid_field"),
    (b'{"type":"screen.ack","seq":-1,"decode_us":0}', "protocol.invalid_field"),
    (b'{"type":"screen.ack","seq":1,"decode_us":1.5}', "protocol.invalid_field"),
    (b'{"type":"screen.ack","seq":1}', "protocol.invalid_field"),
    (b'{"type":"screen.keyframe_request","reason":"because"}', "protocol.invalid_field"),
    (b'{"type":"screen.monitor","monitor":16}', "protocol.invalid_field"),
    (b'{"type":"screen.error","code":"files.busy","message":""}', "protocol.invalid_field"),
    (b'{"type":"screen.error","code":"screen.","message":""}', "protocol.invalid_field"),
    (b'{"type":"screen.config","codec":"vp8","width":0,"height":720,"monitor":0,'
     b'"monitors":[{"index":0,"name":"","x":0,"y":0,"width":1,"height":1,"primary":true}],'
     b'"description":null}', "protocol.invalid_field"),
    (b'{"type":"screen.config","codec":"vp8","width":1,"height":720,"monitor":0,'
     b'"monitors":[],"description":null}', "protocol.invalid_field"),
    (b'{"type":"screen.config","codec":"vp8","width":1,"height":720,"monitor":0,'
     b'"monitors":[{"index":0,"x":0,"y":0,"width":1,"height":1,"extra":1}],'
     b'"description":null}', "protocol.invalid_field"),
    (b'{"type":"screen.stop","why":"x"}', "protocol.invalid_field"),
    (b'{"type":"screen.error","code":"screen.x","message":"' + b"a" * 2001 + b'"}',
     "protocol.invalid_field"),
    (b'{"type":"screen.config","codec":"vp8","width":1,"height":720,"monitor":0,'
     b'"monitors":[{"index":0,"name":"' + "é".encode() * 201 + b'","x":0,"y":0,"width":1,'
     b'"height":1,"primary":false}],"description":null}', "protocol.invalid_field"),
    (b'{"type":"screen.config","codec":"vp8","width":1,"height":720,"monitor":0,'
     b'"monitors":[{"index":0,"x":0,"y":0,"width":1,"height":1}],"description":"a+b"}',
     "protocol.invalid_field"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "code"), BAD_SCREEN_PAYLOADS)
def test_it_rejects_bad_screen_payloads_with_a_stable_code(payload: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        app.decode_app_message(payload)
    assert caught.value.code == code


def test_rectangles_too_large_for_one_frame_are_refused_when_encoding() -> None:
    big = JPEG + bytes(MAX_SCREEN_PAYLOAD // 2)
    rects = ScreenRects(seq=1, rects=(ScreenRect(x=0, y=0, width=1, height=1, data=big),) * 2)
    with pytest.raises(ProtocolError) as caught:
        app.encode_app_message(rects)
    assert caught.value.code == "protocol.too_large"


def test_the_largest_video_frame_fits_one_e2e_frame() -> None:
    frame = ScreenFrame(seq=1, keyframe=False, timestamp_us=0, data=bytes(MAX_SCREEN_PAYLOAD - 14))
    encoded = app.encode_app_message(frame)
    assert len(encoded) == MAX_SCREEN_PAYLOAD
    assert app.decode_app_message(encoded) == frame


def test_a_rectangle_that_is_not_a_jpeg_cannot_be_built_to_send() -> None:
    with pytest.raises(ValidationError, match="not a JPEG image"):
        ScreenRect(x=0, y=0, width=1, height=1, data=b"\x89PNG")


def test_a_codec_is_matched_by_its_family() -> None:
    assert [codec_family(c) for c in ("vp09.00.40.08", "vp8", "av01.0.08M.08", "jpeg")] == [
        "vp09",
        "vp8",
        "av01",
        "jpeg",
    ]
    assert ScreenConfig(codec="av01.0.08M.08", width=1, height=1, monitor=0, monitors=MONITORS)
