"""Clipboard messages on the wire (protocol/clipboard.py): every type round-trips on the
CLIPBOARD channel, and bad ones are refused with stable codes. The page's protocol.js is held to
the same bytes and codes in tests/web/test_e2e_interop.py (``MESSAGES``, ``BAD``)."""

from __future__ import annotations

import pytest

from auxilio.protocol import app
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.clipboard import (
    MAX_CLIPBOARD_BYTES,
    ClipboardContent,
    ClipboardDone,
    ClipboardError,
    ClipboardGet,
    ClipboardSet,
)
from auxilio.protocol.errors import ProtocolError

MESSAGES: list[app.AppMessage] = [
    ClipboardSet(request_id=1, text="hola ñ\n\t€ 🙂"),
    ClipboardSet(request_id=2**32 - 1, text="é" * (MAX_CLIPBOARD_BYTES // 2)),
    ClipboardDone(request_id=1, size=12),
    ClipboardGet(request_id=3),
    ClipboardContent(request_id=3, text=""),
    ClipboardContent(request_id=3, text='"quoted" \\ \u0001'),
    ClipboardError(ref=3, code="screen.clipboard.empty", message="the clipboard is empty"),
    ClipboardError(ref=4, code="screen.clipboard.not_allowed"),
]

BAD: list[bytes] = [
    b'{"type":"clipboard.set","request_id":1,"text":""}',
    b'{"type":"clipboard.set","request_id":1}',
    b'{"type":"clipboard.set","request_id":-1,"text":"a"}',
    b'{"type":"clipboard.set","request_id":1,"text":"' + b"a" * (MAX_CLIPBOARD_BYTES + 1) + b'"}',
    b'{"type":"clipboard.set","request_id":1,"text":"'
    + "é".encode() * (MAX_CLIPBOARD_BYTES // 2 + 1)
    + b'"}',
    b'{"type":"clipboard.set","request_id":1,"text":5}',
    b'{"type":"clipboard.get","request_id":1,"text":"a"}',
    b'{"type":"clipboard.done","request_id":1,"size":131073}',
    b'{"type":"clipboard.error","ref":1,"code":"screen.input.empty"}',
    b'{"type":"clipboard.error","ref":1,"code":"screen.clipboard"}',
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_every_message_round_trips_on_the_clipboard_channel(message: app.AppMessage) -> None:
    assert app.decode_app_message(app.encode_app_message(message)) == message
    assert app.CHANNEL_OF[type(message)] is ChannelId.CLIPBOARD


@pytest.mark.parametrize("data", BAD)
def test_bad_messages_are_refused_as_invalid_fields(data: bytes) -> None:
    with pytest.raises(ProtocolError) as raised:
        app.decode_app_message(data)
    assert raised.value.code == "protocol.invalid_field"


def test_the_limit_is_bytes_of_utf8_not_characters() -> None:
    with pytest.raises(ValueError, match="bytes of UTF-8"):
        ClipboardSet(request_id=1, text="€" * (MAX_CLIPBOARD_BYTES // 3 + 1))
