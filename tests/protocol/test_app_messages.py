from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auxilio.protocol.app import (
    ChatMessage,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
    TerminalResize,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.errors import ProtocolError

MESSAGES = [
    ChatMessage(text="¿Reinicio la impresora?", sent_at=datetime(2025, 3, 14, tzinfo=UTC)),
    TerminalOpen(terminal_id=1, cols=80, rows=24),
    TerminalResize(terminal_id=1, cols=120, rows=40),
    TerminalExit(terminal_id=1, exit_code=0),
    TerminalInput(terminal_id=1, data=b"ls -la\r"),
    TerminalOutput(terminal_id=7, data=b"\x1b[31mred\x1b[0m \xff not utf-8"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_application_messages_round_trip(message: object) -> None:
    assert decode_app_message(encode_app_message(message)) == message  # type: ignore[arg-type]


def test_terminal_data_is_sent_as_compact_binary() -> None:
    encoded = encode_app_message(TerminalOutput(terminal_id=7, data=b"hi"))
    assert encoded == b"\x02\x00\x00\x00\x07hi"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "protocol.malformed"),
        (b"\x01\x00", "protocol.malformed"),
        (b"{oops", "protocol.malformed"),
        (b'{"type":"terminal.input","terminal_id":1,"data":"x"}', "protocol.unknown_type"),
        (b'{"type":"screen.frame"}', "protocol.unknown_type"),
        (b'{"type":"terminal.open","terminal_id":1,"cols":0,"rows":24}', "protocol.invalid_field"),
    ],
)
def test_it_rejects_bad_application_payloads(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_app_message(data)
    assert caught.value.code == code
