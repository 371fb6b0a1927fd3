"""The recording file: the E2E frames the relay forwarded, with direction and timing.

Ciphertext only: the relay appends each binary frame exactly as it forwarded it. What opens the
frames (each epoch's keys, sealed by the agent to the auditor key) is stored in the database
(``recordings.service``), never here and never in clear. Layout (docs/protocol.md §Recordings)::

    file    = header record*
    header  = magic "AUXREC" 0x00 0x01 (8) | u32be length | JSON (UTF-8)
              {"format": 1, "support_session_id": ..., "started_at": ISO-8601 UTC}
    record  = kind(1) | u32be body length | u64be microseconds since started_at
              | u32be CRC-32 of the 13 bytes before it | body

    kind    'E' (0x45)  a new E2E epoch; body = the 32-byte transcript hash of the handshake
            'A' (0x41)  a frame from the agent to the technician; body = the binary frame
            'T' (0x54)  a frame from the technician to the agent; body = the binary frame

The CRC covers the record prefix (a damaged length would otherwise send the reader astray);
frame bodies are covered by their own AES-GCM tag, so the export detects any altered byte
without the relay hashing every frame. Small records are gathered: a server that dies loses at
most the last ``BUFFER_BYTES`` of a recording, and a cut record is reported by the export with
its offset (never silently misread).
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

MAGIC = b"AUXREC\x00\x01"
FORMAT = 1
_LENGTH = struct.Struct(">I")
_PREFIX = struct.Struct(">BIQ")
_CRC = struct.Struct(">I")
RECORD_OVERHEAD = _PREFIX.size + _CRC.size
MAX_HEADER_BYTES = 4096
# A frame is at most MAX_BINARY_FRAME_BYTES; anything much larger is a damaged length.
MAX_BODY_BYTES = 2 * 1024 * 1024
# Small records are gathered up to this size before one writev.
BUFFER_BYTES = 64 * 1024
_IOV_MAX = 512  # below every platform's IOV_MAX (1024 on Linux)


class RecordKind(IntEnum):
    EPOCH = 0x45  # "E"
    AGENT_TO_TECHNICIAN = 0x41  # "A"
    TECHNICIAN_TO_AGENT = 0x54  # "T"


class RecordingFileError(Exception):
    """A damaged or truncated file; ``offset`` is where the damage was found."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"at byte {offset}: {message}")
        self.offset = offset
        self.message = message


@dataclass(frozen=True, slots=True)
class Header:
    support_session_id: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Record:
    offset: int  # byte offset of the record in the file
    kind: RecordKind
    at_us: int  # microseconds since the header's started_at
    body: bytes


def file_name(support_session_id: str) -> str:
    return f"{support_session_id}.rec"


class RecordingWriter:
    """Appends to one session's file; opened again (appending) by a reconnecting peer.

    Small records (terminal keystrokes and output) are gathered up to ``BUFFER_BYTES``; a large
    frame goes out at once with its prefix in one ``writev``, without copying it. A failed
    write (disk full) raises ``OSError`` into the relay, which then stops forwarding rather
    than forward what it can no longer record.
    """

    def __init__(self, path: Path, support_session_id: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(self._fd).st_size
        self._buffer: list[bytes] = []
        self._buffered = 0
        if size == 0:
            started = datetime.now(UTC)
            header = json.dumps(
                {
                    "format": FORMAT,
                    "support_session_id": support_session_id,
                    "started_at": started.isoformat(),
                }
            ).encode()
            _write_all(self._fd, [MAGIC + _LENGTH.pack(len(header)) + header])
            self._start = time.monotonic()
        else:
            # Appending after a restart of the writer: keep the file's own time base.
            with path.open("rb") as existing:
                header_obj = read_header(existing)
            elapsed = (datetime.now(UTC) - header_obj.started_at).total_seconds()
            self._start = time.monotonic() - max(0.0, elapsed)
        self.closed = False

    def _append(self, kind: RecordKind, body: bytes) -> None:
        if self.closed:
            raise OSError(f"recording {self.path.name} is closed")
        at_us = int((time.monotonic() - self._start) * 1_000_000)
        prefix = _PREFIX.pack(kind, len(body), at_us)
        self._buffer.append(prefix + _CRC.pack(zlib.crc32(prefix)))
        self._buffer.append(body)
        self._buffered += RECORD_OVERHEAD + len(body)
        if self._buffered >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            parts, self._buffer, self._buffered = self._buffer, [], 0
            for start in range(0, len(parts), _IOV_MAX):
                _write_all(self._fd, parts[start : start + _IOV_MAX])

    def epoch(self, transcript: bytes) -> None:
        self._append(RecordKind.EPOCH, transcript)
        self.flush()  # rare, and it tells the export which keys open what follows

    def frame(self, kind: RecordKind, frame: bytes) -> None:
        self._append(kind, frame)

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush()
            finally:
                self.closed = True
                os.close(self._fd)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """``writev`` until every byte is written (a regular file may take less than asked)."""
    view = [memoryview(p) for p in parts]
    while view:
        written = os.writev(fd, view)
        while view and written >= len(view[0]):
            written -= len(view[0])
            view.pop(0)
        if view and written:
            view[0] = view[0][written:]


def read_header(handle: BinaryIO) -> Header:
    start = handle.read(len(MAGIC) + _LENGTH.size)
    if len(start) < len(MAGIC) + _LENGTH.size:
        raise RecordingFileError(len(start), "the file ends inside its header")
    if start[: len(MAGIC)] != MAGIC:
        raise RecordingFileError(0, "not an Auxilio recording (bad magic)")
    (length,) = _LENGTH.unpack_from(start, len(MAGIC))
    if length > MAX_HEADER_BYTES:
        raise RecordingFileError(len(MAGIC), f"header length {length} is not plausible")
    raw = handle.read(length)
    if len(raw) < length:
        raise RecordingFileError(len(start) + len(raw), "the file ends inside its header")
    try:
        obj = json.loads(raw)
        if obj["format"] != FORMAT:
            raise RecordingFileError(len(start), f"recording format {obj['format']} is unknown")
        started = datetime.fromisoformat(obj["started_at"])
        return Header(support_session_id=str(obj["support_session_id"]), started_at=started)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingFileError(len(start), f"header is not valid: {exc}") from exc


def read_records(handle: BinaryIO) -> tuple[Header, Iterator[Record]]:
    """The header, and an iterator over the records that raises ``RecordingFileError`` at the
    first damaged or truncated one."""
    header = read_header(handle)
    return header, _records(handle, handle.tell())


def _records(handle: BinaryIO, offset: int) -> Iterator[Record]:
    while True:
        prefix = handle.read(RECORD_OVERHEAD)
        if not prefix:
            return
        if len(prefix) < RECORD_OVERHEAD:
            raise RecordingFileError(offset, "the file ends inside a record header (truncated)")
        (crc,) = _CRC.unpack_from(prefix, _PREFIX.size)
        if zlib.crc32(prefix[: _PREFIX.size]) != crc:
            raise RecordingFileError(offset, "record header checksum mismatch (altered)")
        kind_byte, length, at_us = _PREFIX.unpack_from(prefix)
        try:
            kind = RecordKind(kind_byte)
        except ValueError:
            raise RecordingFileError(offset, f"unknown record kind 0x{kind_byte:02x}") from None
        if length > MAX_BODY_BYTES:
            raise RecordingFileError(offset, f"record length {length} is not plausible")
        body = handle.read(length)
        if len(body) < length:
            raise RecordingFileError(
                offset, f"the file ends inside a record ({len(body)} of {length} bytes; truncated)"
            )
        yield Record(offset=offset, kind=kind, at_us=at_us, body=body)
        offset += RECORD_OVERHEAD + length
