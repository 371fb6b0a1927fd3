"""The files capability: browse, download and upload on the device, inside the grant's limits.

Every message passes ``services.gate(FILES)`` first, and every path is judged by the device's
own zone check (``zones_local``) before anything is read or written. A path in a personal-data
zone is refused outright under ``on_zone_access: deny``; under ``require_consent`` the person is
asked once per zone and per access (to read: list and download; to write: upload) per session,
with the technician's stated reason, and a refusal only fails that request: the session goes
on. A yes to read a zone's file is not a yes to overwrite it.

The zones in the grant are the policy's for the platform the server was told of. That name is
not the device's to sign (``agent.hello`` can be rewritten on the way), so a grant whose files
``platform`` is not this device's is refused on every request (``files.platform_mismatch``):
another platform's patterns would leave this device's personal folders in no zone.

Transfers are pipelined: a download sends ``files.ready``, then every chunk without waiting for
an acknowledgement (``services.send`` awaits the socket, which paces it), then ``files.done``
with the SHA-256 of the whole file (a resumed download hashes the prefix it does not send).
An upload writes into a partial file next to the target, named from the target and the
announced hash, so a resumed upload of the same content finds it and answers ``files.ready``
with the bytes it already holds; the file is renamed into place only after its hash matched.

What stays on the device after a failure (the person loses nothing they had):

* a target is only ever replaced by a complete, verified file, and only with ``overwrite``;
* an interrupted upload (connection lost, cancel, revoke, session end, a bad offset, a chunk past
  the announced size) keeps its partial for a resume;
* a hash mismatch removes the partial (its content is wrong), and so does a full disk (the
  person's disk should not stay full because of a transfer; the upload starts over).

Each request runs in a task of its own: a zone question may wait two minutes for the person, and
a download streams for as long as the file takes, while the session's other messages (a cancel,
chat) go on being handled. Upload chunks are written in order, as they arrive. At most
``MAX_OPEN_UPLOADS`` uploads are open at once (each holds a descriptor and a partial file);
another is ``files.busy``.

The steps that touch the disk are in ``files_io``; what the person reads is in their language
(``feed.texts.files``), what the technician's client receives stays English with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from auxilio.agent.capabilities.base import Activity, Question, SessionServices
from auxilio.agent.capabilities.files_io import (
    FilesFailure,
    check_target,
    inside,
    list_entries,
    open_for_reading,
    open_partial,
    os_failure,
    partial_path,
    place,
    read_at,
    remove,
    write_all,
)
from auxilio.agent.capabilities.zones_local import (
    LINKED_FILE,
    PathRefused,
    Resolved,
    ZoneChecker,
    local_platform,
)
from auxilio.agent.i18n_capabilities import FilesTexts, zone_name
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
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability, CapabilityLimits, ConsentDecision

logger = logging.getLogger(__name__)

# A grant that names no direction: reading only (the capability's own default).
DEFAULT_DIRECTION = "download"
# Uploads announced and not yet finished, each holding a descriptor and a partial file: more
# are refused (files.busy) rather than let a technician exhaust the agent's descriptors.
MAX_OPEN_UPLOADS = 8
READ, WRITE = "read", "write"


@dataclass(slots=True)
class _Upload:
    transfer_id: int
    target: str
    partial: str
    size: int
    sha256: str
    overwrite: bool
    zone: str | None
    fd: int
    offset: int
    hasher: Any = field(default_factory=hashlib.sha256)


class FileHandler:
    def __init__(self, services: SessionServices) -> None:
        self._services = services
        self._checker: tuple[CapabilityLimits, ZoneChecker] | None = None
        # (zone, READ or WRITE) the person opened for this session: a yes to read a zone's file
        # is not a yes to overwrite it.
        self._opened: set[tuple[str, str]] = set()
        self._asking: dict[tuple[str, str], asyncio.Future[ConsentDecision]] = {}
        self._wrong_platform_shown = False
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._uploads: dict[int, _Upload] = {}
        self._dead: set[int] = set()  # failed transfers: their chunks in flight are dropped
        self._used = False

    @property
    def _texts(self) -> FilesTexts:
        """The person's language, as the session's feed speaks it."""
        return self._services.feed.texts.files

    # -- entry points ---------------------------------------------------------------------

    async def handle(self, message: AppMessage) -> None:
        if isinstance(message, FileChunk):
            await self._chunk(message)
        elif isinstance(message, FilesList):
            await self._start(("list", message.request_id), self._list(message))
        elif isinstance(message, FilesDownload):
            await self._start(("transfer", message.transfer_id), self._download(message))
        elif isinstance(message, FilesUpload):
            await self._start(("transfer", message.transfer_id), self._upload(message))
        elif isinstance(message, FilesCancel):
            await self._cancel(message.transfer_id)
        else:
            self._services.log.append("ignored", what=f"{message.type} from the technician")

    async def settled(self) -> None:
        """Wait until every request started so far has answered (tests, a clean end)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    async def close(self) -> None:
        """Stop every transfer (revoked, or the session ended); upload partials stay."""
        tasks = list(self._tasks.values()) + list(self._asking.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for transfer_id in list(self._uploads):
            self._drop_upload(transfer_id, keep_partial=True)

    # -- requests -------------------------------------------------------------------------

    async def _start(self, key: tuple[str, int], work: Coroutine[Any, Any, None]) -> None:
        ref = key[1]
        if not self._allowed():
            work.close()
            await self._fail(ref, FilesFailure("files.not_allowed", "files are not allowed"))
            return
        if key in self._tasks or (key[0] == "transfer" and ref in self._uploads):
            work.close()
            await self._fail(ref, FilesFailure("files.duplicate_id", f"{ref} is in use"))
            return
        task = asyncio.create_task(self._run(ref, work))
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _run(self, ref: int, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except FilesFailure as failure:
            await self._fail(ref, failure)
        except Exception:
            # The task's boundary (nobody awaits it), as in dispatch: a bug, not a refusal, is
            # written down with its traceback, shown, and answered instead of left waiting.
            logger.exception("the files request %s failed", ref)
            self._services.feed.alert(self._texts.internal)
            await self._fail(ref, FilesFailure("files.failed", "internal error on the device"))

    def _allowed(self) -> bool:
        if self._services.gate(Capability.FILES):
            return True
        self._services.feed.alert(self._texts.not_allowed)
        self._services.log.append("refused_request", capability="files", what="use files")
        return False

    async def _fail(self, ref: int, failure: FilesFailure, path: str = "") -> None:
        self._services.log.append("files_error", ref=ref, code=failure.code, subject=path)
        if path:  # a transfer that had started: the person sees why it stopped
            self._services.feed.warning(self._texts.failed.format(code=failure.code, path=path))
        await self._services.send(FilesError(ref=ref, code=failure.code, message=failure.message))

    def _limits(self) -> CapabilityLimits:
        item = self._services.grant().capability(Capability.FILES, now=self._services.clock())
        if item is None:
            raise FilesFailure("files.not_allowed", "the grant of files is not live")
        return item.limits

    def _zones(self, limits: CapabilityLimits) -> ZoneChecker:
        """One checker per grant's limits: regexes, homes and zone roots are computed once.

        The grant's zones are those of the platform the server was told of (``agent.hello``,
        not signed by the device): a grant for another platform would put this device's
        personal folders under another platform's patterns, i.e. in none. It is refused."""
        here = local_platform().value
        if limits.platform is not None and limits.platform != here:
            if not self._wrong_platform_shown:
                self._wrong_platform_shown = True
                self._services.feed.alert(self._texts.platform_mismatch.format(platform=here))
            raise FilesFailure(
                "files.platform_mismatch",
                f"the grant's zones are for {limits.platform}; this device is {here}",
            )
        if self._checker is None or self._checker[0] != limits:
            self._checker = (limits, ZoneChecker(limits))
        return self._checker[1]

    async def _admit(self, path: str, reason: str, direction: str | None) -> Resolved:
        """The checks every request passes, in order: live grant, direction, allowed paths,
        zone (deny, or the person's answer). Returns the judged path."""
        limits = self._limits()
        if direction is not None:
            allowed = limits.direction or DEFAULT_DIRECTION
            if allowed not in ("both", direction):
                raise FilesFailure("files.direction_denied", f"{direction} is not allowed")
        checker = self._zones(limits)
        try:
            resolved = checker.resolve(path)
        except PathRefused as refused:
            raise FilesFailure(refused.code, refused.message) from refused
        if limits.paths is not None and not inside(resolved, limits.paths, checker):
            raise FilesFailure("files.outside_paths", f"{resolved.path} is outside the grant")
        access = WRITE if direction == "upload" else READ
        await self._enter_zone(resolved, reason, checker.on_access, access)
        if not self._used:
            self._used = True
            await self._services.mark_used(Capability.FILES)
        return resolved

    async def _enter_zone(
        self, resolved: Resolved, reason: str, on_access: str, access: str
    ) -> None:
        zone = resolved.zone
        if zone is None or (zone, access) in self._opened:
            return
        texts = self._texts
        label, path = zone_name(texts, zone), resolved.path
        if on_access == "deny":
            self._services.feed.alert(texts.zone_denied.format(path=path, zone=label))
            await self._zone_activity(ActivityKind.ZONE_DENIED, resolved)
            raise FilesFailure("files.zone_denied", f"{path} is in the zone {zone}")
        if not reason.strip():
            raise FilesFailure("files.reason_required", f"{path} is in the zone {zone}: say why")
        key = (zone, access)
        asking = self._asking.get(key)
        if asking is None:  # one question per zone and access, however many requests wait
            question = _zone_question(texts, resolved, reason, access)
            asking = asyncio.ensure_future(self._services.ask(question))
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        answer = await asyncio.shield(asking)
        if answer is ConsentDecision.GRANTED:
            if key not in self._opened:
                self._opened.add(key)
                allowed = texts.zone_allowed if access == READ else texts.zone_allowed_write
                self._services.feed.activity(allowed.format(zone=label))
                await self._zone_activity(ActivityKind.ZONE_ALLOWED, resolved)
            return
        self._services.feed.warning(texts.zone_refused.format(zone=label, path=path))
        await self._zone_activity(ActivityKind.ZONE_REFUSED, resolved)
        raise FilesFailure("files.zone_refused", f"the person kept {zone} closed ({answer})")

    async def _zone_activity(self, kind: ActivityKind, resolved: Resolved) -> None:
        self._services.log.append(str(kind), zone=resolved.zone, subject=resolved.path)
        await self._services.report(
            Activity(Capability.FILES, kind, subject=resolved.path, zone=resolved.zone)
        )

    async def _done(
        self, kind: ActivityKind, resolved: Resolved, size: int, sha256: str | None
    ) -> None:
        """A file listed (``size``: entries), read or written: the person's feed, the device
        log, the server."""
        event, text = {
            ActivityKind.FILE_LISTED: ("listed", self._texts.listed),
            ActivityKind.FILE_READ: ("read", self._texts.read),
            ActivityKind.FILE_WRITTEN: ("written", self._texts.written),
        }[kind]
        self._services.feed.activity(text.format(path=resolved.path, size=size))
        self._services.log.append(
            "file_" + event, subject=resolved.path, zone=resolved.zone, size=size, sha256=sha256
        )
        await self._services.report(
            Activity(
                Capability.FILES,
                kind,
                subject=resolved.path,
                size=size,
                sha256=sha256,
                zone=resolved.zone,
            )
        )

    # -- list -----------------------------------------------------------------------------

    async def _list(self, message: FilesList) -> None:
        resolved = await self._admit(message.path, message.reason, None)
        checker = self._zones(self._limits())
        try:
            entries, truncated = await asyncio.to_thread(
                list_entries, resolved, checker, self._opened_to(READ)
            )
        except FileNotFoundError as exc:
            raise FilesFailure("files.not_found", f"{resolved.path} does not exist") from exc
        except NotADirectoryError as exc:
            raise FilesFailure("files.not_directory", f"{resolved.path} is a file") from exc
        except PermissionError as exc:
            raise FilesFailure("files.permission_denied", f"{resolved.path}: {exc}") from exc
        except OSError as exc:  # a name too long, a loop of links, a disk that went away
            raise os_failure(exc, resolved.path) from exc
        await self._services.send(
            FilesListing(
                request_id=message.request_id,
                path=resolved.path,
                entries=entries,
                truncated=truncated,
            )
        )
        await self._done(ActivityKind.FILE_LISTED, resolved, len(entries), None)

    # -- download -------------------------------------------------------------------------

    async def _download(self, message: FilesDownload) -> None:
        resolved = await self._admit(message.path, message.reason, "download")
        fd = open_for_reading(resolved)
        try:
            self._recheck(fd, resolved)
            info = os.fstat(fd)
            size = info.st_size
            limit = self._limits().max_bytes
            if limit is not None and size > limit:
                raise FilesFailure("files.too_large", f"{size} bytes, the limit is {limit}")
            if message.offset > size:
                raise FilesFailure("files.bad_offset", f"offset {message.offset} > size {size}")
            await self._services.send(
                FilesReady(
                    transfer_id=message.transfer_id,
                    path=resolved.path,
                    size=size,
                    offset=message.offset,
                )
            )
            digest = await self._stream(fd, message.transfer_id, size, message.offset)
        finally:
            os.close(fd)
        await self._services.send(
            FilesDone(transfer_id=message.transfer_id, size=size, sha256=digest)
        )
        await self._done(ActivityKind.FILE_READ, resolved, size, digest)

    def _recheck(self, fd: int, resolved: Resolved) -> None:
        """The file opened is the file judged: a folder on the way swapped for a link into a
        zone between the check and the open shows in the descriptor's own path (Linux)."""
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return  # no /proc (macOS, Windows): the no-follow open is what remains
        if opened == resolved.path:
            return
        zone = self._zones(self._limits()).zone_of(opened)
        if zone is not None and zone != resolved.zone and (zone, READ) not in self._opened:
            raise FilesFailure("files.changed", f"{resolved.path} moved into a personal folder")

    async def _stream(self, fd: int, transfer_id: int, size: int, offset: int) -> str:
        """Hash the prefix, send the rest in chunks; the file must not change meanwhile."""
        hasher = hashlib.sha256()
        position = 0
        while position < size:
            if position >= offset and not self._allowed():
                raise FilesFailure("files.not_allowed", "files were revoked")
            data = read_at(fd, position, min(FILE_CHUNK_SIZE, size - position))
            if not data:
                raise FilesFailure("files.changed", f"the file shrank below {size} bytes")
            if position + len(data) > offset:
                start = max(offset - position, 0)
                await self._services.send(
                    FileChunk(transfer_id=transfer_id, offset=position + start, data=data[start:])
                )
            hasher.update(data)
            position += len(data)
        after = os.fstat(fd)
        if after.st_nlink == 0:
            raise FilesFailure("files.vanished", "the file was deleted while it was sent")
        if after.st_size != size or read_at(fd, size, 1):
            raise FilesFailure("files.changed", "the file changed size while it was sent")
        return hasher.hexdigest()

    # -- upload ---------------------------------------------------------------------------

    async def _upload(self, message: FilesUpload) -> None:
        resolved = await self._admit(message.path, message.reason, "upload")
        limit = self._limits().max_bytes
        if limit is not None and message.size > limit:
            raise FilesFailure("files.too_large", f"{message.size} bytes, the limit is {limit}")
        if len(self._uploads) >= MAX_OPEN_UPLOADS:
            raise FilesFailure(
                "files.busy", f"{MAX_OPEN_UPLOADS} uploads are open; finish or cancel one first"
            )
        target = resolved.path
        check_target(target, message.overwrite)
        partial = partial_path(target, message.sha256)
        fd, offset, hasher = open_partial(partial, message.size)
        try:
            free = shutil.disk_usage(os.path.dirname(target)).free
        except OSError as exc:
            os.close(fd)
            raise FilesFailure("files.io_error", f"{target}: {exc.strerror}") from exc
        if free < message.size - offset:
            os.close(fd)
            remove(partial)
            raise FilesFailure(
                "files.disk_full", f"{message.size - offset} bytes needed, {free} free"
            )
        upload = _Upload(
            message.transfer_id,
            target,
            partial,
            message.size,
            message.sha256,
            message.overwrite,
            resolved.zone,
            fd,
            offset,
            hasher,
        )
        self._uploads[message.transfer_id] = upload
        self._dead.discard(message.transfer_id)
        await self._services.send(
            FilesReady(
                transfer_id=message.transfer_id, path=target, size=message.size, offset=offset
            )
        )
        if offset == message.size:
            await self._finish(upload, resolved)

    async def _chunk(self, chunk: FileChunk) -> None:
        upload = self._uploads.get(chunk.transfer_id)
        if upload is None:
            if chunk.transfer_id not in self._dead:
                self._dead.add(chunk.transfer_id)
                await self._fail(chunk.transfer_id, FilesFailure("files.unknown_transfer"))
            return
        try:
            if not self._allowed():
                raise FilesFailure("files.not_allowed", "files were revoked")
            if chunk.offset != upload.offset:
                raise FilesFailure(
                    "files.bad_offset", f"expected offset {upload.offset}, got {chunk.offset}"
                )
            if upload.offset + len(chunk.data) > upload.size:
                raise FilesFailure("files.too_large", f"more than the {upload.size} announced")
            write_all(upload.fd, chunk.data)
        except FilesFailure as failure:
            full = failure.code == "files.disk_full"
            self._drop_upload(upload.transfer_id, keep_partial=not full)
            await self._fail(upload.transfer_id, failure, upload.target)
            return
        upload.hasher.update(chunk.data)
        upload.offset += len(chunk.data)
        if upload.offset == upload.size:
            resolved = Resolved(upload.target, upload.target, upload.zone, "")
            try:
                await self._finish(upload, resolved)
            except FilesFailure as failure:
                await self._fail(upload.transfer_id, failure, upload.target)

    async def _finish(self, upload: _Upload, resolved: Resolved) -> None:
        """Verify the whole file's hash, then put it in place (never over a file without
        ``overwrite``)."""
        digest = upload.hasher.hexdigest()
        self._uploads.pop(upload.transfer_id, None)
        self._dead.add(upload.transfer_id)
        try:
            os.fsync(upload.fd)
        finally:
            os.close(upload.fd)
        if digest != upload.sha256:
            remove(upload.partial)
            raise FilesFailure("files.hash_mismatch", f"received {digest}")
        check_target(upload.target, upload.overwrite)
        place(upload.partial, upload.target, upload.overwrite)
        await self._services.send(
            FilesDone(transfer_id=upload.transfer_id, size=upload.size, sha256=digest)
        )
        await self._done(ActivityKind.FILE_WRITTEN, resolved, size=upload.size, sha256=digest)

    def _drop_upload(self, transfer_id: int, *, keep_partial: bool) -> None:
        upload = self._uploads.pop(transfer_id, None)
        self._dead.add(transfer_id)
        if upload is None:
            return
        os.close(upload.fd)
        if not keep_partial:
            remove(upload.partial)
        self._services.log.append(
            "upload_stopped", subject=upload.target, offset=upload.offset, partial_kept=keep_partial
        )

    async def _cancel(self, transfer_id: int) -> None:
        task = self._tasks.get(("transfer", transfer_id))
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        was_upload = transfer_id in self._uploads
        self._drop_upload(transfer_id, keep_partial=True)
        if task is not None or was_upload:
            await self._fail(transfer_id, FilesFailure("files.cancelled", "cancelled"))

    def _opened_to(self, access: str) -> set[str]:
        return {zone for zone, opened in self._opened if opened == access}


def _zone_question(texts: FilesTexts, resolved: Resolved, reason: str, access: str) -> Question:
    zone = resolved.zone or ""
    label = zone_name(texts, zone)
    lines = [
        label,
        texts.zone_path.format(path=resolved.path),
        texts.reason.format(reason=reason.strip()),
        texts.zone_to_read if access == READ else texts.zone_to_write,
    ]
    if zone == LINKED_FILE:
        lines.append(texts.linked_file)
    return Question(kind="zone", title=texts.zone_title.format(zone=label), lines=tuple(lines))
