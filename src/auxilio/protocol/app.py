"""Application messages: what travels inside the end-to-end channel, unseen by the server.

Two encodings, told apart by the first byte:

* ``{`` (0x7B): a JSON object with a ``type``, like control messages (chat, terminal set-up).
* ``0x01`` / ``0x02``: terminal input / output as ``tag(1) | terminal_id(4, big-endian) | raw
  bytes``. Terminal traffic is many tiny writes of arbitrary bytes (not always UTF-8); base64 in
  JSON would cost a third more on the wire and a parse per keystroke.
* ``0x03``: a file chunk as ``tag(1) | transfer_id(4) | offset(8, big-endian) | bytes``, either
  way (the device sends a download's chunks, the technician an upload's). Chunks are pipelined:
  the sender does not wait for an acknowledgement, the WebSocket's flow control paces it.
* ``0x04`` / ``0x05``: a screen video frame / JPEG rectangles (``protocol.screen``).

Files, diagnostics and runbooks (docs/protocol.md, "Files, diagnostics and runbooks"): every
request carries a technician-chosen integer id (``request_id``, ``transfer_id``, ``run_id``)
that the device's answer or ``*.error`` repeats as ``ref``.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from auxilio.protocol.binary import ChannelId
from auxilio.protocol.clipboard import (
    CLIPBOARD_JSON_TYPES,
    ClipboardContent,
    ClipboardDone,
    ClipboardError,
    ClipboardGet,
    ClipboardSet,
)
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.remote_control import (
    INPUT_JSON_TYPES,
    InputError,
    InputKey,
    InputPaused,
    InputPointer,
    InputResumed,
    InputRevoked,
)
from auxilio.protocol.screen import (
    SCREEN_JSON_TYPES,
    TAG_SCREEN_FRAME,
    TAG_SCREEN_RECTS,
    ScreenAck,
    ScreenConfig,
    ScreenError,
    ScreenFrame,
    ScreenKeyframeRequest,
    ScreenMonitorSelect,
    ScreenPaused,
    ScreenRects,
    ScreenResumed,
    ScreenStart,
    ScreenStats,
    ScreenStop,
    decode_screen_frame,
    decode_screen_rects,
    encode_screen_frame,
    encode_screen_rects,
)
from auxilio.protocol.types import Sha256Hex, ShortText, SignedDocument, UtcDatetime, WireModel

TerminalId = Annotated[int, Field(ge=0, le=2**32 - 1)]
# request_id / transfer_id / run_id: chosen by the technician, unique within the session.
RequestId = Annotated[int, Field(ge=0, le=2**32 - 1)]
# A path on the device as the technician typed it or the device reported it.
DevicePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Reason = Annotated[str, StringConstraints(max_length=2000)]
ErrorCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=100)
]
LongText = Annotated[str, StringConstraints(max_length=16 * 1024)]
# Captured output of a runbook, per stream (the device truncates and says so).
MAX_RUNBOOK_OUTPUT = 256 * 1024
# Largest file size a transfer may announce (the policy's max_size is normally far below).
MAX_FILE_SIZE = 2**53

_TAG_TERMINAL_INPUT = 0x01
_TAG_TERMINAL_OUTPUT = 0x02
_TAG_FILE_CHUNK = 0x03
_TERMINAL_PREFIX = struct.Struct(">BI")
_CHUNK_PREFIX = struct.Struct(">BIQ")
# Plaintext of one chunk, below binary.MAX_FRAME_PLAINTEXT with room for the prefix.
FILE_CHUNK_SIZE = 256 * 1024


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


# -- files (channel FILES) --------------------------------------------------------------------


class FilesList(WireModel):
    """Technician -> device: list a directory. ``reason`` is shown when the path is in a
    personal-data zone (the person is asked, with it, before anything is read)."""

    type: Literal["files.list"] = "files.list"
    request_id: RequestId
    path: DevicePath
    reason: Reason = ""


class FileEntry(WireModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    kind: Literal["file", "directory", "link", "other"]
    size: int = Field(ge=0, le=MAX_FILE_SIZE)
    modified_at: UtcDatetime | None = None
    zone: ShortText | None = None  # the personal-data zone it is in, if any


class FilesListing(WireModel):
    type: Literal["files.listing"] = "files.listing"
    request_id: RequestId
    path: DevicePath  # as the device resolved it
    entries: tuple[FileEntry, ...] = Field(default=(), max_length=5000)
    truncated: bool = False  # more entries than one listing carries


class FilesDownload(WireModel):
    """Technician -> device: send this file from ``offset`` (a resumed download names the bytes
    it already holds; the device's ``files.done`` hash still covers the whole file)."""

    type: Literal["files.download"] = "files.download"
    transfer_id: RequestId
    path: DevicePath
    offset: int = Field(default=0, ge=0, le=MAX_FILE_SIZE)
    reason: Reason = ""


class FilesUpload(WireModel):
    """Technician -> device: a file of ``size`` bytes and ``sha256`` will be written at ``path``.
    The device answers ``files.ready`` with the offset it already holds (a resumed upload), the
    technician then sends the chunks from there."""

    type: Literal["files.upload"] = "files.upload"
    transfer_id: RequestId
    path: DevicePath
    size: int = Field(ge=0, le=MAX_FILE_SIZE)
    sha256: Sha256Hex
    overwrite: bool = False
    reason: Reason = ""


class FilesReady(WireModel):
    """Device -> technician: a transfer is allowed and starts at ``offset``."""

    type: Literal["files.ready"] = "files.ready"
    transfer_id: RequestId
    path: DevicePath  # as the device resolved it
    size: int = Field(ge=0, le=MAX_FILE_SIZE)
    offset: int = Field(ge=0, le=MAX_FILE_SIZE)


class FilesDone(WireModel):
    """Device -> technician: the whole file was sent (download) or written and verified
    (upload); ``sha256`` is of the whole file."""

    type: Literal["files.done"] = "files.done"
    transfer_id: RequestId
    size: int = Field(ge=0, le=MAX_FILE_SIZE)
    sha256: Sha256Hex


class FilesCancel(WireModel):
    type: Literal["files.cancel"] = "files.cancel"
    transfer_id: RequestId


class FileChunk(WireModel):
    type: Literal["files.chunk"] = "files.chunk"
    transfer_id: RequestId
    offset: int = Field(ge=0, le=MAX_FILE_SIZE)
    data: bytes


class _AppError(WireModel):
    """A refusal or failure answering the request whose id is ``ref``; ``code`` is stable
    (docs/protocol.md lists them), ``message`` is for people."""

    ref: RequestId
    code: ErrorCode
    message: LongText = ""


class FilesError(_AppError):
    type: Literal["files.error"] = "files.error"


# -- diagnostics (channel DIAGNOSTICS) ---------------------------------------------------------


class DiagnosticsRequest(WireModel):
    type: Literal["diagnostics.request"] = "diagnostics.request"
    request_id: RequestId
    reason: Reason = ""


class DiagnosticsReport(WireModel):
    """Device -> technician: the system report the person saw and chose to send."""

    type: Literal["diagnostics.report"] = "diagnostics.report"
    request_id: RequestId
    collected_at: UtcDatetime
    report: dict[str, Any]


class DiagnosticsError(_AppError):
    """``diagnostics.withheld`` when the person chose not to send it."""

    type: Literal["diagnostics.error"] = "diagnostics.error"


# -- runbooks (channel RUNBOOKS) ---------------------------------------------------------------


ParameterValue = Annotated[str, StringConstraints(max_length=4096)] | int | bool


class RunbookRun(WireModel):
    """Technician -> device: run an approved runbook. ``runbook`` is the server-signed runbook
    (``crypto.runbooks``); the grant must pin its digest."""

    type: Literal["runbook.run"] = "runbook.run"
    run_id: RequestId
    runbook: SignedDocument
    parameters: dict[Annotated[str, StringConstraints(max_length=64)], ParameterValue] = Field(
        default_factory=dict, max_length=32
    )
    reason: Reason = ""


class RunbookResult(WireModel):
    type: Literal["runbook.result"] = "runbook.result"
    run_id: RequestId
    runbook_id: ShortText
    version: int = Field(ge=1)
    exit_code: int | None = None  # None when it was killed (time limit)
    timed_out: bool = False
    duration_ms: int = Field(ge=0)
    stdout: Annotated[str, StringConstraints(max_length=MAX_RUNBOOK_OUTPUT)] = ""
    stderr: Annotated[str, StringConstraints(max_length=MAX_RUNBOOK_OUTPUT)] = ""
    truncated: bool = False


class RunbookError(_AppError):
    type: Literal["runbook.error"] = "runbook.error"


AppMessage = Annotated[
    ChatMessage | TerminalOpen | TerminalResize | TerminalExit | TerminalInput | TerminalOutput
    | FilesList | FilesListing | FilesDownload | FilesUpload | FilesReady | FilesDone
    | FilesCancel | FileChunk | FilesError | DiagnosticsRequest | DiagnosticsReport
    | DiagnosticsError | RunbookRun | RunbookResult | RunbookError | ScreenStart | ScreenConfig
    | ScreenAck | ScreenKeyframeRequest | ScreenMonitorSelect | ScreenPaused | ScreenResumed
    | ScreenStats | ScreenStop | ScreenError | ScreenFrame | ScreenRects | InputPointer
    | InputKey | InputPaused | InputResumed | InputRevoked | InputError | ClipboardSet
    | ClipboardDone | ClipboardGet | ClipboardContent | ClipboardError,
    Field(discriminator="type"),
]
_JSON_TYPES = frozenset({
    "chat.message", "terminal.open", "terminal.resize", "terminal.exit", "files.list",
    "files.listing", "files.download", "files.upload", "files.ready", "files.done",
    "files.cancel", "files.error", "diagnostics.request", "diagnostics.report",
    "diagnostics.error", "runbook.run", "runbook.result", "runbook.error",
}) | SCREEN_JSON_TYPES | INPUT_JSON_TYPES | CLIPBOARD_JSON_TYPES  # fmt: skip
_ADAPTER: TypeAdapter[AppMessage] = TypeAdapter(AppMessage)


# Each application message belongs to one channel; one arriving on another is not acted on
# (the channel is authenticated, so this is a peer bug or a confused relay, never content).
CHANNEL_OF: dict[type[Any], ChannelId] = {
    ChatMessage: ChannelId.CHAT, TerminalOpen: ChannelId.TERMINAL,
    TerminalResize: ChannelId.TERMINAL, TerminalExit: ChannelId.TERMINAL,
    TerminalInput: ChannelId.TERMINAL, TerminalOutput: ChannelId.TERMINAL,
    FilesList: ChannelId.FILES, FilesListing: ChannelId.FILES, FilesDownload: ChannelId.FILES,
    FilesUpload: ChannelId.FILES, FilesReady: ChannelId.FILES, FilesDone: ChannelId.FILES,
    FilesCancel: ChannelId.FILES, FileChunk: ChannelId.FILES, FilesError: ChannelId.FILES,
    DiagnosticsRequest: ChannelId.DIAGNOSTICS, DiagnosticsReport: ChannelId.DIAGNOSTICS,
    DiagnosticsError: ChannelId.DIAGNOSTICS,
    RunbookRun: ChannelId.RUNBOOKS, RunbookResult: ChannelId.RUNBOOKS,
    RunbookError: ChannelId.RUNBOOKS,
    **dict.fromkeys((ScreenStart, ScreenConfig, ScreenAck, ScreenKeyframeRequest,
                     ScreenMonitorSelect, ScreenPaused, ScreenResumed, ScreenStats, ScreenStop,
                     ScreenError, ScreenFrame, ScreenRects), ChannelId.SCREEN),
    **dict.fromkeys((InputPointer, InputKey, InputPaused, InputResumed, InputRevoked,
                     InputError), ChannelId.INPUT),
    **dict.fromkeys((ClipboardSet, ClipboardDone, ClipboardGet, ClipboardContent,
                     ClipboardError), ChannelId.CLIPBOARD),
}  # fmt: skip


def encode_app_message(message: AppMessage) -> bytes:
    if isinstance(message, FileChunk):
        return _CHUNK_PREFIX.pack(_TAG_FILE_CHUNK, message.transfer_id, message.offset) + (
            message.data
        )
    if isinstance(message, TerminalInput | TerminalOutput):
        tag = _TAG_TERMINAL_INPUT if isinstance(message, TerminalInput) else _TAG_TERMINAL_OUTPUT
        return _TERMINAL_PREFIX.pack(tag, message.terminal_id) + message.data
    if isinstance(message, ScreenFrame):
        return encode_screen_frame(message)
    if isinstance(message, ScreenRects):
        return encode_screen_rects(message)
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
    if data[0] == _TAG_FILE_CHUNK:
        if len(data) < _CHUNK_PREFIX.size:
            raise ProtocolError(ProtocolErrorCode.MALFORMED, "short file chunk")
        _, transfer_id, offset = _CHUNK_PREFIX.unpack_from(data)
        if offset > MAX_FILE_SIZE:
            raise ProtocolError(ProtocolErrorCode.INVALID_FIELD, "file chunk offset out of range")
        return FileChunk(transfer_id=transfer_id, offset=offset,
                         data=bytes(data[_CHUNK_PREFIX.size :]))  # fmt: skip
    if data[0] == TAG_SCREEN_FRAME:
        return decode_screen_frame(data)
    if data[0] == TAG_SCREEN_RECTS:
        return decode_screen_rects(data)
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
