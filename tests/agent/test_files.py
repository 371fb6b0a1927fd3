"""The files capability on real temporary folders, with a fake session that records everything
sent to the technician, asked of the person and reported to the server."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auxilio.agent.capabilities import files as files_module
from auxilio.agent.capabilities.base import Activity, Question, SessionServices
from auxilio.agent.capabilities.files import FileHandler
from auxilio.agent.capabilities.files_io import partial_path
from auxilio.agent.i18n import EN, ES, Texts
from auxilio.agent.state import ActivityLog
from auxilio.protocol.app import (
    FILE_CHUNK_SIZE,
    FileChunk,
    FilesCancel,
    FilesDone,
    FilesDownload,
    FilesError,
    FilesList,
    FilesListing,
    FilesReady,
    FilesUpload,
)
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import (
    Capability,
    CapabilityGrant,
    CapabilityLimits,
    ConsentDecision,
    ZoneSpec,
)

GRANTED, REFUSED, TIMED_OUT = (
    ConsentDecision.GRANTED,
    ConsentDecision.REFUSED,
    ConsentDecision.TIMED_OUT,
)
REASON = "the printer driver keeps its settings in your documents"


class FakeFeed:
    """The feed's lines as (kind, text), in the language of ``texts``."""

    def __init__(self, texts: Texts = EN) -> None:
        self.texts = texts
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, kind: str) -> Callable[[str], None]:
        return lambda text: self.lines.append((kind, text))


class FakeGrant:
    def __init__(self, session: FakeSession) -> None:
        self._session = session

    def capability(self, name: Capability, *, now: datetime) -> CapabilityGrant | None:
        if name is not Capability.FILES:
            return None
        return CapabilityGrant(
            capability=name, limits=self._session.limits, expires_at=now + timedelta(hours=1)
        )


@dataclass
class FakeSession:
    limits: CapabilityLimits
    log: ActivityLog
    answers: list[ConsentDecision] = field(default_factory=list)
    allowed: bool = True
    sent: list[Any] = field(default_factory=list)
    asked: list[Question] = field(default_factory=list)
    reported: list[Activity] = field(default_factory=list)
    used: list[Capability] = field(default_factory=list)
    feed: FakeFeed = field(default_factory=FakeFeed)
    on_send: Callable[[Any], None] | None = None
    hold_chunks: asyncio.Event | None = None
    chunk_sent: asyncio.Event = field(default_factory=asyncio.Event)

    def services(self) -> SessionServices:
        async def send(message: Any) -> None:
            self.sent.append(message)
            if isinstance(message, FileChunk):
                self.chunk_sent.set()
                if self.hold_chunks is not None:
                    await self.hold_chunks.wait()
            if self.on_send is not None:
                self.on_send(message)

        async def ask(question: Question) -> ConsentDecision:
            self.asked.append(question)
            return self.answers.pop(0)

        async def report(activity: Activity) -> None:
            self.reported.append(activity)

        async def mark_used(capability: Capability) -> None:
            self.used.append(capability)

        return SessionServices(
            grant=lambda: FakeGrant(self),  # type: ignore[arg-type,return-value]
            gate=lambda capability: self.allowed and capability is Capability.FILES,
            send=send,
            ask=ask,
            feed=self.feed,  # type: ignore[arg-type]
            log=self.log,
            report=report,
            clock=lambda: datetime.now(UTC),
            mark_used=mark_used,
        )

    def errors(self) -> list[str]:
        return [m.code for m in self.sent if isinstance(m, FilesError)]

    def kinds(self) -> list[ActivityKind]:
        return [a.kind for a in self.reported]

    def chunks(self) -> list[FileChunk]:
        return [m for m in self.sent if isinstance(m, FileChunk)]

    def one(self, kind: type[Any]) -> Any:
        found = [m for m in self.sent if isinstance(m, kind)]
        assert len(found) == 1, self.sent
        return found[0]


@dataclass
class Device:
    root: Path
    home: Path
    session: FakeSession
    handler: FileHandler

    def limits(self, **changes: Any) -> None:
        self.session.limits = self.session.limits.model_copy(update=changes)

    async def send(self, *messages: Any) -> None:
        """Each message once the previous one is answered (a client waits for files.ready)."""
        for message in messages:
            await self.handler.handle(message)
            await self.handler.settled()

    async def download(self, path: Path | str, *, offset: int = 0, reason: str = REASON) -> bytes:
        await self.send(FilesDownload(transfer_id=7, path=str(path), offset=offset, reason=reason))
        return b"".join(chunk.data for chunk in self.session.chunks())

    async def upload(
        self, path: Path, data: bytes, *, sha256: str | None = None, overwrite: bool = False
    ) -> None:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        await self.send(
            FilesUpload(transfer_id=9, path=str(path), size=len(data), sha256=digest,
                        overwrite=overwrite, reason=REASON)
        )  # fmt: skip
        ready = [m for m in self.session.sent if isinstance(m, FilesReady)]
        if ready:
            await self.send(*chunks_of(9, data, ready[-1].offset))


def chunks_of(transfer_id: int, data: bytes, start: int = 0) -> list[FileChunk]:
    return [
        FileChunk(transfer_id=transfer_id, offset=at, data=data[at : at + FILE_CHUNK_SIZE])
        for at in range(start, len(data), FILE_CHUNK_SIZE)
    ]


def partial_bytes(target: Path, digest: str) -> bytes | None:
    """What the upload's partial file holds, None when there is none."""
    partial = Path(partial_path(str(target), digest))
    return partial.read_bytes() if partial.exists() else None


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BIG = bytes(range(256)) * (FILE_CHUNK_SIZE // 256 * 2 + 300)  # two chunks and a bit


@pytest.fixture
def device(tmp_path: Path) -> Device:
    home = tmp_path / "home" / "ana"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "taxes.txt").write_text("income 2025: 41,200")
    (home / "Projects").mkdir()
    (home / "Projects" / "big.bin").write_bytes(BIG)
    (home / "Projects" / "notes.txt").write_text("printer: HP 4200")
    limits = CapabilityLimits(
        platform="linux",
        direction="both",
        zones=(ZoneSpec(name="documents", patterns=(f"{tmp_path}/home/*/Documents/**",)),),
        on_zone_access="require_consent",
    )
    session = FakeSession(limits=limits, log=ActivityLog(tmp_path / "activity.jsonl"))
    return Device(tmp_path, home, session, FileHandler(session.services()))


# -- the gate, direction, size ------------------------------------------------------------------


async def test_it_refuses_everything_when_files_are_not_allowed(device: Device) -> None:
    device.session.allowed = False
    await device.send(FilesList(request_id=1, path=str(device.home)))
    await device.download(device.home / "Projects" / "notes.txt")
    assert device.session.errors() == ["files.not_allowed", "files.not_allowed"]
    assert [kind for kind, _ in device.session.feed.lines] == ["alert", "alert"]
    assert device.session.reported == [] and device.session.used == []


async def test_a_forbidden_direction_is_refused_both_ways(device: Device) -> None:
    device.limits(direction="upload")
    assert await device.download(device.home / "Projects" / "notes.txt") == b""
    device.limits(direction="download")
    target = device.home / "Projects" / "new.txt"
    await device.upload(target, b"payload")
    assert device.session.errors() == ["files.direction_denied", "files.direction_denied"]
    assert sorted(os.listdir(device.home / "Projects")) == ["big.bin", "notes.txt"]


async def test_a_file_over_the_limit_is_refused_before_a_byte_is_sent(device: Device) -> None:
    device.limits(max_bytes=1000)
    assert await device.download(device.home / "Projects" / "big.bin") == b""
    await device.upload(device.home / "Projects" / "huge.bin", BIG)
    assert device.session.errors() == ["files.too_large", "files.too_large"]
    assert not (device.home / "Projects" / "huge.bin").exists()


# -- download -----------------------------------------------------------------------------------


async def test_a_download_streams_every_chunk_then_the_hash(device: Device) -> None:
    path = device.home / "Projects" / "big.bin"
    assert await device.download(path) == BIG
    ready, done = device.session.one(FilesReady), device.session.one(FilesDone)
    assert (ready.size, ready.offset, ready.path) == (len(BIG), 0, str(path))
    assert (done.size, done.sha256) == (len(BIG), sha(BIG))
    assert [c.offset for c in device.session.chunks()] == [0, FILE_CHUNK_SIZE, 2 * FILE_CHUNK_SIZE]
    read = device.session.reported[-1]
    assert (read.kind, read.subject, read.size, read.sha256) == (
        ActivityKind.FILE_READ, str(path), len(BIG), sha(BIG),
    )  # fmt: skip
    assert device.session.used == [Capability.FILES]
    assert any("downloaded" in text for _, text in device.session.feed.lines)
    assert any(e["event"] == "file_read" for e in device.session.log.events())


async def test_a_resumed_download_sends_the_rest_and_hashes_the_whole(device: Device) -> None:
    offset = FILE_CHUNK_SIZE + 1000
    rest = await device.download(device.home / "Projects" / "big.bin", offset=offset)
    assert rest == BIG[offset:]
    assert device.session.one(FilesReady).offset == offset
    assert device.session.chunks()[0].offset == offset
    assert device.session.one(FilesDone).sha256 == sha(BIG)


async def test_a_download_past_the_end_is_a_bad_offset(device: Device) -> None:
    await device.download(device.home / "Projects" / "notes.txt", offset=10_000)
    assert device.session.errors() == ["files.bad_offset"]


@pytest.mark.parametrize(
    ("name", "code"),
    [("missing.txt", "files.not_found"), ("", "files.is_directory")],
)
async def test_a_missing_file_or_a_folder_cannot_be_downloaded(
    device: Device, name: str, code: str
) -> None:
    await device.download(f"{device.home}/Projects/{name}")
    assert device.session.errors() == [code]


async def test_an_unreadable_file_is_permission_denied(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    secret = str(device.home / "Projects" / "notes.txt")

    def denying_open(path: Any, flags: int, *args: Any) -> int:
        if os.fspath(path) == secret:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(files_module.os, "open", denying_open)
    await device.download(secret)
    assert device.session.errors() == ["files.permission_denied"]


async def test_a_file_deleted_while_it_is_sent_has_vanished(device: Device) -> None:
    path = device.home / "Projects" / "big.bin"
    device.session.on_send = lambda m: path.unlink() if isinstance(m, FilesReady) else None
    await device.download(path)
    assert device.session.errors() == ["files.vanished"]
    assert not any(isinstance(m, FilesDone) for m in device.session.sent)


async def test_a_file_that_grows_while_it_is_sent_has_changed(device: Device) -> None:
    path = device.home / "Projects" / "big.bin"

    def grow(message: Any) -> None:
        if isinstance(message, FilesReady):
            with path.open("ab") as handle:
                handle.write(b"appended")

    device.session.on_send = grow
    await device.download(path)
    assert device.session.errors() == ["files.changed"]


async def test_a_file_that_shrinks_while_it_is_sent_has_changed(device: Device) -> None:
    path = device.home / "Projects" / "big.bin"
    device.session.on_send = lambda m: os.truncate(path, 10) if isinstance(m, FilesReady) else None
    await device.download(path)
    assert device.session.errors() == ["files.changed"]


async def test_a_cancelled_download_stops_and_says_so(device: Device) -> None:
    session = device.session
    session.hold_chunks = asyncio.Event()  # the socket is slow: the first chunk waits in send
    path = device.home / "Projects" / "big.bin"
    await device.handler.handle(FilesDownload(transfer_id=7, path=str(path)))
    await session.chunk_sent.wait()
    await device.send(FilesCancel(transfer_id=7))
    assert len(session.chunks()) == 1
    assert session.errors() == ["files.cancelled"]
    assert not any(isinstance(m, FilesDone) for m in session.sent)
    assert path.read_bytes() == BIG


# -- zones --------------------------------------------------------------------------------------


async def test_a_denied_zone_is_refused_without_a_question(device: Device) -> None:
    device.limits(on_zone_access="deny")
    taxes = device.home / "Documents" / "taxes.txt"
    assert await device.download(taxes) == b""
    assert device.session.errors() == ["files.zone_denied"]
    assert device.session.asked == []
    denied = device.session.reported[-1]
    assert (denied.kind, denied.zone, denied.subject) == (
        ActivityKind.ZONE_DENIED, "documents", str(taxes),
    )  # fmt: skip
    assert taxes.read_text() == "income 2025: 41,200"


async def test_a_zone_needs_a_reason_before_the_person_is_asked(device: Device) -> None:
    await device.download(device.home / "Documents" / "taxes.txt", reason="  ")
    assert device.session.errors() == ["files.reason_required"]
    assert device.session.asked == []


async def test_the_person_refuses_then_allows_a_zone(device: Device) -> None:
    session = device.session
    session.answers = [REFUSED, TIMED_OUT, GRANTED]
    taxes = device.home / "Documents" / "taxes.txt"
    assert await device.download(taxes) == b""
    assert await device.download(taxes) == b""  # silence is a refusal too
    assert session.errors() == ["files.zone_refused", "files.zone_refused"]
    assert await device.download(taxes) == b"income 2025: 41,200"
    question = session.asked[0]
    assert question.kind == "zone"
    assert question.lines[0] == "documents"
    assert str(taxes) in question.lines[1] and REASON in question.lines[2]
    assert session.kinds() == [
        ActivityKind.ZONE_REFUSED, ActivityKind.ZONE_REFUSED,
        ActivityKind.ZONE_ALLOWED, ActivityKind.FILE_READ,
    ]  # fmt: skip
    assert session.reported[-1].zone == "documents"
    # Once open, the zone stays open for the session: no second question.
    await device.send(FilesList(request_id=3, path=str(device.home / "Documents")))
    assert len(session.asked) == 3
    assert [e.name for e in session.one(FilesListing).entries] == ["taxes.txt"]


async def test_a_spanish_session_is_asked_about_a_zone_in_spanish(device: Device) -> None:
    session = device.session
    session.feed.texts = ES
    session.answers = [REFUSED, GRANTED]
    taxes = device.home / "Documents" / "taxes.txt"
    assert await device.download(taxes) == b""
    (question,) = session.asked
    assert question.title == "El técnico pide abrir una zona personal: Documentos"
    assert question.lines == (
        "Documentos",
        f"Ruta: {taxes}",
        f"Motivo: {REASON}",
        "Si lo permite, el técnico puede leer los archivos (ver y descargar), no cambiarlos.",
    )
    refused = f"Usted mantuvo cerrada la zona «Documentos»: el técnico no puede abrir {taxes}."
    assert session.feed.lines[-1] == ("warning", refused)
    # The technician's client gets the code and an English message, whatever the person reads.
    error = session.one(FilesError)
    assert (error.code, error.message) == (
        "files.zone_refused", "the person kept documents closed (refused)",
    )  # fmt: skip
    assert await device.download(taxes) == b"income 2025: 41,200"
    assert session.feed.lines[-2:] == [
        ("activity", "Usted dejó al técnico leer la zona «Documentos» durante esta sesión."),
        ("activity", f"El técnico descargó {taxes} (19 bytes)."),
    ]


@pytest.mark.parametrize(
    "spelling",
    [
        "{home}/Projects/../Documents/taxes.txt",
        "{home}/./Documents//taxes.txt",
        "{root}/home/ana/DOCUMENTS/taxes.txt",
        "{link}/taxes.txt",
        "{hardlink}",
    ],
)
async def test_no_spelling_of_a_zone_path_escapes_deny(device: Device, spelling: str) -> None:
    device.limits(on_zone_access="deny")
    link = device.root / "shortcut"
    link.symlink_to(device.home / "Documents")
    hardlink = device.home / "Projects" / "innocent.txt"
    os.link(device.home / "Documents" / "taxes.txt", hardlink)
    path = spelling.format(home=device.home, root=device.root, link=link, hardlink=hardlink)
    assert await device.download(path) == b""
    assert device.session.errors() == ["files.zone_denied"]


async def test_a_relative_path_is_refused(device: Device) -> None:
    await device.download("Documents/taxes.txt")
    assert device.session.errors() == ["files.not_absolute"]


async def test_a_path_outside_the_granted_folders_is_refused(device: Device) -> None:
    device.limits(paths=(str(device.home / "Projects"),))
    (device.home / "Projects" / "escape").symlink_to(device.root / "activity.jsonl")
    await device.download(device.root / "activity.jsonl")
    await device.download(device.home / "Projects" / "escape")
    assert device.session.errors() == ["files.outside_paths", "files.outside_paths"]
    assert await device.download(device.home / "Projects" / "notes.txt") == b"printer: HP 4200"


async def test_a_listing_outside_zones_shows_zone_entries_without_details(device: Device) -> None:
    await device.send(FilesList(request_id=1, path=str(device.home)))
    listing = device.session.one(FilesListing)
    entries = {e.name: e for e in listing.entries}
    assert set(entries) == {"Documents", "Projects"}
    documents = entries["Documents"]
    assert (documents.zone, documents.size, documents.modified_at) == ("documents", 0, None)
    assert entries["Projects"].zone is None and entries["Projects"].modified_at is not None
    assert device.session.asked == []
    assert device.session.kinds() == [ActivityKind.FILE_LISTED]


# -- upload -------------------------------------------------------------------------------------


async def test_an_upload_is_verified_then_put_in_place(device: Device) -> None:
    target = device.home / "Projects" / "driver.bin"
    await device.upload(target, BIG)
    done = device.session.one(FilesDone)
    assert (done.size, done.sha256) == (len(BIG), sha(BIG))
    assert target.read_bytes() == BIG
    assert partial_bytes(target, sha(BIG)) is None
    written = device.session.reported[-1]
    assert (written.kind, written.size, written.sha256) == (
        ActivityKind.FILE_WRITTEN, len(BIG), sha(BIG),
    )  # fmt: skip


async def test_an_existing_file_is_kept_without_overwrite(device: Device) -> None:
    notes = device.home / "Projects" / "notes.txt"
    await device.upload(notes, b"replacement")
    assert device.session.errors() == ["files.exists"]
    assert notes.read_text() == "printer: HP 4200"
    await device.upload(notes, b"replacement", overwrite=True)
    assert notes.read_bytes() == b"replacement"


async def test_an_interrupted_upload_resumes_from_its_partial(device: Device) -> None:
    target = device.home / "Projects" / "driver.bin"
    first = FilesUpload(transfer_id=9, path=str(target), size=len(BIG), sha256=sha(BIG))
    await device.send(first, chunks_of(9, BIG)[0])
    await device.handler.close()  # the connection dropped
    assert partial_bytes(target, sha(BIG)) == BIG[:FILE_CHUNK_SIZE]
    assert not target.exists()

    again = FakeSession(limits=device.session.limits, log=device.session.log)
    handler = FileHandler(again.services())
    await handler.handle(first)
    await handler.settled()
    assert again.one(FilesReady).offset == FILE_CHUNK_SIZE
    for chunk in chunks_of(9, BIG, FILE_CHUNK_SIZE):
        await handler.handle(chunk)
    assert again.one(FilesDone).sha256 == sha(BIG)
    assert target.read_bytes() == BIG
    assert partial_bytes(target, sha(BIG)) is None


async def test_a_hash_mismatch_removes_the_partial_and_keeps_the_original(device: Device) -> None:
    notes = device.home / "Projects" / "notes.txt"
    claimed = sha(b"what was announced")
    await device.upload(notes, b"what was sent", sha256=claimed, overwrite=True)
    assert device.session.errors() == ["files.hash_mismatch"]
    assert notes.read_text() == "printer: HP 4200"
    assert partial_bytes(notes, claimed) is None


async def test_a_chunk_at_the_wrong_offset_stops_the_upload_and_keeps_the_partial(
    device: Device,
) -> None:
    target = device.home / "Projects" / "driver.bin"
    chunks = chunks_of(9, BIG)
    await device.send(
        FilesUpload(transfer_id=9, path=str(target), size=len(BIG), sha256=sha(BIG)),
        chunks[0], chunks[2], chunks[1],  # the last one is in flight when the error leaves
    )  # fmt: skip
    assert device.session.errors() == ["files.bad_offset"]
    assert not target.exists()
    assert partial_bytes(target, sha(BIG)) == BIG[:FILE_CHUNK_SIZE]


async def test_more_bytes_than_announced_are_refused(device: Device) -> None:
    target = device.home / "Projects" / "small.txt"
    await device.send(
        FilesUpload(transfer_id=9, path=str(target), size=3, sha256=sha(b"abc")),
        FileChunk(transfer_id=9, offset=0, data=b"abcdef"),
    )
    assert device.session.errors() == ["files.too_large"]
    assert not target.exists()


async def test_not_enough_free_space_is_refused_up_front(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        files_module.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(100, 90, 10)
    )
    target = device.home / "Projects" / "driver.bin"
    await device.upload(target, BIG)
    assert device.session.errors() == ["files.disk_full"]
    assert not target.exists()
    assert partial_bytes(target, sha(BIG)) is None


async def test_a_disk_that_fills_while_writing_is_disk_full(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = device.home / "Projects" / "notes.txt"
    real_write = os.write
    calls = 0

    def filling_write(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files_module.os, "write", filling_write)
    await device.upload(notes, BIG, overwrite=True)
    assert device.session.errors() == ["files.disk_full"]
    assert notes.read_text() == "printer: HP 4200"
    assert partial_bytes(notes, sha(BIG)) is None  # the space goes back
    assert any("files.disk_full" in text for _, text in device.session.feed.lines)


async def test_an_upload_into_a_zone_asks_first(device: Device) -> None:
    device.session.answers = [REFUSED]
    target = device.home / "Documents" / "driver.ini"
    await device.upload(target, b"[printer]")
    assert device.session.errors() == ["files.zone_refused"]
    assert not target.exists()
    assert device.session.asked[0].lines[0] == "documents"


async def test_chunks_for_no_transfer_get_one_error(device: Device) -> None:
    await device.send(*chunks_of(4, BIG))
    assert device.session.errors() == ["files.unknown_transfer"]


async def test_revoking_files_stops_an_upload_and_keeps_its_partial(device: Device) -> None:
    target = device.home / "Projects" / "driver.bin"
    chunks = chunks_of(9, BIG)
    await device.send(
        FilesUpload(transfer_id=9, path=str(target), size=len(BIG), sha256=sha(BIG)), chunks[0]
    )
    device.session.allowed = False
    await device.send(chunks[1])
    assert device.session.errors() == ["files.not_allowed"]
    assert partial_bytes(target, sha(BIG)) == BIG[:FILE_CHUNK_SIZE]
    assert not target.exists()


async def test_an_empty_file_uploads_without_chunks(device: Device) -> None:
    target = device.home / "Projects" / "empty.txt"
    await device.upload(target, b"")
    assert device.session.one(FilesDone).sha256 == sha(b"")
    assert target.read_bytes() == b""


async def test_a_file_swapped_into_a_zone_after_the_check_is_refused(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a folder swapped for a link between the check and the open would give: the
    # descriptor's own path is in Documents, which the person has not opened.
    real_open = os.open
    taxes = str(device.home / "Documents" / "taxes.txt")

    def swapped_open(path: Any, flags: int, *args: Any) -> int:
        # Not the zone check's own O_PATH look at the path: only the open for reading.
        swap = str(path).endswith("notes.txt") and not flags & getattr(os, "O_PATH", 0)
        return real_open(taxes if swap else path, flags, *args)

    monkeypatch.setattr(files_module.os, "open", swapped_open)
    await device.download(device.home / "Projects" / "notes.txt")
    assert device.session.errors() == ["files.changed"]
    assert device.session.chunks() == []


async def test_a_hard_linked_file_asks_and_says_why(device: Device) -> None:
    device.session.answers = [GRANTED]
    link = device.home / "Projects" / "copy.txt"
    os.link(device.home / "Documents" / "taxes.txt", link)
    assert await device.download(link) == b"income 2025: 41,200"
    question = device.session.asked[0]
    assert question.lines[0] == "linked file"
    assert "more than one name" in question.lines[-1]
    assert device.session.reported[-1].zone == "linked_file"


async def test_inside_an_open_zone_entries_of_another_closed_zone_are_left_out(
    device: Device,
) -> None:
    keys = ZoneSpec(name="keys", patterns=(f"{device.home}/Documents/keys/**",))
    device.limits(zones=(keys, *(device.session.limits.zones or ())))
    (device.home / "Documents" / "keys").mkdir()
    device.session.answers = [GRANTED]
    await device.send(FilesList(request_id=2, path=str(device.home / "Documents"), reason=REASON))
    names = [e.name for e in device.session.one(FilesListing).entries]
    assert names == ["taxes.txt"]


async def test_a_bug_in_a_request_is_answered_failed_and_shown(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(files_module, "list_entries", broken)
    await device.send(FilesList(request_id=5, path=str(device.home)))
    assert device.session.errors() == ["files.failed"]
    assert device.session.feed.lines[-1][0] == "alert"
    await device.download(device.home / "Projects" / "notes.txt")  # the handler goes on
    assert device.session.one(FilesDone).size == len("printer: HP 4200")


async def test_requests_waiting_on_one_zone_share_one_question(device: Device) -> None:
    session, handler = device.session, device.handler
    answer: asyncio.Future[ConsentDecision] = asyncio.get_running_loop().create_future()

    async def slow_ask(question: Question) -> ConsentDecision:
        session.asked.append(question)
        return await answer

    handler._services.ask = slow_ask
    taxes = str(device.home / "Documents" / "taxes.txt")
    await handler.handle(FilesDownload(transfer_id=1, path=taxes, reason=REASON))
    await handler.handle(
        FilesList(request_id=2, path=str(device.home / "Documents"), reason=REASON)
    )
    await asyncio.sleep(0)
    answer.set_result(GRANTED)
    await handler.settled()
    assert len(session.asked) == 1
    assert session.one(FilesDone).size == len("income 2025: 41,200")
    assert session.kinds().count(ActivityKind.ZONE_ALLOWED) == 1


async def test_closing_withdraws_a_pending_question_and_answers_nothing(device: Device) -> None:
    session, handler = device.session, device.handler
    never: asyncio.Future[ConsentDecision] = asyncio.get_running_loop().create_future()
    shown = asyncio.Event()

    async def pending_ask(question: Question) -> ConsentDecision:
        session.asked.append(question)
        shown.set()
        return await never

    handler._services.ask = pending_ask
    taxes = str(device.home / "Documents" / "taxes.txt")
    await handler.handle(FilesDownload(transfer_id=1, path=taxes, reason=REASON))
    await shown.wait()
    await handler.close()
    assert never.cancelled()
    assert session.chunks() == [] and session.errors() == []


# -- issue 9 attack findings: what the fixes promise beyond the attack tests ---------------------


async def test_a_grant_for_another_platform_is_refused_on_every_request_with_one_alert(
    device: Device,
) -> None:
    other = "macos" if files_module.local_platform().value != "macos" else "linux"
    device.limits(platform=other)
    await device.send(FilesList(request_id=1, path=str(device.home / "Projects")))
    assert await device.download(device.home / "Projects" / "notes.txt") == b""
    await device.upload(device.home / "Projects" / "new.txt", b"x")
    assert device.session.errors() == ["files.platform_mismatch"] * 3
    assert [kind for kind, _ in device.session.feed.lines] == ["alert"]
    assert not (device.home / "Projects" / "new.txt").exists()


async def test_a_zone_opened_to_write_asks_again_to_read(device: Device) -> None:
    device.session.answers = [GRANTED, REFUSED]
    new = device.home / "Documents" / "letter.txt"
    await device.upload(new, b"dear school")
    assert new.read_bytes() == b"dear school"
    assert await device.download(device.home / "Documents" / "taxes.txt") == b""
    to_write, to_read = device.session.asked
    assert "write" in to_write.lines[-1] and "read" in to_read.lines[-1]
    assert device.session.errors() == ["files.zone_refused"]


async def test_a_ninth_open_upload_is_busy_and_a_finished_one_frees_its_place(
    device: Device,
) -> None:
    for number in range(9):
        await device.send(
            FilesUpload(transfer_id=number, path=str(device.home / "Projects" / f"f{number}"),
                        size=1, sha256=sha(b"x"))
        )  # fmt: skip
    assert device.session.errors() == ["files.busy"]
    await device.send(FileChunk(transfer_id=0, offset=0, data=b"x"))
    await device.send(
        FilesUpload(transfer_id=20, path=str(device.home / "Projects" / "f20"), size=1,
                    sha256=sha(b"x"))
    )  # fmt: skip
    assert device.session.errors() == ["files.busy"]
    assert (device.home / "Projects" / "f0").read_bytes() == b"x"
    await device.handler.close()
