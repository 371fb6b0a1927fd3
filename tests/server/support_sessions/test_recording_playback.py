"""GET /api/v1/recordings/{id}/sealed: what the supervisor page's player opens in the browser.

A real recorded session over real sockets (``_recorded_session`` of test_recordings.py); the
route hands out ciphertext and sealed keys only, audited, to auditors of the organisation.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.e2e import E2ESession, Role, SessionKeys
from auxilio.crypto.keys import b64url_decode, encode_public_key
from auxilio.crypto.sealed import open_recording_keys
from auxilio.policy.roles import Role as StaffRole
from auxilio.protocol.app import ChatMessage, TerminalOutput, decode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.server.context import Actor
from auxilio.server.identity.models import Organisation
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.errors import RecordingCorrupt, RecordingTooLarge
from auxilio.server.recordings.playback import read_playback
from auxilio.server.relay.recording import RecordingWriter, RecordKind
from tests.factories import make_org, make_user
from tests.server.support_sessions.conftest import World, mfa_token
from tests.server.support_sessions.test_recordings import (
    CHAT_MARKER,
    OUTPUT_MARKER,
    _recorded_session,
)


async def _auditor(world: World, org: Organisation | None = None) -> dict[str, str]:
    person = await make_user(world.app, org or world.org, StaffRole.AUDITOR)
    return {"Authorization": f"Bearer {await mfa_token(world.app, person)}"}


def _url(sid: str | uuid.UUID) -> str:
    return f"/api/v1/recordings/{sid}/sealed"


async def test_an_auditor_gets_ciphertext_and_sealed_keys_that_only_the_auditor_key_opens(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, auditor = await _recorded_session(http, world, signing_key)
    response = await http.get(_url(running.sid), headers=await _auditor(world))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["support_session_id"] == running.sid
    assert body["auditor_public_key"] == encode_public_key(auditor.public_key())
    assert body["channels"] == [ChannelId.CHAT, ChannelId.TERMINAL]
    started = datetime.fromisoformat(body["started_at"])
    assert body["started_at_us"] == (started - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    # Nothing in clear: the markers typed, shown and chatted are not in the response.
    for marker in (CHAT_MARKER, OUTPUT_MARKER, "thanks, it works"):
        assert marker not in response.text
    # ... and the auditor key opens all of it, as the page does.
    kinds = [r["kind"] for r in body["records"]]
    assert kinds[0] == "E" and kinds.count("E") == 1 and len(kinds) == 7
    epoch = b64url_decode(body["records"][0]["body"])
    a2t, t2a = open_recording_keys(
        auditor,
        running.sid,
        epoch=epoch,
        box=b64url_decode(body["sealed_keys"][body["records"][0]["body"]]),
    )
    keys = SessionKeys(
        support_session_id=running.sid,
        transcript=epoch,
        agent_to_technician=a2t,
        technician_to_agent=t2a,
    )
    from_agent, from_technician = (
        E2ESession(role=Role.TECHNICIAN, keys=keys),
        E2ESession(role=Role.AGENT, keys=keys),
    )
    shown = b""
    chats = []
    for record in body["records"][1:]:
        opener = from_agent if record["kind"] == "A" else from_technician
        channel, plaintext = opener.open(b64url_decode(record["body"]))
        assert channel == record["channel"]
        message = decode_app_message(plaintext)
        if isinstance(message, TerminalOutput):
            shown += message.data
        elif isinstance(message, ChatMessage):
            chats.append(message.text)
    assert OUTPUT_MARKER in shown.decode()
    assert chats == [f"hello {CHAT_MARKER}", "thanks, it works"]
    # Handing it out is on the record, as the command line export is.
    exported = await world.events("recording:recording:exported")
    assert exported[-1]["destination"] == "web player"


async def test_a_technician_is_refused_with_forbidden_and_gets_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    response = await http.get(
        _url(running.sid), headers={"Authorization": f"Bearer {world.technician.token}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "records" not in response.text
    assert "recording:recording:exported" not in await world.actions(running.sid)


async def test_an_unknown_session_and_another_organisations_recording_are_not_found(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    unknown = await http.get(_url(uuid.uuid4()), headers=await _auditor(world))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "recording_not_found"
    foreign = await http.get(
        _url(running.sid), headers=await _auditor(world, await make_org(world.app))
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "recording_not_found"
    assert "recording:recording:exported" not in await world.actions(running.sid)


async def test_a_deleted_recording_and_a_missing_file_get_their_own_codes(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    headers = await _auditor(world)
    settings = world.app.state.settings
    path = recordings.recordings_dir(settings) / f"{running.sid}.rec"
    kept = path.read_bytes()
    path.unlink()
    missing = await http.get(_url(running.sid), headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "recording_missing"
    # The attempt is audited before the file is looked for, as the command line does.
    assert "recording:recording:exported" in await world.actions(running.sid)
    path.write_bytes(kept)
    async with world.app.state.sessionmaker() as db, db.begin():
        await recordings.expire_recordings(
            db, now=datetime.now(UTC) + timedelta(days=31), actor=Actor.system(world.org.id)
        )
    deleted = await http.get(_url(running.sid), headers=headers)
    assert deleted.status_code == 409
    assert deleted.json()["error"]["code"] == "recording_deleted"


async def test_a_damaged_file_is_refused_with_the_offset_of_the_damage(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    path = recordings.recordings_dir(world.app.state.settings) / f"{running.sid}.rec"
    data = bytearray(path.read_bytes())
    header_end = 12 + int.from_bytes(data[8:12], "big")
    data[header_end + 2] ^= 0xFF  # inside the first record's length: its checksum fails
    path.write_bytes(bytes(data))
    response = await http.get(_url(running.sid), headers=await _auditor(world))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "recording_corrupt"
    assert f"at byte {header_end}" in error["message"]
    assert error["details"]["offset"] == header_end


async def test_the_page_gets_only_chat_and_terminal_frames_and_too_much_is_refused(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    response = await http.get(_url(running.sid), headers=await _auditor(world))
    channels = [r.get("channel") for r in response.json()["records"]]
    # The session had no other channel; the epoch record has none.
    assert channels.count(None) == 1 and set(channels) == {None, ChannelId.CHAT, ChannelId.TERMINAL}
    path = recordings.recordings_dir(world.app.state.settings) / f"{running.sid}.rec"
    data = path.read_bytes()
    frames = read_playback(io.BytesIO(data), support_session_id=running.sid).frame_bytes
    assert frames > 100
    with pytest.raises(RecordingTooLarge) as caught:
        read_playback(io.BytesIO(data), support_session_id=running.sid, max_bytes=100)
    assert caught.value.code == "recording_too_large" and caught.value.status == 413
    with pytest.raises(RecordingCorrupt) as wrong:
        read_playback(io.BytesIO(data), support_session_id=str(uuid.uuid4()))
    assert "not of" in wrong.value.message


def test_frames_of_channels_the_player_does_not_play_are_left_out(tmp_path: Path) -> None:
    sid = str(uuid.uuid4())
    writer = RecordingWriter(tmp_path / "r.rec", sid)
    writer.epoch(bytes(32))
    writer.frame(RecordKind.AGENT_TO_TECHNICIAN, bytes((1, ChannelId.FILES, 0)) + bytes(40))
    writer.frame(RecordKind.AGENT_TO_TECHNICIAN, bytes((1, ChannelId.TERMINAL, 0)) + bytes(40))
    writer.frame(RecordKind.TECHNICIAN_TO_AGENT, b"\x01")  # too short: kept, the page says so
    writer.close()
    with (tmp_path / "r.rec").open("rb") as handle:
        playback = read_playback(handle, support_session_id=sid)
    assert [(chr(r.kind), r.channel) for r in playback.records] == [
        ("E", None),
        ("A", ChannelId.TERMINAL),
        ("T", None),
    ]
    assert playback.frame_bytes == 44
