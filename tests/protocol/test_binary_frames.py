from __future__ import annotations

import pytest

from auxilio.protocol.binary import (
    MAX_BINARY_FRAME_BYTES,
    ChannelId,
    FrameHeader,
    parse_header,
)
from auxilio.protocol.errors import ProtocolError


def test_a_header_is_version_channel_flags() -> None:
    assert FrameHeader(channel=ChannelId.TERMINAL).encode() == b"\x01\x02\x00"
    assert parse_header(b"\x01\x02\x00rest") == FrameHeader(channel=ChannelId.TERMINAL)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x01\x02", "protocol.malformed"),
        (b"\x02\x02\x00", "protocol.unsupported_version"),
        (b"\x01\xee\x00", "protocol.invalid_field"),
        (b"\x01\x02\x01", "protocol.invalid_field"),
        (b"\x01\x02\x00" + bytes(MAX_BINARY_FRAME_BYTES), "protocol.too_large"),
    ],
    ids=["short", "version", "channel", "flags", "size"],
)
def test_it_rejects_a_bad_header(frame: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_header(frame)
    assert caught.value.code == code


def test_channel_ids_fit_in_one_byte_and_are_unique() -> None:
    values = [channel.value for channel in ChannelId]
    assert len(values) == len(set(values))
    assert all(0 <= value < 256 for value in values)
