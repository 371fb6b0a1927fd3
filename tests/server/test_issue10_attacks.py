"""Issue 10 reviewed as an attacker, on the server: a database editor who points a recording's
row at another file, garbage where a recording file should be, the recordings API called with
the browser's cookie but without its CSRF token or with ids that are not ids, and the new pages
(the player page of another organisation's recording, the portal chat's reflected code).

Each finding's test failed before its fix; the other tests are defences that held, kept
because each can fail.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

import tests.server.support_sessions.conftest as sessions
from auxilio.policy.roles import Role as StaffRole
from auxilio.protocol.frames import AGENT_CAPABILITIES
from auxilio.server.context import Actor
from auxilio.server.devices.models import Device
from auxilio.server.identity.models import Organisation
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.models import Recording
from auxilio.server.web.session import CSRF_HEADER, SESSION_COOKIE
from tests.factories import make_org, make_user
from tests.server.support_sessions.conftest import World, mfa_token
from tests.server.support_sessions.flow import request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician
from tests.server.support_sessions.test_recordings import CHAT_MARKER, _recorded_session

ERROR_CODE = r"^[a-z0-9_]+([._][a-z0-9_]+)*$"
EXPORTED = "recording:recording:exported"

# The support-session fixtures (a real server over sockets), used here as their own tests do.
settings = sessions.settings
server_settings = sessions.server_settings
start_server = sessions.start_server
_close_peers = sessions._close_peers
http = sessions.http
world = sessions.world


async def _auditor_token(world: World, org: Organisation | None = None) -> str:
    return await mfa_token(
        world.app, await make_user(world.app, org or world.org, StaffRole.AUDITOR)
    )


def _url(sid: str | uuid.UUID) -> str:
    return f"/api/v1/recordings/{sid}/sealed"


def _rec_path(world: World, sid: str) -> Path:
    return recordings.recordings_dir(world.app.state.settings) / f"{sid}.rec"


async def _set_file_name(world: World, sid: str, name: str) -> None:
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(
            update(Recording)
            .where(Recording.support_session_id == uuid.UUID(sid))
            .values(file_name=name)
        )


def _clean_error(response: httpx.Response) -> str:
    """The error's stable code; the body holds no Python trace or server path."""
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert "/site-packages/" not in response.text and ".py" not in response.text
    code = str(response.json()["error"]["code"])
    assert re.match(ERROR_CODE, code), code
    return code


# -- finding: the row's file_name was trusted as a path ---------------------------------------


async def test_a_file_name_edited_in_the_database_does_not_make_the_api_read_outside(
    http: httpx.AsyncClient,
    world: World,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    """FINDING (fixed): ``recordings_dir / recording.file_name`` followed an absolute or ``..``
    name from the row, so whoever edits the database (not the server's files) had the server
    read any file the server's user can read. The path now comes from the session id."""
    running, _ = await _recorded_session(http, world, signing_key)
    outside = tmp_path / "elsewhere" / "copy.rec"
    outside.parent.mkdir()
    original = _rec_path(world, running.sid)
    shutil.move(original, outside)
    await _set_file_name(world, running.sid, str(outside))
    headers = {"Authorization": f"Bearer {await _auditor_token(world)}"}
    absolute = await http.get(_url(running.sid), headers=headers)
    assert absolute.status_code == 404, absolute.text[:200]
    assert _clean_error(absolute) == "recording_missing"
    relative = f"../{outside.parent.name}/{outside.name}"
    shutil.copytree(outside.parent, original.parent.parent / outside.parent.name)
    await _set_file_name(world, running.sid, relative)
    dotted = await http.get(_url(running.sid), headers=headers)
    assert dotted.status_code == 404, dotted.text[:200]
    assert _clean_error(dotted) == "recording_missing"
    # The session's own file, where the relay wrote it, is what is read.
    shutil.move(outside, original)
    own = await http.get(_url(running.sid), headers=headers)
    assert own.status_code == 200, own.text[:200]


async def test_a_file_name_edited_in_the_database_does_not_make_retention_delete_it(
    http: httpx.AsyncClient,
    world: World,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    """FINDING (fixed): the retention purge unlinked ``recordings_dir / file_name``, so an
    edited row deleted any file the server's user may delete. It now deletes the session's
    own recording file only."""
    running, _ = await _recorded_session(http, world, signing_key)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    await _set_file_name(world, running.sid, str(victim))
    async with world.app.state.sessionmaker() as db, db.begin():
        deleted = await recordings.expire_recordings(
            db, now=datetime.now(UTC) + timedelta(days=31), actor=Actor.system(world.org.id)
        )
    assert [str(r.support_session_id) for r in deleted] == [running.sid]
    removed = recordings.remove_files(recordings.recordings_dir(world.app.state.settings), deleted)
    assert victim.read_text() == "keep me"
    assert removed == 1 and not _rec_path(world, running.sid).exists()


# -- defences that held -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["empty", "magic_only", "header_length_huge", "header_not_json", "header_wrong_shape"],
)
async def test_garbage_in_the_recording_file_is_a_stable_code_without_a_trace(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, damage: str
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    path = _rec_path(world, running.sid)
    data = path.read_bytes()
    magic = data[:8]
    broken = {
        "empty": b"",
        "magic_only": magic,
        "header_length_huge": magic + (2**31).to_bytes(4, "big") + b"{}",
        "header_not_json": magic + (5).to_bytes(4, "big") + b"\xff{[:x",
        "header_wrong_shape": magic + (2).to_bytes(4, "big") + b"[]",
    }[damage]
    path.write_bytes(broken)
    response = await http.get(
        _url(running.sid), headers={"Authorization": f"Bearer {await _auditor_token(world)}"}
    )
    assert response.status_code == 422, response.text[:300]
    assert _clean_error(response) == "recording_corrupt"


async def test_the_api_with_the_browser_cookie_wants_the_csrf_header_and_audits_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    """A page elsewhere that gets the auditor's browser to request the recording (a link, an
    image) sends the cookie but cannot know the CSRF token: refused, nothing exported."""
    running, _ = await _recorded_session(http, world, signing_key)
    token = await _auditor_token(world)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    bare = await http.get(_url(running.sid), headers=cookie)
    assert bare.status_code == 403
    assert _clean_error(bare) == "csrf_failed"
    wrong = await http.get(_url(running.sid), headers={**cookie, CSRF_HEADER: "x" * 43})
    assert wrong.status_code == 403 and _clean_error(wrong) == "csrf_failed"
    assert EXPORTED not in await world.actions(running.sid)
    # With the page's own token the same cookie gets it, audited.
    page = await http.get(f"/supervisor/recordings/{running.sid}", headers=cookie)
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found is not None
    ok = await http.get(_url(running.sid), headers={**cookie, CSRF_HEADER: found.group(1)})
    assert ok.status_code == 200, ok.text[:300]
    assert CHAT_MARKER not in ok.text
    assert EXPORTED in await world.actions(running.sid)


@pytest.mark.parametrize(
    "sid", ["not-a-uuid", "1" * 33, "%00", "..%2f..%2fetc%2fpasswd", "00000000-0000-0000-0000"]
)
async def test_an_id_that_is_not_a_uuid_is_a_stable_code_and_nothing_is_audited(
    http: httpx.AsyncClient, world: World, sid: str
) -> None:
    response = await http.get(
        _url(sid), headers={"Authorization": f"Bearer {await _auditor_token(world)}"}
    )
    assert response.status_code in (404, 422), response.text[:300]
    _clean_error(response)
    assert await world.events(EXPORTED) == []


async def test_the_player_page_of_another_organisations_recording_is_not_found(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    foreign = await _auditor_token(world, await make_org(world.app))
    cookie = {"Cookie": f"{SESSION_COOKIE}={foreign}"}
    page = await http.get(f"/supervisor/recordings/{running.sid}", headers=cookie)
    assert page.status_code == 404
    # Nothing of it: no link to its ciphertext, no key fingerprint, no technician.
    assert "/sealed" not in page.text and "data-api" not in page.text
    assert world.technician.user.display_name not in page.text
    # The technician of the session itself has no player either.
    own = {"Cookie": f"{SESSION_COOKIE}={world.technician.token}"}
    refused = await http.get(f"/supervisor/recordings/{running.sid}", headers=own)
    assert refused.status_code == 403
    assert "/sealed" not in refused.text
    assert EXPORTED not in await world.actions(running.sid)


async def test_the_portal_chat_reflects_a_typed_code_escaped_and_runs_no_inline_script(
    http: httpx.AsyncClient, world: World
) -> None:
    token = await mfa_token(world.app, world.requester, mfa=False)
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    attack = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    page = await http.get("/portal/chat", params={"code": attack}, headers=cookie)
    assert page.status_code == 400
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text or "&#34;&gt;&lt;script" in page.text
    # The code the script reads is the normalised one only, never the typed text.
    assert '"join_code": null' in page.text
    policy = page.headers["content-security-policy"]
    script = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    # Every script element is a module from /static or inert JSON data.
    for tag in re.findall(r"<script\b[^>]*>", page.text):
        assert 'type="application/json"' in tag or 'src="/static/' in tag, tag
    good = await http.get("/portal/chat", params={"code": "acd efh jkm"}, headers=cookie)
    assert good.status_code == 200
    assert '"join_code": "ACD-EFH-JKM"' in good.text


async def test_a_device_claiming_more_than_chat_gets_only_what_the_session_asked(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    """The browser's ``/ws/agent`` is the agent's: whatever a device announces (every
    capability, any platform or version text), the grant holds what the technician asked and
    the policy allowed, here chat only; the announcement can only refuse. A browser's platform
    text is registered as ``other``, for which no personal-data zones exist."""
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    created = (await request(http, world, technician, ("chat",))).json()
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    boaster = FakeAgent(http.live.url, capabilities=tuple(sorted(AGENT_CAPABILITIES)))  # type: ignore[attr-defined]
    boaster.platform = "browser (Linux x86_64; Chrome)"
    await boaster.connect()
    await boaster.authenticate()
    offer = await boaster.join(created["join_code"])
    grant = boaster.verify(signing_key)
    assert offer.support_session_id == created["id"]
    assert [str(c.capability) for c in grant.capabilities] == ["chat"]
    row = await world.row(created["id"])
    assert row.requested_capabilities == ["chat"]
    async with world.app.state.sessionmaker() as db:
        device = await db.get(Device, row.device_id)
    assert device is not None and device.platform == "other"
    # The code alone joined (no login: the WebSocket carries no cookie), as ``auxilio agent
    # join`` does; the device is the requester's, whoever held the code.
    assert device.owner_id == world.requester.user.id


@pytest.mark.parametrize(
    "sid", ["not-a-uuid", "1" * 33, "%27%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"]
)
async def test_the_player_page_with_an_id_that_is_not_an_id_says_so_without_a_trace(
    http: httpx.AsyncClient, world: World, sid: str
) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={await _auditor_token(world)}"}
    page = await http.get(f"/supervisor/recordings/{sid}", headers=cookie)
    assert page.status_code in (404, 422), page.text[:300]
    assert "<script>alert" not in page.text
    # A JSON error as for any mistyped path (the handlers are the API's), with its code.
    _clean_error(page)


async def test_the_player_page_of_a_session_without_a_recording_is_not_found(
    http: httpx.AsyncClient, world: World
) -> None:
    cookie = {"Cookie": f"{SESSION_COOKIE}={await _auditor_token(world)}"}
    page = await http.get(f"/supervisor/recordings/{uuid.uuid4()}", headers=cookie)
    assert page.status_code == 404
    assert "/sealed" not in page.text
