"""The recording file and its export, without a server: damaged files name their offset, a
wrong key says so, and nothing is written when the export fails."""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession, Role, derive_session_keys
from auxilio.crypto.keys import b64url_encode
from auxilio.crypto.sealed import seal_recording_keys
from auxilio.protocol.app import (
    AppMessage,
    ChatMessage,
    TerminalExit,
    TerminalOpen,
    TerminalOutput,
    TerminalResize,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.server.recordings.errors import (
    RecordingCorrupt,
    RecordingKeyMissing,
    RecordingKeyWrong,
)
from auxilio.server.recordings.export import ExportResult, export_recording
from auxilio.server.relay.bus import MemoryBus
from auxilio.server.relay.hub import Hub, Peer
from auxilio.server.relay.recording import (
    MAGIC,
    RECORD_OVERHEAD,
    RecordingWriter,
    RecordKind,
    file_name,
    read_records,
)
from tests.agent.factories import now

SID = "0b7e4f6c-9a55-4f0e-8a3c-6f1b2d3e4a5b"


class Session:
    """One epoch between an agent and a technician, recorded as the relay would."""

    def __init__(self, writer: RecordingWriter, auditor: X25519PrivateKey) -> None:
        keys = derive_session_keys(
            secrets.token_bytes(32),
            support_session_id=SID,
            agent_public=os.urandom(32),
            technician_public=os.urandom(32),
        )
        self.agent = E2ESession(role=Role.AGENT, keys=keys)
        self.technician = E2ESession(role=Role.TECHNICIAN, keys=keys)
        self.writer = writer
        self.epoch = b64url_encode(keys.transcript)
        self.sealed = b64url_encode(
            seal_recording_keys(
                auditor.public_key(),
                SID,
                epoch=keys.transcript,
                agent_to_technician=keys.agent_to_technician,
                technician_to_agent=keys.technician_to_agent,
            )
        )
        writer.epoch(keys.transcript)

    def send(self, from_agent: bool, message: AppMessage, channel: ChannelId) -> None:
        sender = self.agent if from_agent else self.technician
        kind = RecordKind.AGENT_TO_TECHNICIAN if from_agent else RecordKind.TECHNICIAN_TO_AGENT
        self.writer.frame(kind, sender.seal(channel, encode_app_message(message)))


def record_session(directory: Path, auditor: X25519PrivateKey) -> tuple[Path, dict[str, str]]:
    path = directory / file_name(SID)
    writer = RecordingWriter(path, SID)
    first = Session(writer, auditor)
    first.send(False, ChatMessage(text="Hola, ¿me oye?", sent_at=now()), ChannelId.CHAT)
    first.send(False, TerminalOpen(terminal_id=1, cols=80, rows=24), ChannelId.TERMINAL)
    first.send(
        True, TerminalOutput(terminal_id=1, data=b"$ uname -a\r\nLinux\r\n"), ChannelId.TERMINAL
    )
    first.send(False, TerminalResize(terminal_id=1, cols=120, rows=40), ChannelId.TERMINAL)
    first.send(True, TerminalExit(terminal_id=1, exit_code=0), ChannelId.TERMINAL)
    # The technician attached again: a new epoch with new keys, counters from zero.
    second = Session(writer, auditor)
    second.send(True, ChatMessage(text="sí, gracias", sent_at=now()), ChannelId.CHAT)
    second.send(False, TerminalOpen(terminal_id=1, cols=90, rows=20), ChannelId.TERMINAL)
    second.send(
        True, TerminalOutput(terminal_id=1, data=b"second terminal\r\n"), ChannelId.TERMINAL
    )
    writer.close()
    return path, {first.epoch: first.sealed, second.epoch: second.sealed}


def export(
    path: Path, auditor: X25519PrivateKey, sealed: dict[str, str], out: Path
) -> ExportResult:
    with path.open("rb") as handle:
        return export_recording(
            handle, auditor=auditor, sealed_keys=sealed, support_session_id=SID, out_dir=out
        )


def test_every_epoch_opens_into_a_transcript_and_one_cast_per_terminal(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path, sealed = record_session(tmp_path, auditor)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    result = export(path, auditor, sealed, tmp_path / "out")
    assert (result.epochs, result.frames) == (2, 8)
    chat = (tmp_path / "out" / "chat.txt").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in chat] == [
        "technician: Hola, ¿me oye?",
        "person: sí, gracias",
    ]
    first, second = (tmp_path / "out" / "terminal-1.cast", tmp_path / "out" / "terminal-2.cast")
    assert result.casts == [first, second]
    lines = [orjson.loads(line) for line in first.read_text().splitlines()]
    assert (lines[0]["width"], lines[0]["height"]) == (80, 24)
    assert [event[1:] for event in lines[1:]] == [["o", "$ uname -a\r\nLinux\r\n"], ["r", "120x40"]]
    assert all(later[0] >= earlier[0] for earlier, later in itertools.pairwise(lines[1:]))
    assert "second terminal" in second.read_text()
    # asciinema plays it, resize event included.
    played = subprocess.run(
        [str(Path(sys.executable).parent / "asciinema"), "cat", str(first)],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert played == b"$ uname -a\r\nLinux\r\n"


def test_a_wrong_auditor_key_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    path, sealed = record_session(tmp_path, X25519PrivateKey.generate())
    with pytest.raises(RecordingKeyWrong) as caught:
        export(path, X25519PrivateKey.generate(), sealed, tmp_path / "out")
    assert caught.value.code == "recording_key_wrong"
    assert "wrong key" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_missing_sealed_keys_name_the_epoch_offset(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path, sealed = record_session(tmp_path, auditor)
    second = list(sealed)[1]
    with pytest.raises(RecordingKeyMissing) as caught:
        export(path, auditor, {k: v for k, v in sealed.items() if k != second}, tmp_path / "o")
    assert caught.value.details["epoch"] == second
    assert f"at byte {caught.value.details['offset']}" in caught.value.message
    assert not (tmp_path / "o").exists()


def _offsets(path: Path) -> list[int]:
    """Byte offset of every record, read independently of the reader under test."""
    data = path.read_bytes()
    offset = len(MAGIC) + 4 + int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
    found = []
    while offset < len(data):
        found.append(offset)
        offset += RECORD_OVERHEAD + int.from_bytes(data[offset + 1 : offset + 5], "big")
    return found


def test_a_truncated_recording_names_the_offset_of_the_cut_record(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path, sealed = record_session(tmp_path, auditor)
    last = _offsets(path)[-1]
    for cut in (last + 3, last + RECORD_OVERHEAD + 5):
        data = path.read_bytes()[:cut]
        damaged = tmp_path / f"cut-{cut}.rec"
        damaged.write_bytes(data)
        with pytest.raises(RecordingCorrupt) as caught:
            export(damaged, auditor, sealed, tmp_path / "out")
        assert caught.value.details["offset"] == last
        assert f"at byte {last}" in caught.value.message and "truncated" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_an_altered_byte_anywhere_is_caught_at_its_record(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path, sealed = record_session(tmp_path, auditor)
    offsets = _offsets(path)
    original = path.read_bytes()
    frame = offsets[2]  # the technician's TerminalOpen
    for position, where in ((frame + 2, "header"), (frame + RECORD_OVERHEAD + 20, "body")):
        damaged = bytearray(original)
        damaged[position] ^= 0x40
        bad = tmp_path / f"bad-{where}.rec"
        bad.write_bytes(bytes(damaged))
        with pytest.raises(RecordingCorrupt) as caught:
            export(bad, auditor, sealed, tmp_path / "out")
        assert caught.value.details["offset"] == frame, where
        assert f"at byte {frame}" in caught.value.message


def test_a_dropped_record_is_caught_by_the_frame_counters(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path, sealed = record_session(tmp_path, auditor)
    offsets = _offsets(path)
    data = path.read_bytes()
    # Remove the technician's TerminalOpen frame: its TerminalResize then arrives out of order.
    dropped = data[: offsets[2]] + data[offsets[3] :]
    bad = tmp_path / "dropped.rec"
    bad.write_bytes(dropped)
    with pytest.raises(RecordingCorrupt, match="does not open") as caught:
        export(bad, auditor, sealed, tmp_path / "out")
    assert caught.value.details["offset"] == offsets[4] - (offsets[3] - offsets[2])


def test_a_file_that_is_not_a_recording_fails_at_byte_zero(tmp_path: Path) -> None:
    bad = tmp_path / "x.rec"
    bad.write_bytes(b"PK\x03\x04 not ours at all")
    with pytest.raises(RecordingCorrupt) as caught:
        export(bad, X25519PrivateKey.generate(), {}, tmp_path / "out")
    assert caught.value.details["offset"] == 0 and "magic" in caught.value.message


def test_a_writer_reopened_appends_to_the_same_file_and_time_base(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path = tmp_path / file_name(SID)
    first = RecordingWriter(path, SID)
    session = Session(first, auditor)
    session.send(False, ChatMessage(text="one", sent_at=now()), ChannelId.CHAT)
    first.close()
    again = RecordingWriter(path, SID)
    session.writer = again
    session.send(False, ChatMessage(text="two", sent_at=now()), ChannelId.CHAT)
    again.close()
    result = export(path, auditor, {session.epoch: session.sealed}, tmp_path / "out")
    assert result.frames == 2
    assert [line.rsplit(": ", 1)[1] for line in result.chat_lines] == ["one", "two"]


def test_an_epoch_whose_handshake_failed_has_no_keys_and_is_no_damage(tmp_path: Path) -> None:
    auditor = X25519PrivateKey.generate()
    path = tmp_path / file_name(SID)
    writer = RecordingWriter(path, SID)
    Session(writer, auditor)  # e2e.hello relayed, then the handshake never completed
    good = Session(writer, auditor)
    good.send(False, ChatMessage(text="after a retry", sent_at=now()), ChannelId.CHAT)
    writer.close()
    result = export(path, auditor, {good.epoch: good.sealed}, tmp_path / "out")
    assert (result.epochs, result.frames) == (1, 1)
    assert result.chat_lines[0].endswith("technician: after a retry")


def test_a_sessions_recording_is_on_disk_whole_once_flushed_at_its_end(tmp_path: Path) -> None:
    """The relay's writer keeps up to 64 KiB in memory; at a session's end the runtime flushes
    it before the peers hear of the end (runtime.announce_end), so an export made at once has
    every frame relayed until then, while the writer stays open until the session is forgotten."""
    hub = Hub(MemoryBus(), recordings_dir=tmp_path)
    sid = "1f0e8a52-0000-4000-8000-000000000001"
    hub.record_epoch(sid, b"transcript")
    hub.record_frame(sid, Peer.AGENT, b"a" * 100)
    hub.record_frame(sid, Peer.TECHNICIAN, b"t" * 50)
    path = tmp_path / file_name(sid)

    def kinds() -> list[RecordKind]:
        with path.open("rb") as handle:
            _, records = read_records(handle)
            return [record.kind for record in records]

    assert kinds() == [RecordKind.EPOCH]  # the frames wait in memory
    hub.flush_recording(sid)
    assert kinds() == [RecordKind.EPOCH, RecordKind.AGENT_TO_TECHNICIAN,
                       RecordKind.TECHNICIAN_TO_AGENT]  # fmt: skip
    hub.record_frame(sid, Peer.AGENT, b"late")  # still open: a frame after the end is kept
    hub.forget(sid)
    assert kinds()[-1] is RecordKind.AGENT_TO_TECHNICIAN and len(kinds()) == 4
