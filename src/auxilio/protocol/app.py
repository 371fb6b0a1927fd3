"""Application messages: what travels inside the end-to-end channel, unseen by the server.

Two encodings, told apart by the first byte:

* ``{`` (0x7B): a JSON object with a ``type``, like control messages (chat, terminal set-up).
* ``0x01`` / ``0x02``: terminal input / output as ``tag(1) | terminal_id(4, big-endian) | raw
  bytes``. Terminal traffic is many tiny writes of arbitrary bytes (not always UTF-8); base64 in
  JSON would cost a third more on the wire and a parse per keystroke.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.types import UtcDatetime, WireModel

TerminalId = Annotated[int, Field(ge=0, le=2**32 - 1)]

_TAG_TERMINAL_INPUT = 0x01
_TAG_TERMINAL_OUTPUT = 0x02
_TERMINAL_PREFIX = struct.Struct(">BI")


class ChatMessage(WireModel):
    type: Literal["chat.message"] = "chat.message"
    text: Annotated[str, StringConstraints(min_length=1, max_length=8000)]
    sent_at: UtcDatetime


class TerminalOpen(WireModel):
    type: Literal["terminal.open"] = "terminal.open"
    terminal_id: TerminalId
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


class TerminalResize(WireModel):
    type: Literal["terminal.resize"] = "terminal.resize"
    terminal_id: TerminalId
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


class TerminalExit(WireModel):
    type: Literal["terminal.exit"] = "terminal.exit"
    terminal_id: TerminalId
    exit_code: int | None = None
    signal: int | None = None


class TerminalInput(WireModel):
    type: Literal["terminal.input"] = "terminal.input"
    terminal_id: TerminalId
    data: bytes


class TerminalOutput(WireModel):
    type: Literal["terminal.output"] = "terminal.output"
    terminal_id: TerminalId
    data: bytes


AppMessage = Annotated[
    ChatMessage | TerminalOpen | TerminalResize | TerminalExit | TerminalInput | TerminalOutput,
    Field(discriminator="type"),
]
_JSON_TYPES = frozenset({"chat.message", "terminal.open", "terminal.resize", "terminal.exit"})
_ADAPTER: TypeAdapter[AppMessage] = TypeAdapter(AppMessage)


def encode_app_message(message: AppMessage) -> bytes:
    if isinstance(message, TerminalInput | TerminalOutput):
        tag = _TAG_TERMINAL_INPUT if isinstance(message, TerminalInput) else _TAG_TERMINAL_OUTPUT
        return _TERMINAL_PREFIX.pack(tag, message.terminal_id) + message.data
    return message.model_dump_json().encode()


def decode_app_message(data: bytes) -> AppMessage:
    """Decode a decrypted application payload, raising ``ProtocolError`` on bad input."""
    if not data:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "empty application message")
    if data[0] in (_TAG_TERMINAL_INPUT, _TAG_TERMINAL_OUTPUT):
        if len(data) < _TERMINAL_PREFIX.size:
            raise ProtocolError(ProtocolErrorCode.MALFORMED, "short terminal data message")
        tag, terminal_id = _TERMINAL_PREFIX.unpack_from(data)
        payload = bytes(data[_TERMINAL_PREFIX.size :])
        if tag == _TAG_TERMINAL_INPUT:
            return TerminalInput(terminal_id=terminal_id, data=payload)
        return TerminalOutput(terminal_id=terminal_id, data=payload)
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ProtocolErrorCode.MALFORMED, f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(ProtocolErrorCode.MALFORMED, "expected a JSON object with a 'type'")
    if obj["type"] not in _JSON_TYPES:
        raise ProtocolError(
            ProtocolErrorCode.UNKNOWN_TYPE, f"unknown application message {obj['type'][:64]!r}"
        )
    try:
        return _ADAPTER.validate_json(data, strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"][1:]) or "(message)"
        raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, f"{location}: {first['msg']}") from exc
