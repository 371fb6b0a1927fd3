"""Remote control messages on the wire (protocol/remote_control.py): every type round-trips on
the INPUT channel, and bad ones are refused with stable codes. The page's protocol.js is held to
the same bytes and codes in tests/web/test_e2e_interop.py (``MESSAGES``, ``BAD``)."""

from __future__ import annotations

import pytest

from auxilio.protocol import app
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.remote_control import (
    InputError,
    InputKey,
    InputPaused,
    InputPointer,
    InputResumed,
    InputRevoked,
)

MESSAGES: list[app.AppMessage] = [
    InputPointer(x=0, y=0, width=1, height=1),
    InputPointer(x=639, y=10, width=640, height=480, down=(1, 3), up=(2,), wheel_x=-1, wheel_y=10),
    InputKey(code="KeyA", key="a", down=True),
    InputKey(code="ShiftLeft", key="Shift", down=False, ctrl=True, shift=True, alt=True, meta=True),
    InputKey(code="Quote", key="´", down=True),
    InputPaused(),
    InputResumed(),
    InputRevoked(reason="take_back"),
    InputRevoked(reason="ended"),
    InputError(code="screen.input.not_viewing", message="no screen view"),
    InputError(code="screen.input.rate_limited"),
]

BAD: list[bytes] = [
    b'{"type":"input.pointer","x":10,"y":4,"width":10,"height":10}',
    b'{"type":"input.pointer","x":1,"y":10,"width":10,"height":10}',
    b'{"type":"input.pointer","x":-1,"y":1,"width":10,"height":10}',
    b'{"type":"input.pointer","x":1,"y":1,"width":0,"height":10}',
    b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"down":[4]}',
    b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"down":[1,1,1,1]}',
    b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"wheel_y":11}',
    b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"buttons":1}',
    b'{"type":"input.key","code":"Key A","key":"a","down":true}',
    b'{"type":"input.key","code":"KeyA","key":"","down":true}',
    b'{"type":"input.key","code":"KeyA","key":"a","down":"yes"}',
    b'{"type":"input.key","code":"KeyA","key":"a"}',
    b'{"type":"input.error","code":"files.nope"}',
    b'{"type":"input.revoked","reason":"because"}',
    b'{"type":"input.paused","by":"technician"}',
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_every_message_round_trips_on_the_input_channel(message: app.AppMessage) -> None:
    assert app.decode_app_message(app.encode_app_message(message)) == message
    assert app.CHANNEL_OF[type(message)] is ChannelId.INPUT


@pytest.mark.parametrize("data", BAD)
def test_bad_messages_are_refused_as_invalid_fields(data: bytes) -> None:
    with pytest.raises(ProtocolError) as raised:
        app.decode_app_message(data)
    assert raised.value.code == "protocol.invalid_field"
