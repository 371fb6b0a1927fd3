"""The technician's file transfers against a fake device end that speaks the files messages:
listing, download and upload, resume after an interruption, hash mismatch, the device's codes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auxilio.client.files import PART_SUFFIX, FileTransfers
from auxilio.client.output import PrefixedOutput
from auxilio.client.runner import ScriptRunner
from auxilio.client.script import End, parse_action
from auxilio.client.session import EXIT_OK, TechnicianSession
from auxilio.client.steps import GetFile, ListFiles, PutFile, SetReason, run_step
from auxilio.client.tools import ToolError
from auxilio.protocol.app import (
    AppMessage,
    FileChunk,
    FileEntry,
    FilesCancel,
    FilesDone,
    FilesDownload,
    FilesError,
    FilesList,
    FilesListing,
    FilesReady,
    FilesUpload,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import SessionEnd

from .fakes import SESSION_ID, FakeAgentRelay, Keys, end_message, make_grant, running

CHUNK = 4096


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeDevice:
    """Serves ``root`` as the device's disk. Answers arrive later, as from a socket: each is
    delivered from a task of its own, never inside the technician's send."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.transfers = FileTransfers(send=self.send, new_id=self._ids())
        self.requests: list[AppMessage] = []
        self.refuse: dict[str, tuple[str, str]] = {}  # path -> (code, message)
        self.drop_after_chunks: int | None = None  # the connection drops mid-download
        self.wrong_hash = False
        self.fail_upload_after: int | None = None  # bytes written before the disk is full
        self.partials: dict[tuple[str, str], bytearray] = {}
        self._uploads: dict[int, tuple[FilesUpload, bytearray]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _ids() -> Callable[[], int]:
        counter = iter(range(100, 10_000))
        return lambda: next(counter)

    def _disk(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    async def send(self, message: AppMessage) -> None:
        self.requests.append(message)
        task = asyncio.create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, *messages: AppMessage) -> None:
        for message in messages:
            await asyncio.sleep(0)
            self.transfers.receive(message)

    async def _answer(self, message: AppMessage) -> None:
        ref = getattr(message, "request_id", getattr(message, "transfer_id", 0))
        path = getattr(message, "path", "")
        if path in self.refuse:
            code, text = self.refuse[path]
            await self._deliver(FilesError(ref=ref, code=code, message=text))
            return
        match message:
            case FilesList():
                entries = tuple(
                    FileEntry(name=p.name, kind="directory" if p.is_dir() else "file",
                              size=0 if p.is_dir() else p.stat().st_size)
                    for p in sorted(self._disk(path).iterdir())
                )  # fmt: skip
                await self._deliver(FilesListing(request_id=ref, path=path, entries=entries))
            case FilesDownload():
                await self._download(message)
            case FilesUpload():
                held = self.partials.setdefault((path, message.sha256), bytearray())
                self._uploads[ref] = (message, held)
                ready = FilesReady(transfer_id=ref, path=path, size=message.size, offset=len(held))
                await self._deliver(ready)
            case FileChunk():
                await self._chunk(message)

    async def _download(self, request: FilesDownload) -> None:
        data = self._disk(request.path).read_bytes()
        ready = FilesReady(transfer_id=request.transfer_id, path=request.path, size=len(data),
                           offset=request.offset)  # fmt: skip
        await self._deliver(ready)
        for count, at in enumerate(range(request.offset, len(data), CHUNK)):
            if count == self.drop_after_chunks:
                # What the session does when the connection is lost.
                self.transfers.abort("session.ended", "the session ended")
                return
            piece = data[at : at + CHUNK]
            await self._deliver(FileChunk(transfer_id=request.transfer_id, offset=at, data=piece))
        digest = _sha(b"wrong") if self.wrong_hash else _sha(data)
        await self._deliver(FilesDone(transfer_id=request.transfer_id, size=len(data),
                                      sha256=digest))  # fmt: skip

    async def _chunk(self, chunk: FileChunk) -> None:
        if chunk.transfer_id not in self._uploads:
            return  # after an error the device ignores the rest
        upload, held = self._uploads[chunk.transfer_id]
        if self.fail_upload_after is not None and len(held) >= self.fail_upload_after:
            del self._uploads[chunk.transfer_id]
            await self._deliver(FilesError(ref=chunk.transfer_id, code="files.disk_full",
                                           message="no space left on the device"))  # fmt: skip
            return
        assert chunk.offset == len(held)
        held.extend(chunk.data)
        if len(held) == upload.size:
            del self._uploads[chunk.transfer_id]
            self._disk(upload.path).write_bytes(bytes(held))
            del self.partials[(upload.path, upload.sha256)]
            await self._deliver(FilesDone(transfer_id=chunk.transfer_id, size=len(held),
                                          sha256=_sha(bytes(held))))  # fmt: skip


@pytest.fixture
def device(tmp_path: Path) -> FakeDevice:
    root = tmp_path / "device"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "report.bin").write_bytes(os.urandom(5 * CHUNK + 123))
    (root / "docs" / "notes.txt").write_text("printer: HP\n")
    return FakeDevice(root)


@pytest.fixture
def here(tmp_path: Path) -> Path:
    local = tmp_path / "technician"
    local.mkdir()
    return local


async def test_it_lists_a_directory(device: FakeDevice) -> None:
    listing = await device.transfers.list_directory("/docs")

    assert [(e.name, e.kind) for e in listing.entries] == [
        ("notes.txt", "file"),
        ("report.bin", "file"),
    ]


async def test_it_downloads_a_file_and_checks_its_hash(device: FakeDevice, here: Path) -> None:
    original = (device.root / "docs" / "report.bin").read_bytes()

    result = await device.transfers.download("/docs/report.bin", str(here / "r.bin"))

    assert (here / "r.bin").read_bytes() == original
    assert (result.size, result.sha256, result.resumed_from) == (len(original), _sha(original), 0)
    assert not (here / f"r.bin{PART_SUFFIX}").exists()


async def test_an_interrupted_download_keeps_its_partial_and_resumes_from_it(
    device: FakeDevice, here: Path
) -> None:
    original = (device.root / "docs" / "report.bin").read_bytes()
    target = here / "r.bin"
    device.drop_after_chunks = 2

    with pytest.raises(ToolError) as dropped:
        await device.transfers.download("/docs/report.bin", str(target))

    part = here / f"r.bin{PART_SUFFIX}"
    assert dropped.value.code == "session.ended"
    assert part.read_bytes() == original[: 2 * CHUNK]
    assert not target.exists()
    assert isinstance(device.requests[-1], FilesCancel)

    device.drop_after_chunks = None
    result = await device.transfers.download("/docs/report.bin", str(target))

    asked = [m for m in device.requests if isinstance(m, FilesDownload)]
    assert [m.offset for m in asked] == [0, 2 * CHUNK]
    assert result.resumed_from == 2 * CHUNK
    assert target.read_bytes() == original
    assert not part.exists()


async def test_a_device_that_starts_over_replaces_the_partial(
    device: FakeDevice, here: Path
) -> None:
    original = (device.root / "docs" / "report.bin").read_bytes()
    (here / f"r.bin{PART_SUFFIX}").write_bytes(b"stale prefix from another version")
    real_answer = device._download

    async def from_zero(request: FilesDownload) -> None:
        await real_answer(request.model_copy(update={"offset": 0}))

    device._download = from_zero  # type: ignore[method-assign]

    result = await device.transfers.download("/docs/report.bin", str(here / "r.bin"))

    assert result.resumed_from == 0
    assert (here / "r.bin").read_bytes() == original


async def test_a_hash_mismatch_removes_the_partial_and_writes_nothing(
    device: FakeDevice, here: Path
) -> None:
    device.wrong_hash = True

    with pytest.raises(ToolError) as failed:
        await device.transfers.download("/docs/report.bin", str(here / "r.bin"))

    assert failed.value.code == "files.hash_mismatch"
    assert sorted(os.listdir(here)) == []


async def test_the_devices_error_code_comes_through_and_leaves_nothing_behind(
    device: FakeDevice, here: Path
) -> None:
    device.refuse["/docs/notes.txt"] = ("files.zone_refused", "the person said no")

    with pytest.raises(ToolError) as refused:
        await device.transfers.download("/docs/notes.txt", str(here / "n.txt"))

    assert (refused.value.code, refused.value.message) == (
        "files.zone_refused",
        "the person said no",
    )
    assert sorted(os.listdir(here)) == []
    # Over on the device already: no cancel, and a late answer for it is taken quietly.
    assert not any(isinstance(m, FilesCancel) for m in device.requests)
    [download] = [m for m in device.requests if isinstance(m, FilesDownload)]
    late = FilesError(ref=download.transfer_id, code="files.unknown_transfer")
    assert device.transfers.receive(late)
    assert not device.transfers.receive(FilesError(ref=1, code="files.unknown_transfer"))


async def test_it_never_overwrites_a_local_file(device: FakeDevice, here: Path) -> None:
    (here / "n.txt").write_text("mine")

    with pytest.raises(ToolError) as exists:
        await device.transfers.download("/docs/notes.txt", str(here / "n.txt"))

    assert exists.value.code == "files.local_exists"
    assert device.requests == []
    assert (here / "n.txt").read_text() == "mine"


async def test_a_download_into_a_directory_takes_the_remote_name(
    device: FakeDevice, here: Path
) -> None:
    result = await device.transfers.download("/docs/notes.txt", str(here))

    assert result.local == here / "notes.txt"
    assert (here / "notes.txt").read_text() == "printer: HP\n"


async def test_it_uploads_with_the_announced_size_and_hash(device: FakeDevice, here: Path) -> None:
    data = os.urandom(3 * 256 * 1024 + 7)
    (here / "fix.sh").write_bytes(data)

    result = await device.transfers.upload(str(here / "fix.sh"), "/docs/fix.sh")

    announced = next(m for m in device.requests if isinstance(m, FilesUpload))
    chunks = [m for m in device.requests if isinstance(m, FileChunk)]
    assert (announced.size, announced.sha256, announced.overwrite) == (len(data), _sha(data), False)
    assert [c.offset for c in chunks] == [0, 256 * 1024, 2 * 256 * 1024, 3 * 256 * 1024]
    assert (device.root / "docs" / "fix.sh").read_bytes() == data
    assert (result.size, result.sha256, result.resumed_from) == (len(data), _sha(data), 0)


async def test_an_upload_cut_by_a_full_disk_resumes_where_the_device_stopped(
    device: FakeDevice, here: Path
) -> None:
    data = os.urandom(4 * 256 * 1024)
    (here / "big.iso").write_bytes(data)
    device.fail_upload_after = 2 * 256 * 1024

    with pytest.raises(ToolError) as full:
        await device.transfers.upload(str(here / "big.iso"), "/docs/big.iso")

    assert full.value.code == "files.disk_full"
    assert not (device.root / "docs" / "big.iso").exists()

    device.fail_upload_after = None
    sent_before = len(device.requests)
    result = await device.transfers.upload(str(here / "big.iso"), "/docs/big.iso")

    resumed = [m.offset for m in device.requests[sent_before:] if isinstance(m, FileChunk)]
    assert result.resumed_from == 2 * 256 * 1024
    assert resumed == [2 * 256 * 1024, 3 * 256 * 1024]
    assert (device.root / "docs" / "big.iso").read_bytes() == data


async def test_uploading_a_missing_local_file_is_a_clear_error(
    device: FakeDevice, here: Path
) -> None:
    with pytest.raises(ToolError) as missing:
        await device.transfers.upload(str(here / "absent"), "/docs/absent")

    assert missing.value.code == "files.local_unreadable"
    assert device.requests == []


class _StepSession:
    """What ``run_step`` uses of a TechnicianSession, around a fake device."""

    def __init__(self, files: FileTransfers) -> None:
        self.stream = io.StringIO()
        self.output = PrefixedOutput(self.stream)
        self.files = files
        self.stated_reason = ""
        self.received = ""

    def _note_received(self, text: str) -> None:
        self.received += text


async def test_a_step_shows_the_code_and_what_to_do_and_uses_a_reason_once(
    device: FakeDevice, here: Path
) -> None:
    device.refuse["/docs/private"] = ("files.reason_required", "this is in a personal zone")
    session = _StepSession(device.transfers)

    await run_step(session, ListFiles("/docs/private"))  # type: ignore[arg-type]
    await run_step(session, SetReason("the printer settings are there"))  # type: ignore[arg-type]
    await run_step(session, ListFiles("/docs"))  # type: ignore[arg-type]
    await run_step(session, GetFile("/docs/notes.txt", str(here)))  # type: ignore[arg-type]
    await run_step(session, PutFile(str(here / "notes.txt"), "/docs/copy.txt"))  # type: ignore[arg-type]

    lines = session.stream.getvalue().splitlines()
    assert lines[0] == (
        "error< files.reason_required: this is in a personal zone (state a "
        "reason: --reason TEXT or /reason TEXT (reason:TEXT in a script); the "
        "person is shown it)"
    )
    assert "files<   file                12 notes.txt" in lines
    assert any(line.startswith(f"files< got /docs/notes.txt -> {here / 'notes.txt'} size=12")
               for line in lines)  # fmt: skip
    assert any(line.startswith("files< put ") for line in lines)
    reasons = [m.reason for m in device.requests if isinstance(m, FilesList | FilesDownload)]
    assert reasons == ["", "the printer settings are there", ""]
    assert "error< files.reason_required" in session.received  # an expect: can wait for it


# -- through a real session: the relay, the E2E channel, the read loop -------------------------


async def _serve_file(relay: Any, data: bytes, *, drop_after: int | None = None) -> None:
    """The agent: answers one download with files.ready and every chunk at once (no pause for
    the technician to get ready), or drops the connection after ``drop_after`` chunks."""
    assert relay.agent is not None and relay.connection is not None
    _, plaintext = relay.agent.open(await relay.next_frame())
    request = decode_app_message(plaintext)
    assert isinstance(request, FilesDownload)
    ref = request.transfer_id
    answers: list[AppMessage] = [
        FilesReady(transfer_id=ref, path=request.path, size=len(data), offset=request.offset)
    ]
    offsets = range(request.offset, len(data), CHUNK)
    answers += [FileChunk(transfer_id=ref, offset=at, data=data[at : at + CHUNK]) for at in offsets]
    answers.append(FilesDone(transfer_id=ref, size=len(data), sha256=_sha(data)))
    if drop_after is not None:
        answers = answers[: 1 + drop_after]
    for answer in answers:
        frame = relay.agent.seal(ChannelId.FILES, encode_app_message(answer))
        await relay.connection.send(frame)
    if drop_after is not None:
        await relay.connection.close()
        return
    end = await relay.next_control()
    assert isinstance(end, SessionEnd)
    await relay.connection.send(end_message("technician", "technician_ended"))


async def _download_through_a_session(
    target: Path, data: bytes, *, drop_after: int | None = None
) -> tuple[int, list[str]]:
    keys = Keys()

    async def agent(relay: FakeAgentRelay) -> None:
        await _serve_file(relay, data, drop_after=drop_after)

    relay = FakeAgentRelay(keys, make_grant(keys), after_confirm=agent)
    stream = io.StringIO()
    async with running(relay) as api:
        session = TechnicianSession(
            api=api, token="t" * 32, support_session_id=SESSION_ID,
            technician_key=keys.technician, server_key=keys.server.public_key(),
            output=PrefixedOutput(stream),
        )  # fmt: skip
        steps = [parse_action(f"get:/home/ana/report.bin=>{target}"), End()]
        outcome = await session.run(ScriptRunner(steps))
    return outcome.exit_code, stream.getvalue().splitlines()


async def test_a_download_through_the_session_survives_chunks_sent_right_behind_ready(
    here: Path,
) -> None:
    data = os.urandom(40 * CHUNK + 5)

    code, lines = await _download_through_a_session(here / "r.bin", data)

    assert code == EXIT_OK, lines
    assert (here / "r.bin").read_bytes() == data
    assert f"files< got /home/ana/report.bin -> {here / 'r.bin'} size={len(data)} " \
        f"sha256={_sha(data)}" in lines  # fmt: skip


async def test_a_dropped_connection_keeps_the_partial_for_the_next_attach(here: Path) -> None:
    data = os.urandom(10 * CHUNK)

    _, lines = await _download_through_a_session(here / "r.bin", data, drop_after=3)

    assert any("the connection to the server was lost" in line for line in lines), lines
    assert (here / f"r.bin{PART_SUFFIX}").read_bytes() == data[: 3 * CHUNK]
    assert not (here / "r.bin").exists()

    code, lines = await _download_through_a_session(here / "r.bin", data)

    assert code == EXIT_OK, lines
    assert (here / "r.bin").read_bytes() == data
    assert any(line.endswith(f"resumed_from={3 * CHUNK}") for line in lines), lines


async def test_a_files_message_on_another_channel_is_not_acted_on(here: Path) -> None:
    keys = Keys()

    async def agent(relay: FakeAgentRelay) -> None:
        assert relay.agent is not None and relay.connection is not None
        _, plaintext = relay.agent.open(await relay.next_frame())
        request = decode_app_message(plaintext)
        assert isinstance(request, FilesList)
        listing = FilesListing(request_id=request.request_id, path="/", entries=())
        for channel in (ChannelId.CHAT, ChannelId.FILES):
            await relay.connection.send(relay.agent.seal(channel, encode_app_message(listing)))
        end = await relay.next_control()
        assert isinstance(end, SessionEnd)
        await relay.connection.send(end_message("technician", "technician_ended"))

    relay = FakeAgentRelay(keys, make_grant(keys), after_confirm=agent)
    stream = io.StringIO()
    async with running(relay) as api:
        session = TechnicianSession(
            api=api, token="t" * 32, support_session_id=SESSION_ID,
            technician_key=keys.technician, server_key=keys.server.public_key(),
            output=PrefixedOutput(stream),
        )  # fmt: skip
        await session.run(ScriptRunner([parse_action("ls:/"), End()]))

    lines = stream.getvalue().splitlines()
    assert "error< files.listing on the wrong channel (CHAT); ignored" in lines
    assert "files< / (0 entries)" in lines
