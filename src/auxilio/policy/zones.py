"""Personal-data zones: path patterns a technician may not open without the user's own consent.

Paths are compared after normalisation (backslashes to ``/``, ``..`` resolved) so that
``C:\\Users\\ana\\Public\\..\\Documents\\cv.pdf`` is still inside Documents.  Windows and macOS
compare case-insensitively, as their default file systems do; Linux is case-sensitive.  The agent
passes real paths (symlinks and 8.3 short names resolved), since a pattern cannot see through them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from auxilio.policy.schema import PersonalDataZones, Platform, Policy

_W = "*:/Users/*"
_M = "/Users/*"
_L = "/home/*"

# name -> platform -> patterns.  Edited with care: every entry is a promise to end users.
DEFAULT_ZONES: dict[str, dict[Platform, tuple[str, ...]]] = {
    "documents": {
        Platform.WINDOWS: (f"{_W}/Documents/**",),
        Platform.MACOS: (f"{_M}/Documents/**",),
        Platform.LINUX: (f"{_L}/Documents/**",),
    },
    "desktop": {
        Platform.WINDOWS: (f"{_W}/Desktop/**",),
        Platform.MACOS: (f"{_M}/Desktop/**",),
        Platform.LINUX: (f"{_L}/Desktop/**",),
    },
    "pictures": {
        Platform.WINDOWS: (f"{_W}/Pictures/**",),
        Platform.MACOS: (f"{_M}/Pictures/**",),
        Platform.LINUX: (f"{_L}/Pictures/**",),
    },
    "downloads": {
        Platform.WINDOWS: (f"{_W}/Downloads/**",),
        Platform.MACOS: (f"{_M}/Downloads/**",),
        Platform.LINUX: (f"{_L}/Downloads/**",),
    },
    "media": {
        Platform.WINDOWS: (f"{_W}/Videos/**", f"{_W}/Music/**"),
        Platform.MACOS: (f"{_M}/Movies/**", f"{_M}/Music/**"),
        Platform.LINUX: (f"{_L}/Videos/**", f"{_L}/Music/**"),
    },
    "mail": {
        Platform.WINDOWS: (
            f"{_W}/AppData/Local/Microsoft/Outlook/**",
            f"{_W}/AppData/Roaming/Thunderbird/**",
        ),
        Platform.MACOS: (f"{_M}/Library/Mail/**", f"{_M}/Library/Thunderbird/**"),
        Platform.LINUX: (
            f"{_L}/.thunderbird/**",
            f"{_L}/Maildir/**",
            f"{_L}/.local/share/evolution/**",
        ),
    },
    "browser_profiles": {
        Platform.WINDOWS: (
            f"{_W}/AppData/Local/Google/Chrome/User Data/**",
            f"{_W}/AppData/Local/Microsoft/Edge/User Data/**",
            f"{_W}/AppData/Roaming/Mozilla/Firefox/**",
        ),
        Platform.MACOS: (
            f"{_M}/Library/Application Support/Google/Chrome/**",
            f"{_M}/Library/Application Support/Firefox/**",
            f"{_M}/Library/Safari/**",
        ),
        Platform.LINUX: (
            f"{_L}/.mozilla/**",
            f"{_L}/.config/google-chrome/**",
            f"{_L}/.config/chromium/**",
        ),
    },
    "cloud_sync": {
        Platform.WINDOWS: (f"{_W}/OneDrive*/**", f"{_W}/Dropbox/**", f"{_W}/Google Drive/**"),
        Platform.MACOS: (
            f"{_M}/Library/Mobile Documents/**",
            f"{_M}/Library/CloudStorage/**",
            f"{_M}/Dropbox/**",
        ),
        Platform.LINUX: (f"{_L}/Dropbox/**",),
    },
    "credentials": {
        Platform.WINDOWS: (f"{_W}/.ssh/**",),
        Platform.MACOS: (f"{_M}/.ssh/**", f"{_M}/Library/Keychains/**"),
        Platform.LINUX: (f"{_L}/.ssh/**", f"{_L}/.gnupg/**"),
    },
}


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    platform: Platform
    pattern: str


def glob_to_regex(pattern: str) -> str:
    """``**`` spans directories, ``*`` and ``?`` stay inside one; a trailing ``/**`` also matches
    the directory itself."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("/**/", i):
            out.append("/(?:.*/)?")
            i += 4
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:/|//)")


def normalise_path(platform: Platform, path: str) -> str | None:
    """The comparable form of ``path``; None when it is not absolute (it cannot be judged)."""
    if platform is Platform.WINDOWS:
        path = path.replace("\\", "/")
        if not _WINDOWS_ABSOLUTE.match(path):
            return None
        unc = path.startswith("//")
        # normpath would eat the drive's root on "C:/..": resolve below the drive instead.
        head, rest = ("//", path[2:]) if unc else (path[:3], path[3:])
        if "/." in path or "//" in rest or rest.endswith("/"):
            rest = posixpath.normpath("/" + rest).lstrip("/")
        return head + rest
    if not path.startswith("/"):
        return None
    if "/." not in path and "//" not in path and not path.endswith("/"):
        return path  # already normal; normpath is the slow part of a zone check
    normal = posixpath.normpath(path)
    # POSIX keeps a leading "//" as implementation-defined; for matching it is just "/".
    return "/" + normal.lstrip("/")


class ZoneMatcher:
    """All zones of one platform compiled into a single regex with one group per pattern."""

    def __init__(
        self, platform: Platform, zones: list[tuple[str, str]], exceptions: list[str]
    ) -> None:
        flags = 0 if platform is Platform.LINUX else re.IGNORECASE
        self.platform = platform
        self._zones = [Zone(name, platform, pattern) for name, pattern in zones]
        alternatives = "|".join(f"(?P<g{i}>{glob_to_regex(p)})" for i, (_, p) in enumerate(zones))
        self._regex = re.compile(f"^(?:{alternatives})$", flags) if zones else None
        joined = "|".join(glob_to_regex(p) for p in exceptions)
        self._exceptions = re.compile(f"^(?:{joined})$", flags) if exceptions else None

    def zone_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(z.name for z in self._zones))

    def excepted(self, normal_path: str) -> bool:
        return self._exceptions is not None and self._exceptions.match(normal_path) is not None

    def match(self, normal_path: str) -> Zone | None:
        """The zone holding ``normal_path`` (see :func:`normalise_path`), exceptions honoured."""
        if self._regex is None or self.excepted(normal_path):
            return None
        found = self._regex.match(normal_path)
        if found is None or found.lastgroup is None:
            return None
        return self._zones[int(found.lastgroup[1:])]


def platform_zones(
    config: PersonalDataZones, platform: Platform
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (zone name, pattern) pairs and the exception patterns of one platform, in matching
    order: policy-defined zones first, so their names win when a default covers the same path.
    The same list is compiled here for the server and signed into the grant for the agent."""
    zones: list[tuple[str, str]] = []
    for zone in config.zones:
        zones.extend((zone.name, p) for p in getattr(zone, platform.value))
    if config.include_defaults:
        for name, per_platform in DEFAULT_ZONES.items():
            zones.extend((name, p) for p in per_platform[platform])
    return zones, list(getattr(config.exceptions, platform.value))


def compile_zones(config: PersonalDataZones) -> dict[Platform, ZoneMatcher]:
    matchers: dict[Platform, ZoneMatcher] = {}
    for platform in Platform:
        zones, exceptions = platform_zones(config, platform)
        matchers[platform] = ZoneMatcher(platform, zones, exceptions)
    return matchers


def match_zone(policy: Policy, platform: Platform | str, path: str) -> Zone | None:
    """The personal-data zone ``path`` falls in under ``policy``, or None.

    Raises ``ValueError`` for a relative path: it cannot be judged (``file.access`` denies it).
    """
    from auxilio.policy.compiled import compile_policy  # compiled imports this module

    normal = normalise_path(Platform(platform), path)
    if normal is None:
        raise ValueError(f"{path!r} is not an absolute {platform} path")
    return compile_policy(policy).zones[Platform(platform)].match(normal)
