"""The single-file agent, served from the join page with this server's trailer appended.

====================================================  ================  ==========================
page                                                  permission        what
====================================================  ================  ==========================
GET  /join/{code}/agent/{platform}                    (public)          the agent for a live code
====================================================  ================  ==========================

The builds are the files ``scripts/build-agent`` writes, copied into ``agent_builds_dir``
(``<data_dir>/agent-builds`` by default) under their names, ``auxilio-agent-<os>-<arch>``. Each
download is the build followed by a trailer (``auxilio.agent.trailer``, the format's one
definition) that carries this server's URL, its public key and fingerprint, the join code and
the code's expiry, all signed with the server key; the agent verifies it, pins the key and
joins, so the person types nothing.

Unlike the join page itself, this route looks the code up (a binary is made only for a live
code): it is rate-limited as agents' join codes are (``Limited.JOIN``), a refused code is
audited at a bounded rate as ``support_session:join_code:rejected``, and a download is audited
as ``support_session:agent:downloaded``. Refusals are pages with a stable code and no binary:
``join_code.invalid`` (404), ``join_code.expired`` / ``join_code.used`` (410),
``agent.platform_unknown`` / ``agent.build_missing`` (404), ``rate_limited`` (429).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from auxilio.agent.trailer import encode_trailer
from auxilio.server.api.deps import DbSession, SettingsDep
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.identity.ratelimit import Limited, rate_limits
from auxilio.server.settings import Settings
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions.consent import AgentRefused, find_live_join_code
from auxilio.server.web.pages import N_, register_pages, render, translator

router = APIRouter(include_in_schema=False)

BUILD_PREFIX = "auxilio-agent-"
_CHUNK = 256 * 1024

# The platforms a build can be made for, with the words the join page uses for them.
PLATFORMS: dict[str, str] = {
    "linux-x86_64": N_("Linux (x86_64)"),
    "linux-aarch64": N_("Linux (ARM, 64-bit)"),
    "windows-x86_64": N_("Windows (64-bit)"),
    "macos-x86_64": N_("macOS (Intel)"),
    "macos-aarch64": N_("macOS (Apple silicon)"),
}
# Systems a browser can name that have no build at all (the page says so).
OTHER_SYSTEMS: dict[str, str] = {
    "android": N_("Android"),
    "ios": N_("iPhone or iPad"),
    "chromeos": N_("ChromeOS"),
}


@dataclass(frozen=True, slots=True)
class Build:
    platform: str
    path: Path
    size: int

    @property
    def megabytes(self) -> int:
        return max(1, round(self.size / 1_000_000))


def build_for(settings: Settings, platform: str) -> Build | None:
    if platform not in PLATFORMS:
        return None
    path = settings.agent_builds_path / f"{BUILD_PREFIX}{platform}"
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return Build(platform, path, size) if path.is_file() and size > 0 else None


def available_builds(settings: Settings) -> list[Build]:
    return [b for p in PLATFORMS if (b := build_for(settings, p)) is not None]


_ARM = re.compile(r"aarch64|arm64|armv8", re.IGNORECASE)


def detect_platform(user_agent: str) -> str | None:
    """The platform key (``linux-x86_64``, ``android``...) a browser's User-Agent names; None
    when it names none we know. Server-side, so the page needs no script. A Mac's browser
    reports Intel even on Apple silicon, so a Mac is Apple silicon unless it says otherwise
    where both builds exist (``platform_for``)."""
    ua = user_agent or ""
    if "Android" in ua:
        return "android"
    if re.search(r"iPhone|iPad|iPod", ua):
        return "ios"
    if "CrOS" in ua:
        return "chromeos"
    if "Windows" in ua:
        return "windows-x86_64"
    if "Macintosh" in ua or "Mac OS X" in ua:
        return "macos-aarch64" if _ARM.search(ua) else "macos-x86_64"
    if "Linux" in ua or "X11" in ua:
        return "linux-aarch64" if _ARM.search(ua) else "linux-x86_64"
    return None


def platform_label(platform: str) -> str:
    return PLATFORMS.get(platform) or OTHER_SYSTEMS.get(platform, platform)


def offered_build(settings: Settings, platform: str | None) -> Build | None:
    """The build to offer for ``platform``; a Mac gets the other Mac build if only it exists."""
    if platform is None:
        return None
    found = build_for(settings, platform)
    if found is None and platform.startswith("macos-"):
        other = "macos-x86_64" if platform == "macos-aarch64" else "macos-aarch64"
        found = build_for(settings, other)
    return found


# The SHA-256 of each build, computed once per file version (path, size, mtime).
_digests: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
        _digests.clear()  # one entry per build is enough; old versions go
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _refusal(request: Request, status: int, code: str) -> HTMLResponse:
    _ = translator(request)
    titles = {
        "join_code.invalid": (_("No such join code"), _(
            "This join code does not exist. Check it with the technician, or ask for a new one.")),
        "join_code.expired": (_("This join code has expired"), _(
            "Join codes work only for a few minutes. Ask the technician for a new code, then "
            "download the agent again.")),
        "join_code.used": (_("This join code was already used"), _(
            "A join code works once. Ask the technician for a new code.")),
        "agent.platform_unknown": (_("No such platform"), _(
            "There is no agent for this platform. Go back to the join page to pick yours.")),
        "agent.build_missing": (_("No agent for this system yet"), _(
            "This server has no agent for this system yet. Ask the technician: they can help "
            "you install Auxilio with Python and run the command on the join page.")),
        "rate_limited": (_("Too many attempts"), _(
            "Too many attempts from this address. Wait a minute and try again.")),
    }  # fmt: skip
    title, message = titles[code]
    headers = {"x-robots-tag": "noindex", "cache-control": "no-store"}
    return render(request, "web/error.html", status_code=status, title=title, message=message,
                  code=code, headers=headers)  # fmt: skip


def _server_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


async def _stream(path: Path, trailer: bytes) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(_CHUNK):
            yield chunk
    yield trailer


@router.get("/join/{code}/agent/{platform}", response_model=None)
async def download_agent(
    request: Request, code: str, platform: str, settings: SettingsDep, db: DbSession
) -> Response:
    # Deferred: portal imports this module for the join page.
    from auxilio.server.web.portal import normalise_code

    if platform not in PLATFORMS:
        return _refusal(request, 404, "agent.platform_unknown")
    client = request.client.host if request.client else None
    wait = await rate_limits(request.app.state).check(Limited.JOIN, client)
    if wait:
        refused = _refusal(request, 429, "rate_limited")
        refused.headers["retry-after"] = str(math.ceil(wait))
        return refused
    # A code not shaped like one is looked up as typed: no row has its hash, so it is refused
    # (and audited) as join_code.invalid like any unknown code.
    normal = normalise_code(code[:64]) or code[:64]
    statuses = {"join_code.invalid": 404, "join_code.used": 410, "join_code.expired": 410}
    try:
        row, support_session = await find_live_join_code(db, normal, lock=False,
                                                         via="agent download")  # fmt: skip
    except AgentRefused as refused:
        return _refusal(request, statuses.get(refused.code, 404), refused.code)
    now = clock.now()
    build = build_for(settings, platform)
    if build is None:
        return _refusal(request, 404, "agent.build_missing")
    digest = await anyio.to_thread.run_sync(_sha256, build.path)
    trailer = encode_trailer(
        signing_key=request.app.state.signing_key,
        server_url=_server_url(request, settings),
        join_code=normal,
        issued_at=now,
        expires_at=row.expires_at,
        binary_sha256=digest,
    )
    org = support_session.organisation_id
    await record(
        db, action=AuditAction.AGENT_DOWNLOADED,
        actor=Actor(id=None, display_name="join page", organisation_id=org),
        target_type="support_session", target_id=support_session.id,
        details={"platform": platform, "build_sha256": digest, "size": build.size + len(trailer),
                 "expires_at": row.expires_at.isoformat()},
    )  # fmt: skip
    name = f"{BUILD_PREFIX}{platform}" + (".exe" if platform.startswith("windows-") else "")
    return StreamingResponse(
        _stream(build.path, trailer),
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "content-length": str(build.size + len(trailer)),
            "cache-control": "no-store",
            "x-robots-tag": "noindex",
            "x-content-type-options": "nosniff",
        },
    )


register_pages(router)
