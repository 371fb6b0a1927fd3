"""The files capability's file-system steps: small, synchronous, each mapping its errors to a
stable ``files.*`` code (``FilesFailure``), so the handler (``files.py``) reads as the order of
checks and messages, and what touches the disk can be read, and tested, on its own.

The rules these steps keep are the handler's: a target is only ever replaced by a complete,
verified file, and only with ``overwrite``; the last name of a path is opened without following
a link; an upload collects its bytes in a partial next to its target (same file system, so the
final rename is atomic).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Set
from datetime import UTC, datetime
from typing import Any, Literal

from auxilio.agent.capabilities.zones_local import PathRefused, Resolved, ZoneChecker
from auxilio.protocol.app import FILE_CHUNK_SIZE, FileEntry

MAX_LISTING = 5000  # FilesListing.entries' limit
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class FilesFailure(Exception):
    """A request that ends in ``files.error`` with a stable ``code``."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message


# Errors that say the path itself cannot be used (too long, a loop of links, not a folder on the
# way): the technician's request is at fault, not the disk.
_BAD_PATH_ERRNOS = frozenset(
    (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EINVAL, errno.EILSEQ)
)


def os_failure(exc: OSError, path: str) -> FilesFailure:
    """An ``OSError`` as a stable code: ``files.bad_path`` when the path cannot be used as
    written, ``files.disk_full`` / ``files.permission_denied`` / ``files.not_found`` where they
    apply, ``files.io_error`` for the rest (never the internal-error ``files.failed``)."""
    if exc.errno in _BAD_PATH_ERRNOS:
        return FilesFailure("files.bad_path", f"{path}: {exc.strerror}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FilesFailure("files.disk_full", f"{path}: {exc.strerror}")
    if isinstance(exc, PermissionError):
        return FilesFailure("files.permission_denied", f"{path}: {exc.strerror}")
    if isinstance(exc, FileNotFoundError):
        return FilesFailure("files.not_found", f"{path} does not exist")
    return FilesFailure("files.io_error", f"{path}: {exc.strerror}")


def partial_path(target: str, sha256: str) -> str:
    """Where an upload of ``sha256`` to ``target`` collects its bytes: hidden, next to it (same
    file system, so the final rename is atomic), the same name on a resume."""
    head, name = os.path.split(target)
    return os.path.join(head, f".{name}.{sha256[:16]}.auxilio-partial")


def inside(resolved: Resolved, prefixes: tuple[str, ...], checker: ZoneChecker) -> bool:
    """Both names of the path under an allowed prefix (either one outside is outside)."""
    normal: list[str] = []
    for prefix in prefixes:
        with contextlib.suppress(PathRefused):
            normal.append(checker.normalise(prefix).rstrip("/"))

    def under(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") or p == "" for p in normal)

    return under(resolved.given) and under(resolved.path)


def list_entries(
    folder: Resolved, checker: ZoneChecker, opened: Set[str]
) -> tuple[tuple[FileEntry, ...], bool]:
    """The folder's entries and whether the list was cut at ``MAX_LISTING`` (run it in a
    thread: each entry is judged by the zone check, with its system calls). An entry in a zone
    not ``opened`` shows its zone and no size or time; inside a zone, such an entry is left out
    (its name alone may be personal)."""
    entries: list[FileEntry] = []
    with os.scandir(folder.path) as scan:
        for item in scan:
            if len(entries) == MAX_LISTING:
                return tuple(entries), True
            try:
                zone = checker.resolve(os.path.join(folder.path, item.name)).zone
                info = item.stat(follow_symlinks=False)
            except (PathRefused, OSError):
                continue  # vanished while listed, or a name no check can judge
            closed = zone is not None and zone not in opened
            if closed and folder.zone is not None:
                continue
            entries.append(
                FileEntry(
                    name=shown_name(item.name),
                    kind=_kind(info.st_mode),
                    zone=zone,
                    size=0 if closed or not stat.S_ISREG(info.st_mode) else info.st_size,
                    modified_at=None if closed else datetime.fromtimestamp(info.st_mtime, UTC),
                )
            )
    return tuple(entries), False


def shown_name(name: str) -> str:
    """A name as the listing can carry it: a name that is not UTF-8 (an old USB stick, a zip
    from another system) arrives from ``os.scandir`` with lone surrogates, which JSON cannot
    hold; its undecodable bytes are shown escaped (``\\xff-old.txt``). That form is for
    reading, not a name to ask for: the technician's path is UTF-8 and never names those
    bytes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _kind(mode: int) -> Literal["file", "directory", "link", "other"]:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "directory"
    return "file" if stat.S_ISREG(mode) else "other"


def open_for_reading(resolved: Resolved) -> int:
    """The file's descriptor. The real path's last name is opened without following a link,
    so a file swapped for a symlink after the check is refused, not followed."""
    try:
        fd = os.open(resolved.path, os.O_RDONLY | _NOFOLLOW | _BINARY)
    except FileNotFoundError as exc:
        raise FilesFailure("files.not_found", f"{resolved.path} does not exist") from exc
    except IsADirectoryError as exc:
        raise FilesFailure("files.is_directory", f"{resolved.path} is a folder") from exc
    except PermissionError as exc:
        raise FilesFailure("files.permission_denied", f"{resolved.path}: {exc}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FilesFailure("files.changed", f"{resolved.path} became a link") from exc
        raise os_failure(exc, resolved.path) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        code = "files.is_directory" if stat.S_ISDIR(mode) else "files.not_regular"
        raise FilesFailure(code, f"{resolved.path} is not a regular file")
    return fd


def read_at(fd: int, position: int, count: int) -> bytes:
    try:
        os.lseek(fd, position, os.SEEK_SET)  # not pread: Windows has none
        return os.read(fd, count)
    except FileNotFoundError as exc:
        raise FilesFailure("files.vanished", "the file went away while it was read") from exc
    except OSError as exc:
        raise FilesFailure("files.io_error", f"read failed: {exc.strerror}") from exc


def check_target(target: str, overwrite: bool) -> None:
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            raise FilesFailure("files.not_found", f"no folder {parent}") from None
        return
    except OSError as exc:  # a name too long for the file system, a file on the way...
        raise os_failure(exc, target) from exc
    if stat.S_ISDIR(info.st_mode):
        raise FilesFailure("files.is_directory", f"{target} is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise FilesFailure("files.not_regular", f"{target} is not a regular file")
    if not overwrite:
        raise FilesFailure("files.exists", f"{target} exists (overwrite not asked)")


def open_partial(partial: str, size: int) -> tuple[int, int, Any]:
    """The partial's descriptor, the bytes it already holds and their running hash (a partial
    longer than the announced size is not this upload's: it starts over).

    A partial that is not a regular file of one name is refused before a byte of it is
    truncated or written: a hard link under the partial's name (made on the device) is a second
    name of a file elsewhere, in a zone maybe, and writing it would write that file."""
    flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _BINARY
    try:
        fd = os.open(partial, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW: the partial's name is a symlink
            raise FilesFailure("files.io_error", f"{partial} is a link") from exc
        raise os_failure(exc, partial) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise FilesFailure(
                "files.io_error", f"{partial} is not a partial of this upload (a link, a device)"
            )
        held = info.st_size
        if held > size:
            os.ftruncate(fd, 0)
            held = 0
        hasher = hashlib.sha256()
        position = 0
        os.lseek(fd, 0, os.SEEK_SET)
        while position < held:
            data = os.read(fd, min(FILE_CHUNK_SIZE, held - position))
            if not data:
                break
            hasher.update(data)
            position += len(data)
        os.lseek(fd, position, os.SEEK_SET)
        os.ftruncate(fd, position)
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise os_failure(exc, partial) from exc
        raise
    return fd, position, hasher


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        code = "files.disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "files.io_error"
        raise FilesFailure(code, f"write failed: {exc.strerror}") from exc


def place(partial: str, target: str, overwrite: bool) -> None:
    """Rename the verified partial into place. Without ``overwrite`` a hard link makes the
    step atomic: a file that appeared meanwhile is never replaced."""
    try:
        if overwrite:
            with contextlib.suppress(OSError):
                shutil.copymode(target, partial)  # keep the replaced file's permissions
            os.replace(partial, target)
            return
        try:
            os.link(partial, target)
        except FileExistsError:
            raise FilesFailure("files.exists", f"{target} appeared meanwhile") from None
        except OSError:  # a file system without hard links: check, then rename
            if os.path.lexists(target):
                raise FilesFailure("files.exists", f"{target} appeared meanwhile") from None
            os.replace(partial, target)
            return
        os.unlink(partial)
    except PermissionError as exc:
        raise FilesFailure("files.permission_denied", f"{target}: {exc.strerror}") from exc
    except FilesFailure:
        raise
    except OSError as exc:
        raise FilesFailure("files.io_error", f"{target}: {exc.strerror}") from exc


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
