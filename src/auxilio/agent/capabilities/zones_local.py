"""The device's own personal-data zone check: which zone, if any, a technician's path is in.

The grant carries the policy's zones for this platform as glob patterns (``CapabilityLimits``:
``zones``, ``zone_exceptions``, ``on_zone_access``). A pattern only sees a string, and a string
is easy to dress up, so :meth:`ZoneChecker.resolve` looks at every name the same file has:

* the path as given, after ``~`` / ``~user`` expansion and normalisation (``..``, ``.``, repeated
  slashes); a relative path cannot be judged and is refused (``files.not_absolute``);
* the real path (``os.path.realpath``): a symlink into a zone, or out of one, is caught because
  either name being in a zone puts the path in the zone;
* every local account's real home (``pwd.getpwall()`` and ``Path.home()``): the default patterns
  say ``/home/*/Documents/**``, and ``/root/Documents`` or ``/var/lib/ana/Documents`` are the
  same promise to the person, so home-relative patterns also match under each of those homes;
* bind mounts seen in ``/proc/self/mountinfo`` (a subdirectory of a zone mounted elsewhere) and
  any other second way to a zone's root directory (a bind mount of the root itself, a hard-linked
  directory, a mount point): the ``(st_dev, st_ino)`` of every existing zone root is taken once,
  and a path whose existing ancestor has one of those identities is judged as the same path
  under that root;
* hard links to files: a regular file with ``st_nlink > 1`` that no name puts in a zone may be a
  second name of a file inside one, and nothing short of searching the disk can tell. It is
  treated as the zone ``linked_file`` (a question under ``require_consent``, a refusal under
  ``deny``).

Zones are matched case-insensitively on every platform, Linux included: a case-insensitive file
system (macOS, Windows, a mounted FAT or NTFS volume, ext4 with casefold) gives ``documents`` and
``Documents`` the same files, and the stricter match only ever asks more, never less. Exceptions
are the opposite (they let a folder out), so on Linux they match exactly, case included: the
exception ``Documents/Public/**`` does not let out ``Documents/public``, another folder there.

Names may hold any character but NUL and ``/``, newlines included: the patterns are matched with
``re.DOTALL`` and anchored with ``\\Z`` (``$`` also matches before a final newline).

Exceptions (``zone_exceptions``) win over zones, as in ``policy.zones``: each name is judged on
its own, the exception tested first.

The pure-string part (:meth:`ZoneChecker.zone_of`, one precompiled regex) costs a few
microseconds; :meth:`ZoneChecker.resolve` adds the file-system calls, ``realpath`` first, once
per request (``bench/bench_zone_check.py`` measures both).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from glob import escape, glob
from pathlib import Path

from auxilio.policy.schema import Platform
from auxilio.policy.zones import DEFAULT_ZONES, glob_to_regex, normalise_path
from auxilio.protocol.types import CapabilityLimits, ZoneSpec

LINKED_FILE = "linked_file"
# What a grant without zones gets: the defaults for this platform, refused outright (the
# policy's own default), never silently nothing.
DEFAULT_ON_ZONE_ACCESS = "deny"
# Pattern heads that stand for "some person's home": they also match every local home.
_HOME_HEAD = re.compile(r"^(?:/home/\*|/Users/\*|\*:/Users/\*|~)(?=/|\Z)", re.IGNORECASE)
_MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class PathRefused(Exception):
    """A path that cannot be judged; ``code`` is the stable ``files.*`` error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Resolved:
    """A judged path. ``path`` is the real absolute path (what is opened); ``given`` the path as
    the technician wrote it, normalised. ``why`` says which name put it in ``zone``: ``given``,
    ``real``, ``mount``, ``zone_root``, ``linked_file``; empty when it is in none."""

    path: str
    given: str
    zone: str | None
    why: str


def local_platform() -> Platform:
    if sys.platform == "win32":
        return Platform.WINDOWS
    if sys.platform == "darwin":
        return Platform.MACOS
    return Platform.LINUX


def local_homes() -> list[str]:
    """Every local account's home, as written and as resolved, plus the running person's."""
    homes = [str(Path.home())]
    try:
        import pwd  # POSIX only

        homes.extend(entry.pw_dir for entry in pwd.getpwall())
    except ImportError:  # Windows: the profile directory pattern covers the usual place
        pass
    found = dict.fromkeys(h for home in homes if home for h in (home, os.path.realpath(home)))
    if sys.platform == "win32":  # paths are compared with "/" (policy.zones.normalise_path)
        return list(dict.fromkeys(h.replace("\\", "/") for h in found))
    return list(found)


def bind_mounts(mountinfo: Path = _MOUNTINFO) -> list[tuple[str, str]]:
    """``(mount point, the same directory's path elsewhere)`` for each bind mount of a
    subdirectory whose file system is also mounted whole; empty where there is no mountinfo."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    mounts: list[tuple[str, str, str]] = []  # (device, root within it, mount point)
    for line in lines:
        fields = line.split()
        if len(fields) >= 5:
            unescape = _OCTAL_ESCAPE.sub
            root, point = (unescape(lambda m: chr(int(m[1], 8)), f) for f in fields[3:5])
            mounts.append((fields[2], root, point))
    whole = {device: point for device, root, point in mounts if root == "/"}
    aliases = [
        (point, whole[device].rstrip("/") + root)
        for device, root, point in mounts
        if root != "/" and device in whole
    ]
    return sorted(aliases, key=lambda pair: -len(pair[0]))


def _home_alternatives(homes: Iterable[str], generic: re.Pattern[str]) -> list[str]:
    """Homes the generic ``/home/*`` head does not already match, as regex literals."""
    out: dict[str, None] = {}
    for home in homes:
        normal = home.rstrip("/")  # "/" is a home on some systems: patterns then start at "/"
        if not generic.fullmatch(normal):
            out[re.escape(normal)] = None
    return list(out)


def _patterns_regex(patterns: Sequence[str], home_head: str, homes: Sequence[str]) -> str:
    """One anchored regex, group ``g<i>`` for ``patterns[i]``. Home-relative patterns share one
    alternation of the homes (tried once per path, not once per pattern), which keeps a miss, the
    common case, near a microsecond however many local accounts there are."""
    homed: list[str] = []
    other: list[str] = []
    for i, pattern in enumerate(patterns):
        head = _HOME_HEAD.match(pattern)
        if head is None:
            other.append(f"(?P<g{i}>{glob_to_regex(pattern)})")
        else:
            homed.append(f"(?P<g{i}>{glob_to_regex(pattern[head.end() :])})")
    branches = list(other)
    if homed:
        heads = "|".join([glob_to_regex(home_head), *homes])
        branches.insert(0, f"(?:{heads})(?:{'|'.join(homed)})")
    # DOTALL and \Z: a name may hold a newline, which "." and "$" would otherwise stop at (or
    # before): "Documents/report\n.txt" is inside the zone, "Public\n" is not "Public".
    return f"(?s:{'|'.join(branches)})\\Z"


def _zone_roots(
    patterns: Iterable[tuple[str, str]], homes: Sequence[str], head: str
) -> dict[tuple[int, int], list[str]]:
    """Identity -> path of every existing directory a ``.../**`` pattern names (a pattern with
    ``**`` elsewhere has no single root and is left to the string match)."""
    roots: dict[tuple[int, int], list[str]] = {}
    for _, pattern in patterns:
        if not pattern.endswith("/**") or "**" in pattern[:-3]:
            continue
        base = pattern[:-3]
        match = _HOME_HEAD.match(base)
        candidates = [base]
        if match is not None:
            rest = base[match.end() :]
            candidates = [head + rest, *(escape(home.rstrip("/")) + rest for home in homes)]
        for candidate in candidates:
            for found in glob(candidate):  # case-sensitive here; the string match is not
                try:
                    info = os.stat(found)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    roots.setdefault((info.st_dev, info.st_ino), []).append(found)
    return roots


class ZoneChecker:
    """One grant's zones, compiled once (regexes, homes, bind mounts, zone-root identities).

    ``homes`` and ``mounts`` default to this device's; tests pass their own."""

    def __init__(
        self,
        limits: CapabilityLimits,
        *,
        platform: Platform | None = None,
        homes: Iterable[str] | None = None,
        mounts: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self.platform = platform or Platform(limits.platform or local_platform().value)
        self.on_access = limits.on_zone_access or DEFAULT_ON_ZONE_ACCESS
        zones = limits.zones if limits.zones is not None else _default_zones(self.platform)
        head = {Platform.WINDOWS: "*:/Users/*", Platform.MACOS: "/Users/*"}.get(
            self.platform, "/home/*"
        )
        generic = re.compile(glob_to_regex(head), re.IGNORECASE)
        all_homes = list(homes) if homes is not None else local_homes()
        alternatives = _home_alternatives(all_homes, generic)
        pairs = [(zone.name, pattern) for zone in zones for pattern in zone.patterns]
        self._names = [name for name, _ in pairs]
        patterns = [pattern for _, pattern in pairs]
        self._zones = (
            re.compile(_patterns_regex(patterns, head, alternatives), re.IGNORECASE)
            if pairs
            else None
        )
        exceptions = list(limits.zone_exceptions)
        self._exceptions = (
            re.compile(
                _patterns_regex(exceptions, head, alternatives), _exception_flags(self.platform)
            )
            if exceptions
            else None
        )
        self._mounts = list(mounts) if mounts is not None else bind_mounts()
        local = [h for h in all_homes if not generic.fullmatch(h.rstrip("/"))]
        self._roots = _zone_roots(pairs, local, head)

    def zone_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._names))

    def zone_of(self, normal_path: str) -> str | None:
        """The zone of an already normal absolute path, by its string alone (the fast path)."""
        if self._zones is None:
            return None
        found = self._zones.match(normal_path)
        if found is None or found.lastgroup is None:
            return None
        if self._exceptions is not None and self._exceptions.match(normal_path):
            return None  # tested second: the same answer, and a miss (most paths) skips it
        return self._names[int(found.lastgroup[1:])]

    def normalise(self, path: str) -> str:
        """``path`` with ``~`` expanded and normalised; ``PathRefused`` if it cannot be judged."""
        normal = normalise_path(self.platform, self._expand(path))
        if normal is None:
            raise PathRefused("files.not_absolute", f"{path!r} is not an absolute path")
        return normal

    @staticmethod
    def _expand(path: str) -> str:
        if "\x00" in path:
            raise PathRefused("files.bad_path", "the path contains a NUL character")
        if not path.startswith("~"):
            return path
        expanded = os.path.expanduser(path)
        if expanded.startswith("~"):
            user = path[1:].replace("\\", "/").split("/", 1)[0]
            raise PathRefused("files.not_absolute", f"no local account named {user!r}")
        return expanded

    def resolve(self, path: str) -> Resolved:
        """Judge ``path`` by every name it has (module docstring); raises ``PathRefused``."""
        given = self.normalise(path)
        # The real path from the path as written: the kernel follows "link/.." to the link's
        # target's parent, which the normalised string no longer knows.
        real = normalise_path(self.platform, real_path(self._expand(path))) or given
        zone = self.zone_of(given)
        if zone is not None:
            return Resolved(real, given, zone, "given")
        if real != given and (zone := self.zone_of(real)) is not None:
            return Resolved(real, given, zone, "real")
        for point, alias in self._mounts:
            if real == point or real.startswith(point.rstrip("/") + "/"):
                zone = self.zone_of(alias + real[len(point.rstrip("/")) :])
                if zone is not None:
                    return Resolved(real, given, zone, "mount")
        info = _stat(real)
        zone = self._by_identity(real, info)
        if zone is not None:
            return Resolved(real, given, zone, "zone_root")
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            return Resolved(real, given, LINKED_FILE, "linked_file")
        return Resolved(real, given, None, "")

    def _by_identity(self, real: str, info: os.stat_result | None) -> str | None:
        """The zone of ``real`` judged under a zone root that an ancestor is another name of
        (``info`` is ``real``'s own stat, taken once for this and the hard-link check)."""
        if not self._roots:
            return None
        current = real
        while True:
            roots = self._roots.get((info.st_dev, info.st_ino)) if info is not None else None
            rest = real[len(current) :].strip("/")
            for root in roots or ():
                zone = self.zone_of(f"{root.rstrip('/')}/{rest}" if rest else root)
                if zone is not None:
                    return zone
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent
            info = _stat(current)


_PROC_FD = Path("/proc/self/fd")
_HAS_O_PATH = hasattr(os, "O_PATH") and _PROC_FD.is_dir()


def real_path(path: str) -> str:
    """``os.path.realpath``, with the kernel's own answer where it has one: on Linux the path of
    an ``O_PATH`` descriptor (two system calls instead of one per component, a third of the
    time). A path that does not exist (an upload's target), or a file deleted meanwhile, takes
    ``realpath``, which resolves what exists and keeps the rest."""
    if _HAS_O_PATH:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return os.path.realpath(path)
        try:
            found = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            found = ""
        finally:
            os.close(fd)
        if found.startswith("/") and not found.endswith(" (deleted)"):
            return found
    return os.path.realpath(path)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:  # absent (an upload's target), unreadable, or a dangling link
        return None


def _exception_flags(platform: Platform) -> re.RegexFlag:
    """Exceptions are exact where the file system usually is (Linux): an exception lets a
    folder out of a zone, and on a case-sensitive disk ``Public`` and ``public`` are two
    folders. (Zones are the other way round: the wider match only ever asks more.)"""
    return re.NOFLAG if platform is Platform.LINUX else re.IGNORECASE


def _default_zones(platform: Platform) -> tuple[ZoneSpec, ...]:
    return tuple(
        ZoneSpec(name=name, patterns=per_platform[platform])
        for name, per_platform in DEFAULT_ZONES.items()
        if per_platform[platform]
    )
