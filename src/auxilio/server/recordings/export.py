"""Open a recording with the auditor's private key: the chat transcript and asciinema casts.

Runs where the private key is (the auditor's machine or an offline one), never inside the
server. Each epoch's keys are unsealed from what the agent sent; each frame is opened with
the E2E code the peers use (``crypto.e2e``), counters included, so a frame altered, dropped
or reordered on disk fails exactly as it would have failed live, naming its byte offset.

Output in ``out_dir``:

    chat.txt                   "<UTC time>  <technician|person>: <text>", one message a line
    terminal-<n>.cast          asciinema v2, one per terminal opened, output events ("o") and
                               resizes ("r") with the relay's timings; input is left out (it
                               is echoed by the terminal where it was visible; what was typed
                               with echo off, a password, stays out of the export too)
    screen-<n>.webm            the screen channel, one file a segment (``video.py``): VP8/VP9
                               remuxed, JPEG rectangles painted and encoded to VP9
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession, Role, SessionKeys
from auxilio.crypto.errors import E2EError, KeyEncodingInvalid, SealedDataInvalid
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.sealed import open_recording_keys
from auxilio.protocol.app import (
    ChatMessage,
    TerminalExit,
    TerminalOpen,
    TerminalOutput,
    TerminalResize,
    decode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.errors import ProtocolError
from auxilio.server.recordings.errors import (
    RecordingCorrupt,
    RecordingKeyMissing,
    RecordingKeyWrong,
)
from auxilio.server.recordings.video import ScreenExport, ScreenVideo
from auxilio.server.relay.recording import (
    Header,
    Record,
    RecordingFileError,
    RecordKind,
    read_records,
)


@dataclass
class _Cast:
    number: int
    cols: int
    rows: int
    opened_us: int
    events: list[list[Any]] = field(default_factory=list)
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )


@dataclass
class ExportResult:
    header: Header
    epochs: int = 0
    frames: int = 0
    chat_lines: list[str] = field(default_factory=list)
    casts: list[Path] = field(default_factory=list)
    videos: list[ScreenVideo] = field(default_factory=list)


@dataclass
class _Epoch:
    from_agent: E2ESession  # opens agent -> technician frames (the technician's view)
    from_technician: E2ESession  # opens technician -> agent frames (the agent's view)


def _open_epoch(
    auditor: X25519PrivateKey, support_session_id: str, record: Record, sealed: dict[str, str]
) -> _Epoch:
    epoch = b64url_encode(record.body)
    box = sealed.get(epoch)
    if box is None:
        raise RecordingKeyMissing(
            f"no sealed keys for the epoch that starts at byte {record.offset} (the agent never "
            "sent them, or the session ended first)",
            offset=record.offset,
            epoch=epoch,
        )
    try:
        a2t, t2a = open_recording_keys(
            auditor, support_session_id, epoch=record.body, box=b64url_decode(box)
        )
    except (SealedDataInvalid, KeyEncodingInvalid) as exc:
        raise RecordingKeyWrong(
            "the auditor key does not open this recording's sealed keys (wrong key file?)",
            epoch=epoch,
        ) from exc
    keys = SessionKeys(
        support_session_id=support_session_id,
        transcript=record.body,
        agent_to_technician=a2t,
        technician_to_agent=t2a,
    )
    from_agent = E2ESession(role=Role.TECHNICIAN, keys=keys)
    from_technician = E2ESession(role=Role.AGENT, keys=keys)
    # The key confirmations used counter 0 of CONTROL_E2E in each direction, inside text
    # messages the relay does not record as frames.
    for session in (from_agent, from_technician):
        session.channel(ChannelId.CONTROL_E2E).received = 1
    return _Epoch(from_agent=from_agent, from_technician=from_technician)


def _stamp(header: Header, at_us: int) -> str:
    moment = header.started_at + timedelta(microseconds=at_us)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


class _Exporter:
    def __init__(self, header: Header, out_dir: Path) -> None:
        self.result = ExportResult(header=header)
        self.out_dir = out_dir
        self.open_casts: dict[int, _Cast] = {}
        self.done_casts: list[_Cast] = []
        self.count = 0
        self.screen = ScreenExport()

    def message(self, record: Record, from_agent: bool, message: Any) -> None:
        header = self.result.header
        if from_agent and getattr(message, "type", "").startswith("screen."):
            self.screen.message(record, message)
        elif isinstance(message, ChatMessage):
            who = "person" if from_agent else "technician"
            for line in message.text.splitlines() or [""]:
                self.result.chat_lines.append(f"{_stamp(header, record.at_us)}  {who}: {line}")
        elif isinstance(message, TerminalOpen) and not from_agent:
            self._close(message.terminal_id)
            self.count += 1
            self.open_casts[message.terminal_id] = _Cast(
                self.count, message.cols, message.rows, record.at_us
            )
        elif isinstance(message, TerminalResize) and not from_agent:
            cast = self.open_casts.get(message.terminal_id)
            if cast is not None:
                cast.events.append([self._t(cast, record), "r", f"{message.cols}x{message.rows}"])
        elif isinstance(message, TerminalOutput) and from_agent:
            cast = self.open_casts.get(message.terminal_id)
            if cast is not None:
                text = cast.decoder.decode(message.data)
                if text:
                    cast.events.append([self._t(cast, record), "o", text])
        elif isinstance(message, TerminalExit) and from_agent:
            self._close(message.terminal_id)

    @staticmethod
    def _t(cast: _Cast, record: Record) -> float:
        return round(max(0, record.at_us - cast.opened_us) / 1_000_000, 6)

    def _close(self, terminal_id: int) -> None:
        cast = self.open_casts.pop(terminal_id, None)
        if cast is not None:
            self.done_casts.append(cast)

    def finish(self) -> ExportResult:
        for terminal_id in list(self.open_casts):
            self._close(terminal_id)
        header = self.result.header
        self.out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        chat = self.out_dir / "chat.txt"
        chat.write_text("".join(line + "\n" for line in self.result.chat_lines), "utf-8")
        for cast in sorted(self.done_casts, key=lambda c: c.number):
            tail = cast.decoder.decode(b"", final=True)
            if tail:
                cast.events.append([cast.events[-1][0] if cast.events else 0.0, "o", tail])
            opened = header.started_at + timedelta(microseconds=cast.opened_us)
            head = {
                "version": 2,
                "width": cast.cols,
                "height": cast.rows,
                "timestamp": int(opened.timestamp()),
                "title": f"Auxilio support session {header.support_session_id}, "
                f"terminal {cast.number}",
            }
            path = self.out_dir / f"terminal-{cast.number}.cast"
            lines = [json.dumps(head)] + [json.dumps(e, ensure_ascii=False) for e in cast.events]
            path.write_text("\n".join(lines) + "\n", "utf-8")
            self.result.casts.append(path)
        self.result.videos = self.screen.finish(self.out_dir)
        return self.result


def export_recording(
    handle: BinaryIO,
    *,
    auditor: X25519PrivateKey,
    sealed_keys: dict[str, str],
    support_session_id: str,
    out_dir: Path,
) -> ExportResult:
    """Read the whole recording, then write the transcript and casts (nothing is written
    when the recording turns out damaged or the key wrong)."""
    exporter: _Exporter | None = None
    try:
        header, records = read_records(handle)
        if header.support_session_id != support_session_id:
            raise RecordingCorrupt(
                f"at byte 0: the file is the recording of {header.support_session_id}, "
                f"not of {support_session_id}",
                offset=0,
            )
        exporter = _Exporter(header, out_dir)
        epoch: _Epoch | None = None
        # Opened at its first frame: a handshake that failed leaves an epoch with no frames
        # and no keys, which is no damage.
        starting: Record | None = None
        for record in records:
            if record.kind is RecordKind.EPOCH:
                starting, epoch = record, None
                continue
            if starting is not None:
                epoch = _open_epoch(auditor, support_session_id, starting, sealed_keys)
                exporter.result.epochs += 1
                starting = None
            if epoch is None:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: a frame before any epoch", offset=record.offset
                )
            from_agent = record.kind is RecordKind.AGENT_TO_TECHNICIAN
            opener = epoch.from_agent if from_agent else epoch.from_technician
            try:
                _, plaintext = opener.open(record.body)
                message = decode_app_message(plaintext)
            except (E2EError, ProtocolError) as exc:
                raise RecordingCorrupt(
                    f"at byte {record.offset}: the frame does not open ({exc}); the file was "
                    "altered or frames are missing",
                    offset=record.offset,
                ) from exc
            exporter.result.frames += 1
            exporter.message(record, from_agent, message)
    except RecordingFileError as exc:
        if exporter is not None:
            exporter.screen.discard()
        raise RecordingCorrupt(str(exc), offset=exc.offset) from exc
    except BaseException:
        if exporter is not None:
            exporter.screen.discard()
        raise
    return exporter.finish()
