"""The technician's end of file transfer: list a directory, download and upload, both resumable.

The messages are ``protocol.app``'s ``files.*`` (docs/protocol.md, "Files, diagnostics and
runbooks"). Each request carries an id of ours; the device's answers and its ``files.error``
repeat it, and ``receive`` puts them in that request's inbox, where the waiting coroutine reads
them in order.

Downloads are written to ``<local>.part`` and renamed only once the device's ``files.done`` hash
matches the whole file. A download that stops for any other reason (the device's error, the
session's end, a local write failure) keeps the partial file, and the next download to the same
local path asks the device to start from its size: that is the resume. A partial that fails the
final check (hash or size) is removed, since resuming from it would fail the same way.

Chunks of a download are written as they are received, inside the session's read loop: the
socket is not read while a chunk is written, so a slow local disk slows the sender through the
WebSocket's flow control instead of filling memory. Upload chunks are sent one after the other
without waiting for acknowledgements (pipelined); each send waits only for the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from websockets.exceptions import ConnectionClosed

from auxilio.client.tools import ToolError
from auxilio.protocol.app import (
    FILE_CHUNK_SIZE,
    AppMessage,
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

PART_SUFFIX = ".part"
# Failed transfers whose late answers are expected and taken quietly.
_ENDED_KEPT = 256
_HASH_BLOCK = 1024 * 1024

Send = Callable[[AppMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DownloadResult:
    remote: str  # as the device resolved it
    local: Path
    size: int
    sha256: str
    resumed_from: int  # bytes already held locally when it started


@dataclass(frozen=True, slots=True)
class UploadResult:
    remote: str
    size: int
    sha256: str
    resumed_from: int  # bytes the device already held


Inbox = asyncio.Queue[AppMessage | ToolError]


class _DeviceError(ToolError):
    """The device's own ``files.error``: the transfer is already over on its side."""


@dataclass(slots=True)
class _Sink:
    """Where a download's chunks go. It exists before the request is sent and takes the
    device's ``files.ready`` and chunks in the read loop, in order: a chunk never arrives
    before there is somewhere to write it."""

    handle: BinaryIO
    hasher: hashlib._Hash
    expected: int  # the offset of the next chunk: what the partial file holds
    inbox: Inbox
    size: int | None = None  # from files.ready
    failed: bool = False

    def start(self, ready: FilesReady) -> None:
        """The device starts where we asked, or from 0 (it no longer trusts our prefix, e.g.
        the file changed); any other offset would leave a hole."""
        if ready.offset == 0 and self.expected:
            self.handle.seek(0)
            self.handle.truncate(0)
            self.hasher, self.expected = hashlib.sha256(), 0
        if ready.offset != self.expected or ready.offset > ready.size:
            self._fail(
                ToolError(
                    "files.bad_offset",
                    f"the device starts at {ready.offset}, we hold {self.expected}",
                )
            )
        self.size = ready.size

    def _fail(self, problem: ToolError) -> None:
        if not self.failed:
            self.failed = True
            self.inbox.put_nowait(problem)

    def write(self, chunk: FileChunk) -> None:
        if self.failed:
            return
        problem: ToolError | None = None
        if self.size is None:
            problem = ToolError("files.unexpected", "a chunk before files.ready")
        elif chunk.offset != self.expected:
            problem = ToolError(
                "files.bad_offset", f"a chunk at {chunk.offset}, expected {self.expected}"
            )
        elif self.expected + len(chunk.data) > self.size:
            problem = ToolError("files.changed", "the device sent more than it announced")
        else:
            try:
                self.handle.write(chunk.data)
            except OSError as exc:
                problem = ToolError("files.local_write_failed", f"cannot write: {exc}")
            else:
                self.hasher.update(chunk.data)
                self.expected += len(chunk.data)
        if problem is not None:
            self._fail(problem)


def file_sha256(path: Path, *, limit: int | None = None) -> str:
    """SHA-256 of the file, or of its first ``limit`` bytes."""
    return _hash_prefix(path, limit).hexdigest()


def _hash_prefix(path: Path, limit: int | None) -> hashlib._Hash:
    hasher = hashlib.sha256()
    remaining = limit
    with path.open("rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(_HASH_BLOCK if remaining is None else min(_HASH_BLOCK, remaining))
            if not block:
                break
            hasher.update(block)
            if remaining is not None:
                remaining -= len(block)
    return hasher


def local_target(remote: str, local: str | None) -> Path:
    """Where a download goes: ``local`` as given (``~`` expanded), inside it when it is a
    directory, or the remote file's name in the current directory."""
    name = remote.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "download"
    if not local:
        return Path(name)
    path = Path(local).expanduser()
    return path / name if path.is_dir() else path


def _start_download(remote: str, local: str | None) -> tuple[Path, Path, int]:
    """(target, its partial file, bytes the partial already holds); refuses an existing
    target, since the technician's own file must not be replaced by a download."""
    target = local_target(remote, local)
    if target.exists():
        raise ToolError("files.local_exists", f"{target} exists; name another file")
    part = target.with_name(target.name + PART_SUFFIX)
    return target, part, part.stat().st_size if part.exists() else 0


def _open_part(part: Path, offset: int) -> tuple[BinaryIO, hashlib._Hash]:
    """The partial file open after its first ``offset`` bytes, and the hash of those."""
    hasher = _hash_prefix(part, offset) if offset else hashlib.sha256()
    handle = part.open("r+b" if part.exists() else "wb")
    handle.truncate(offset)
    handle.seek(offset)
    return handle, hasher


def _describe_upload(local: str) -> tuple[Path, int, str]:
    path = Path(local).expanduser()
    if path.is_dir():
        raise ToolError("files.is_directory", f"{path} is a directory")
    try:
        return path, path.stat().st_size, file_sha256(path)
    except OSError as exc:
        raise ToolError("files.local_unreadable", f"cannot read {path}: {exc}") from exc


class FileTransfers:
    def __init__(self, *, send: Send, new_id: Callable[[], int]) -> None:
        self._send = send
        self._new_id = new_id
        self._inboxes: dict[int, Inbox] = {}
        self._sinks: dict[int, _Sink] = {}
        self._ended: dict[int, None] = {}  # failed transfers, oldest first (an ordered set)

    # -- the device's answers ------------------------------------------------------------

    def receive(self, message: AppMessage) -> bool:
        """Route one files message to the request it answers; False when none is waiting (a
        late answer to a cancelled request, or a peer bug: the caller says so)."""
        if isinstance(message, FileChunk):
            sink = self._sinks.get(message.transfer_id)
            if sink is not None:
                sink.write(message)
            # Chunks already in flight when a download was cancelled are expected: drop them.
            return True
        if isinstance(message, FilesReady) and message.transfer_id in self._sinks:
            self._sinks[message.transfer_id].start(message)
        match message:
            case FilesListing(request_id=ref) | FilesReady(transfer_id=ref):
                pass
            case FilesDone(transfer_id=ref) | FilesError(ref=ref):
                pass
            case _:
                return False
        inbox = self._inboxes.get(ref)
        if inbox is None:
            return ref in self._ended
        inbox.put_nowait(message)
        return True

    def abort(self, code: str, message: str) -> None:
        """The session ended: every waiting request fails now (partial downloads are kept)."""
        for inbox in self._inboxes.values():
            inbox.put_nowait(ToolError(code, message))

    # -- requests ------------------------------------------------------------------------

    async def list_directory(self, path: str, *, reason: str = "") -> FilesListing:
        request_id = self._new_id()
        with self._inbox(request_id) as inbox:
            await self._send(FilesList(request_id=request_id, path=path, reason=reason))
            answer = await _next(inbox)
        if not isinstance(answer, FilesListing):
            raise ToolError("files.unexpected", f"{answer.type} in answer to files.list")
        return answer

    async def download(
        self, remote: str, local: str | None = None, *, reason: str = ""
    ) -> DownloadResult:
        """Fetch ``remote`` into ``local`` (``local_target``), resuming from ``<local>.part``."""
        local_path, part, held = await asyncio.to_thread(_start_download, remote, local)
        handle, hasher = await asyncio.to_thread(_open_part, part, held)
        transfer_id = self._new_id()
        with handle, self._inbox(transfer_id) as inbox:
            sink = self._sinks[transfer_id] = _Sink(handle, hasher, held, inbox)
            try:
                await self._send(FilesDownload(transfer_id=transfer_id, path=remote, offset=held,
                                               reason=reason))  # fmt: skip
                ready = await _next(inbox)
                if not isinstance(ready, FilesReady):
                    raise ToolError("files.unexpected", f"{ready.type} before files.ready")
                done = await _next(inbox)
            except BaseException as exc:
                await self._give_up(transfer_id, exc)
                if sink.expected == 0:  # nothing worth resuming from
                    await asyncio.to_thread(part.unlink, missing_ok=True)
                raise
            finally:
                del self._sinks[transfer_id]
        if not isinstance(done, FilesDone):
            raise ToolError("files.unexpected", f"{done.type} during a download")
        if (
            done.size != ready.size
            or sink.expected != done.size
            or (sink.hasher.hexdigest() != done.sha256)
        ):
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise ToolError(
                "files.hash_mismatch",
                f"the received file does not match the device's SHA-256 ({done.sha256[:16]}...);"
                " the partial file was removed, get it again",
            )
        await asyncio.to_thread(os.replace, part, local_path)
        return DownloadResult(ready.path, local_path, done.size, done.sha256, ready.offset)

    async def upload(
        self, local: str, remote: str, *, overwrite: bool = False, reason: str = ""
    ) -> UploadResult:
        """Send ``local`` to ``remote``; the device's ``files.ready`` says where to start (a
        resumed upload starts after what its partial file already holds)."""
        path, size, sha256 = await asyncio.to_thread(_describe_upload, local)
        transfer_id = self._new_id()
        with self._inbox(transfer_id) as inbox:
            await self._send(
                FilesUpload(
                    transfer_id=transfer_id,
                    path=remote,
                    size=size,
                    sha256=sha256,
                    overwrite=overwrite,
                    reason=reason,
                )
            )
            try:
                ready = await _next(inbox)
                if not isinstance(ready, FilesReady):
                    raise ToolError("files.unexpected", f"{ready.type} before files.ready")
                if not 0 <= ready.offset <= size:
                    raise ToolError("files.bad_offset", f"the device asks from {ready.offset}")
                await self._send_chunks(transfer_id, inbox, path, ready.offset, size)
                done = await _next(inbox)
            except BaseException as exc:
                await self._give_up(transfer_id, exc)
                raise
        if not isinstance(done, FilesDone):
            raise ToolError("files.unexpected", f"{done.type} during an upload")
        if done.sha256 != sha256 or done.size != size:
            raise ToolError("files.hash_mismatch", "the device wrote a different file")
        return UploadResult(ready.path, size, sha256, ready.offset)

    async def _send_chunks(
        self, transfer_id: int, inbox: Inbox, local: Path, offset: int, size: int
    ) -> None:
        handle = await asyncio.to_thread(local.open, "rb")
        with handle:
            handle.seek(offset)
            while offset < size and inbox.empty():  # an answer now is an error: stop sending
                data = handle.read(min(FILE_CHUNK_SIZE, size - offset))
                if not data:
                    raise ToolError("files.local_changed", f"{local} shrank while sent")
                await self._send(FileChunk(transfer_id=transfer_id, offset=offset, data=data))
                offset += len(data)

    # -- helpers ---------------------------------------------------------------------------

    def _inbox(self, request_id: int) -> _Registered:
        return _Registered(self._inboxes, request_id)

    async def _give_up(self, transfer_id: int, exc: BaseException) -> None:
        """A transfer failed: tell the device to stop unless the failure was its own answer,
        and take its late answers (chunks in flight, ``files.cancelled``) without noise."""
        self._ended[transfer_id] = None
        while len(self._ended) > _ENDED_KEPT:
            del self._ended[next(iter(self._ended))]
        if isinstance(exc, _DeviceError):
            return
        with contextlib.suppress(ToolError, ConnectionClosed):  # the session may be gone
            await asyncio.shield(self._send(FilesCancel(transfer_id=transfer_id)))


class _Registered:
    """Registers an inbox for one request id for the duration of a ``with`` block."""

    def __init__(self, inboxes: dict[int, Inbox], request_id: int) -> None:
        self._inboxes = inboxes
        self._id = request_id

    def __enter__(self) -> Inbox:
        inbox: Inbox = asyncio.Queue()
        self._inboxes[self._id] = inbox
        return inbox

    def __exit__(self, *exc: object) -> None:
        self._inboxes.pop(self._id, None)


async def _next(inbox: Inbox) -> AppMessage:
    """The next answer; a ``files.error`` (or the session's end) raises ``ToolError``."""
    item = await inbox.get()
    if isinstance(item, ToolError):
        raise item
    if isinstance(item, FilesError):
        raise _DeviceError(item.code, item.message)
    return item
