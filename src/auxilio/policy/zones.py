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
            f"{_L}/snap/thunderbird/**",  # the snap (Ubuntu): common/.thunderbird
            f"{_L}/.var/app/org.mozilla.Thunderbird/**",  # the flatpak (Flathub)
            f"{_L}/Maildir/**",
            f"{_L}/.local/share/evolution/**",
            f"{_L}/.var/app/org.gnome.Evolution/**",
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
            f"{_L}/.config/BraveSoftware/**",
            f"{_L}/.config/microsoft-edge/**",
            # Snaps keep the whole application's data under ~/snap/<name> (Firefox's profiles in
            # common/.mozilla, Chromium's in common/chromium); flatpaks under ~/.var/app/<id>.
            f"{_L}/snap/firefox/**",
            f"{_L}/snap/chromium/**",
            f"{_L}/snap/brave/**",
            f"{_L}/.var/app/org.mozilla.firefox/**",
            f"{_L}/.var/app/com.google.Chrome/**",
            f"{_L}/.var/app/org.chromium.Chromium/**",
            f"{_L}/.var/app/com.brave.Browser/**",
            f"{_L}/.var/app/com.microsoft.Edge/**",
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
        Platform.LINUX: (
            f"{_L}/.ssh/**",
            f"{_L}/.gnupg/**",
            f"{_L}/.local/share/keyrings/**",  # GNOME Keyring: the login key ring's passwords
            f"{_L}/.local/share/kwalletd/**",  # KDE Wallet
        ),
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
# "\\?\" and "\\.\" (Win32 device paths) and "\??\" (the NT object manager's own) in front of
# a drive or "UNC\": the same file as without them.
_WINDOWS_DEVICE = re.compile(r"^(?://[?.]/|/\?\?/)(?:(?P<unc>UNC/)|(?=[A-Za-z]:/))", re.IGNORECASE)
# "\\<any host>\C$\...", an administrative share: judged as the drive itself ("localhost",
# "127.0.0.1" or the device's own name are this device; another host's C: drive is a person's
# drive too, and the stricter answer only asks more).
_WINDOWS_ADMIN_SHARE = re.compile(r"^//[^/]+/(?P<drive>[A-Za-z])\$(?=/|\Z)")
_WINDOWS_ODD_SEGMENT = re.compile(r"[:. ]")


def _windows_segment(segment: str) -> str:
    """One name as Windows opens it: an alternate data stream (``taxes.txt:x``,
    ``Documents::$INDEX_ALLOCATION``) is the same file or folder, and trailing dots and spaces
    are dropped (``Documents.`` and ``Documents `` open Documents). A name that would become
    empty, ``.`` or ``..`` is kept as written: judged deeper, never higher up."""
    if segment in (".", ".."):
        return segment
    name = segment.split(":", 1)[0]
    trimmed = name.rstrip(". ")
    return trimmed if trimmed not in ("", ".", "..") else segment


def _normalise_windows(path: str) -> str | None:
    path = path.replace("\\", "/")
    device = _WINDOWS_DEVICE.match(path)
    if device is not None:
        path = ("//" if device["unc"] else "") + path[device.end() :]
    elif path.startswith(("//?/", "//./", "/??/")):
        return None  # a volume GUID, a raw device, GLOBALROOT: no path to judge
    share = _WINDOWS_ADMIN_SHARE.match(path)
    if share is not None:
        path = f"{share['drive']}:" + path[share.end() :]
        path = path if len(path) > 2 else path + "/"
    if not _WINDOWS_ABSOLUTE.match(path):
        return None
    unc = path.startswith("//")
    # normpath would eat the drive's root on "C:/..": resolve below the drive instead.
    head, rest = ("//", path[2:]) if unc else (path[:3], path[3:])
    if _WINDOWS_ODD_SEGMENT.search(rest):
        rest = "/".join(_windows_segment(segment) for segment in rest.split("/"))
    if "/." in path or "//" in rest or rest.endswith("/"):
        rest = posixpath.normpath("/" + rest).lstrip("/")
    return head + rest


def normalise_path(platform: Platform, path: str) -> str | None:
    """The comparable form of ``path``; None when it is not absolute (it cannot be judged).

    On Windows the string forms that open the same file are folded into one: ``\\\\?\\`` and
    ``\\\\.\\`` device prefixes, ``\\\\?\\UNC\\host\\C$`` and ``\\\\host\\C$`` administrative
    shares (as the drive ``C:``), alternate data streams and trailing dots or spaces of a name.
    A device path that names no drive (a volume GUID, a raw device) cannot be judged: None."""
    if platform is Platform.WINDOWS:
        return _normalise_windows(path)
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
        # DOTALL and \Z: a name may hold a newline, which "." and "$" would stop at (or before).
        flags |= re.DOTALL
        self._regex = re.compile(f"(?:{alternatives})\\Z", flags) if zones else None
        joined = "|".join(glob_to_regex(p) for p in exceptions)
        self._exceptions = re.compile(f"(?:{joined})\\Z", flags) if exceptions else None

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
