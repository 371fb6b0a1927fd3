"""Recorded sessions over real sockets: the recording decision, sealed activity, the relay's
ciphertext file, the agent's sealed keys, the export, and what the server can read."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select
from typer.testing import CliRunner

from auxilio.agent.sealing import recording_key_message, seal_details
from auxilio.cli import app as cli
from auxilio.crypto.keys import b64url_decode, encode_public_key, save_private_key
from auxilio.crypto.sealed import open_activity_details
from auxilio.protocol.app import (
    ChatMessage,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import (
    ActivityKind,
    ActivitySource,
    EndReason,
    Party,
    SessionActivity,
    SessionEnd,
)
from auxilio.protocol.types import Capability
from auxilio.server.context import Actor
from auxilio.server.db.models import Base
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.errors import RecordingDeleted
from auxilio.server.recordings.export import export_recording
from auxilio.server.recordings.models import Recording
from auxilio.server.support_sessions.models import SessionActivity as ActivityRow
from tests.server.support_sessions.conftest import Recorder, ServerFactory, World, policy_text
from tests.server.support_sessions.flow import Running, active
from tests.server.support_sessions.peers import FakeTechnician, mid

CHAT_MARKER = "chat-marker-1d9e-only-the-peers-read-this"
COMMAND = "echo typed-marker-5b2c"
OUTPUT_MARKER = "output-marker-88af-shown-on-the-terminal"


def recording_policy(mode: str, retention: str = "30d") -> str:
    return policy_text(extra=f"privacy: {{retention: {{recordings: {retention}}}}}").replace(
        "sessions:\n", f"sessions:\n  recording: {mode}\n", 1
    )


async def give_auditor_key(world: World) -> X25519PrivateKey:
    auditor = X25519PrivateKey.generate()
    async with world.app.state.sessionmaker() as db, db.begin():
        await recordings.set_auditor_key(
            db,
            organisation_id=world.org.id,
            public_key=auditor.public_key(),
            actor=Actor.system(world.org.id),
        )
    return auditor


async def request(http: httpx.AsyncClient, world: World, *, record: bool = False) -> httpx.Response:
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    return await http.post(
        "/api/v1/support-sessions",
        headers={"Authorization": f"Bearer {world.technician.token}"},
        json={
            "ticket_id": str(world.ticket_id),
            "mode": "attended",
            "capabilities": ["chat"],
            "technician_e2e_key": technician.public_key,
            "record": record,
        },
    )


async def test_a_required_recording_without_an_auditor_key_denies_the_request(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(recording_policy("required"))
    response = await request(http, world)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert error["details"]["rule"] == "sessions.recording"
    assert "no auditor key" in error["message"]
    denied = (await world.events("support_session:session:denied"))[-1]
    assert denied["rule"] == "sessions.recording" and denied["recorded"] is False
    # Nothing went ahead: no join code, no recording, the session is denied.
    async with world.app.state.sessionmaker() as db:
        assert (await db.execute(select(Recording))).first() is None
    assert await world.events("support_session:session:requested") == []


async def test_an_optional_recording_is_made_only_when_asked_and_never_without_a_key(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(recording_policy("optional"))
    asked = await request(http, world, record=True)
    assert asked.status_code == 403 and asked.json()["error"]["details"]["rule"] == (
        "sessions.recording"
    )
    plain = await request(http, world)
    assert plain.status_code == 201, plain.text
    assert plain.json()["recorded"] is False
    assert (await world.row(plain.json()["id"])).recorded is False
    await give_auditor_key(world)
    asked_with_key = await request(http, world, record=True)
    assert asked_with_key.status_code == 201 and asked_with_key.json()["recorded"] is True


async def test_a_policy_with_recording_off_never_records_even_when_asked(
    http: httpx.AsyncClient, world: World
) -> None:
    await give_auditor_key(world)
    await world.use_policy(recording_policy("off"))
    response = await request(http, world, record=True)
    assert response.status_code == 201, response.text
    assert (await world.row(response.json()["id"])).recorded is False
    requested = (await world.events("support_session:session:requested"))[-1]
    assert requested["recording_asked"] == "off" and requested["recorded"] is False


async def _recorded_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> tuple[Running, X25519PrivateKey]:
    auditor = await give_auditor_key(world)
    await world.use_policy(recording_policy("required"))
    running = await active(http, world, signing_key, ("chat", "terminal"))
    agent, technician = running.agent, running.technician
    assert agent.grant is not None and agent.e2e is not None and technician.e2e is not None
    assert agent.grant.recorded
    assert agent.grant.auditor_public_key == encode_public_key(auditor.public_key())
    key_message = recording_key_message(agent.grant, agent.e2e.keys)
    assert key_message is not None
    await agent.send(key_message)

    def from_technician(message: object) -> bytes:
        assert technician.e2e is not None
        channel = ChannelId.CHAT if isinstance(message, ChatMessage) else ChannelId.TERMINAL
        return technician.e2e.seal(channel, encode_app_message(message))  # type: ignore[arg-type]

    await technician.ws.send(
        from_technician(ChatMessage(text=f"hello {CHAT_MARKER}", sent_at=datetime.now(UTC)))
    )
    await technician.ws.send(from_technician(TerminalOpen(terminal_id=1, cols=100, rows=30)))
    await technician.ws.send(
        from_technician(TerminalInput(terminal_id=1, data=COMMAND.encode() + b"\r"))
    )
    for _ in range(3):
        await agent.next_where(lambda f: isinstance(f, bytes))
    await agent.send(
        SessionActivity(
            id=mid(),
            support_session_id=running.sid,
            at=datetime.now(UTC),
            capability=Capability.TERMINAL,
            kind=ActivityKind.COMMAND_RUN,
            source=ActivitySource.SHELL_INTEGRATION,
            sealed_details=seal_details(agent.grant, COMMAND),
        )
    )
    output = f"{COMMAND}\r\n{OUTPUT_MARKER} \u00e9t\u00e9\r\n".encode()
    # Split inside the two-byte "é": the export must not turn it into replacement characters.
    cut = output.index("\u00e9".encode()) + 1
    for piece in (output[:cut], output[cut:]):
        await agent.ws.send(
            agent.e2e.seal(
                ChannelId.TERMINAL, encode_app_message(TerminalOutput(terminal_id=1, data=piece))
            )
        )
    await agent.ws.send(
        agent.e2e.seal(
            ChannelId.CHAT,
            encode_app_message(ChatMessage(text="thanks, it works", sent_at=datetime.now(UTC))),
        )
    )
    for _ in range(3):
        await technician.next_where(lambda f: isinstance(f, bytes))
    await technician.send(
        SessionEnd(
            id=mid(),
            support_session_id=running.sid,
            ended_by=Party.TECHNICIAN,
            reason=EndReason.TECHNICIAN_ENDED,
        )
    )
    await agent.expect("session.end")
    await world.wait_for_state(running.sid, "ended")
    return running, auditor


async def _export(world: World, sid: str, auditor: X25519PrivateKey, out: Path) -> object:
    async with world.app.state.sessionmaker() as db:
        recording = await recordings.get_recording_or_raise(db, support_session_id=uuid.UUID(sid))
        sealed = await recordings.list_recording_keys(db, recording=recording)
    path = recordings.recordings_dir(world.app.state.settings) / recording.file_name
    with path.open("rb") as handle:
        return export_recording(
            handle, auditor=auditor, sealed_keys=sealed, support_session_id=sid, out_dir=out
        )


async def test_a_recorded_session_exports_its_chat_and_a_cast_that_asciinema_plays(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    running, auditor = await _recorded_session(http, world, signing_key)
    actions = await world.actions(running.sid)
    assert "recording:recording:started" in actions and "recording:key:stored" in actions

    out = tmp_path / "export"
    result = await _export(world, running.sid, auditor, out)
    assert result.epochs == 1 and result.frames == 6  # type: ignore[attr-defined]
    chat = (out / "chat.txt").read_text()
    assert f"technician: hello {CHAT_MARKER}" in chat and "person: thanks, it works" in chat
    cast = out / "terminal-1.cast"
    header = orjson.loads(cast.read_text().splitlines()[0])
    assert (header["version"], header["width"], header["height"]) == (2, 100, 30)
    asciinema = str(Path(sys.executable).parent / "asciinema")
    played = (
        await asyncio.to_thread(
            subprocess.run,
            [asciinema, "cat", str(cast)],
            capture_output=True,
            check=True,
            timeout=60,
        )
    ).stdout.decode()
    assert COMMAND in played and f"{OUTPUT_MARKER} \u00e9t\u00e9" in played


async def test_activity_details_reach_the_server_only_sealed_and_the_audit_holds_their_hash(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running, auditor = await _recorded_session(http, world, signing_key)
    async with world.app.state.sessionmaker() as db:
        rows = list((await db.execute(select(ActivityRow))).scalars())
    assert len(rows) == 1 and rows[0].sealed_details is not None
    assert (rows[0].kind, rows[0].source, rows[0].count) == ("command_run", "shell_integration", 1)
    opened = open_activity_details(auditor, running.sid, b64url_decode(rows[0].sealed_details))
    assert opened == COMMAND
    reported = (await world.events("support_session:activity:reported"))[-1]
    assert reported["details_sha256"] == rows[0].details_sha256
    assert COMMAND not in orjson.dumps(reported).decode()
    report = await http.get(
        f"/api/v1/support-sessions/{running.sid}/report", headers=world.requester.headers
    )
    body = report.json()
    assert body["commands_run"] == 1 and body["recorded"] is True
    assert body["activities"][0]["details"] == "sealed" and "sealed" in body["details"]


async def test_nothing_the_server_stores_holds_typed_or_shown_text_or_chat(
    start_server: ServerFactory,
    world: World,
    signing_key: Ed25519PrivateKey,
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    live = start_server(recorder)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        http.live = live  # type: ignore[attr-defined]
        running, auditor = await _recorded_session(http, world, signing_key)
    live.stop()
    markers = [CHAT_MARKER.encode(), COMMAND.encode(), OUTPUT_MARKER.encode()]
    assert not [f for f in recorder.frames for m in markers if m in f]
    async with world.app.state.sessionmaker() as db:
        for table in Base.metadata.sorted_tables:
            dumped = orjson.dumps(
                [tuple(map(str, r)) for r in (await db.execute(select(table))).all()]
            )
            assert not [m for m in markers if m in dumped], table.name
    data_dir = world.app.state.settings.data_dir
    # Every file under the data directory: database, WAL, recordings, keys, witness.
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".rec" for p in files)
    for path in files:
        content = path.read_bytes()
        assert not [m for m in markers if m in content], path
    # ... while the auditor, with the key, reads all of it back.
    out = tmp_path / "export"
    await _export(world, running.sid, auditor, out)
    exported = b"".join(p.read_bytes() for p in out.iterdir())
    assert all(m in exported for m in markers[:1] + markers[2:])


async def test_the_retention_purge_deletes_expired_recordings_and_audits_it(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    running, _ = await _recorded_session(http, world, signing_key)
    settings = world.app.state.settings
    directory = recordings.recordings_dir(settings)
    async with world.app.state.sessionmaker() as db, db.begin():
        assert (
            await recordings.expire_recordings(
                db, now=datetime.now(UTC), actor=Actor.system(world.org.id)
            )
            == []
        )
    later = datetime.now(UTC) + timedelta(days=31)
    async with world.app.state.sessionmaker() as db, db.begin():
        deleted = await recordings.expire_recordings(
            db, now=later, actor=Actor.system(world.org.id)
        )
    assert [str(r.support_session_id) for r in deleted] == [running.sid]
    assert recordings.remove_files(directory, deleted) == 1
    assert not (directory / deleted[0].file_name).exists()
    assert "recording:recording:deleted" in await world.actions(running.sid)
    async with world.app.state.sessionmaker() as db:
        with pytest.raises(RecordingDeleted) as caught:
            await recordings.get_recording_or_raise(db, support_session_id=uuid.UUID(running.sid))
    assert caught.value.code == "recording_deleted"


async def test_the_export_command_is_audited_first_and_refuses_a_wrong_key_clearly(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    running, auditor = await _recorded_session(http, world, signing_key)
    settings = world.app.state.settings
    good, wrong = tmp_path / "auditor.pem", tmp_path / "wrong.pem"
    save_private_key(auditor, good)
    save_private_key(X25519PrivateKey.generate(), wrong)
    # The command appends to the audit as the server does, so with the server's own key.
    save_private_key(signing_key, settings.signing_key_path)
    base = [
        "recording",
        "export",
        running.sid,
        "--data-dir",
        str(settings.data_dir),
        "--database-url",
        settings.effective_database_url,
    ]
    refused = await asyncio.to_thread(
        CliRunner().invoke, cli, [*base, "--key", str(wrong), "--out", str(tmp_path / "x")]
    )
    assert refused.exit_code == 1
    assert "recording_key_wrong" in refused.output and "sealed to the auditor key" in (
        refused.output
    )
    assert not (tmp_path / "x").exists()
    done = await asyncio.to_thread(
        CliRunner().invoke, cli, [*base, "--key", str(good), "--out", str(tmp_path / "y")]
    )
    assert done.exit_code == 0, done.output
    assert COMMAND in (tmp_path / "y" / "terminal-1.cast").read_text()
    exports = [a for a in await world.actions(running.sid) if a == "recording:recording:exported"]
    assert len(exports) == 2  # the refused attempt is on the record too


async def test_bad_activity_and_recording_keys_get_clear_errors_and_the_session_goes_on(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)  # not recorded: the test policy's default
    agent, technician = running.agent, running.technician
    assert agent.grant is not None and agent.e2e is not None and technician.e2e is not None
    # An old agent's clear command line is refused, not stored.
    await agent.ws.send(orjson.dumps({
        "type": "session.activity", "id": mid(), "support_session_id": running.sid,
        "at": datetime.now(UTC).isoformat(), "capability": "terminal", "kind": "command_run",
        "subject": COMMAND,
    }).decode())  # fmt: skip
    refused = await agent.expect_error("protocol.invalid_field")
    assert "subject" in refused.message
    # Keys for a session that is not recorded are refused, and none are kept.
    keys = recording_key_message(agent.grant.model_copy(update={"recorded": True}),
                                 agent.e2e.keys)  # fmt: skip
    assert keys is None  # this grant names no auditor key at all
    forged = recording_key_message(
        agent.grant.model_copy(update={
            "recorded": True,
            "auditor_public_key": encode_public_key(X25519PrivateKey.generate().public_key()),
        }),
        agent.e2e.keys,
    )  # fmt: skip
    assert forged is not None
    await agent.send(forged)
    await agent.expect_error("session.recording_key_refused")
    # Nothing was lost: the session still relays, and nothing of the above was stored.
    await technician.ws.send(technician.e2e.seal(ChannelId.CHAT, encode_app_message(
        ChatMessage(text="still here", sent_at=datetime.now(UTC)))))  # fmt: skip
    frame = await agent.next_where(lambda f: isinstance(f, bytes))
    assert isinstance(frame, bytes) and b"still here" in agent.e2e.open(frame)[1]
    assert (await world.row(running.sid)).state == "active"
    async with world.app.state.sessionmaker() as db:
        assert (await db.execute(select(ActivityRow))).first() is None
        assert (await db.execute(select(Recording))).first() is None
    assert "recording:key:stored" not in await world.actions(running.sid)
