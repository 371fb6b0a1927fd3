"""The whole flow over real sockets: request, join, offer, consent, relay, end, summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from auxilio.protocol.app import ChatMessage, decode_app_message, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import EndReason, Party, SessionActivity, SessionEnd
from auxilio.server.db.models import Base
from tests.server.support_sessions.conftest import Recorder, ServerFactory, World
from tests.server.support_sessions.flow import active
from tests.server.support_sessions.peers import mid

MARKER = "plaintext-marker-7f3a9c-only-the-peers-may-read-this"


def chat(text: str) -> bytes:
    return encode_app_message(ChatMessage(text=text, sent_at=datetime.now(UTC)))


async def test_a_chat_message_is_relayed_end_to_end_and_every_step_is_audited(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    agent, technician = running.agent, running.technician
    assert agent.e2e is not None and technician.e2e is not None

    await technician.ws.send(technician.e2e.seal(ChannelId.CHAT, chat("hello from support")))
    frame = await agent.next_where(lambda f: isinstance(f, bytes))
    assert isinstance(frame, bytes)
    _, plaintext = agent.e2e.open(frame)
    assert decode_app_message(plaintext).text == "hello from support"  # type: ignore[union-attr]

    await agent.ws.send(agent.e2e.seal(ChannelId.CHAT, chat("thanks")))
    frame = await technician.next_where(lambda f: isinstance(f, bytes))
    assert isinstance(frame, bytes)
    assert decode_app_message(technician.e2e.open(frame)[1]).text == "thanks"  # type: ignore[union-attr]

    await agent.send(SessionActivity(id=mid(), support_session_id=running.sid,
                                     at=datetime.now(UTC), capability="chat",
                                     kind="command_run"))
    await agent.send(SessionEnd(id=mid(), support_session_id=running.sid,
                                ended_by=Party.END_USER, reason=EndReason.USER_ENDED))
    for peer in (agent, technician):
        end = await peer.expect("session.end")
        assert end.reason == "user_ended" and end.ended_by == "end_user"
        await peer.closed.wait()

    row = await world.wait_for_state(running.sid, "ended")
    assert row.granted_capabilities == ["chat"] and row.ended_by == "end_user"
    assert await world.actions(running.sid) == [
        "policy:decision:made", "policy:decision:made", "support_session:session:requested",
        "support_session:session:offered", "support_session:consent:recorded",
        "support_session:session:activated", "support_session:activity:reported",
        "support_session:session:ended",
    ]
    requested = (await world.events("support_session:session:requested"))[0]
    assert requested["rule"] and requested["policy_version"].startswith("v1:")

    auth = {"Authorization": f"Bearer {world.technician.token}"}
    summary = await http.post(f"/api/v1/support-sessions/{running.sid}/summary", headers=auth,
                              json={"summary": "Reset the network adapter."})
    assert summary.status_code == 200, summary.text
    report = await http.get(f"/api/v1/support-sessions/{running.sid}/report",
                            headers=world.requester.headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["commands_run"] == 1
    assert body["activities"][0]["details"] == "not sent"  # the grant names no auditor key
    assert body["summary"] == "Reset the network adapter."
    assert body["end_reason"] == "user_ended"
    assert body["capabilities"] == [{"capability": "chat", "granted": True, "used": True,
                                     "revoked_at": None, "revoked_by": None}]  # fmt: skip
    assert body["summary_state"] == "written"
    receipts = await http.get("/api/v1/me/consent-receipts", headers=world.requester.headers)
    assert [r["decisions"] for r in receipts.json()] == [{"chat": "granted"}]
    listed = await http.get(f"/api/v1/tickets/{world.ticket_id}/support-sessions", headers=auth)
    assert [item["id"] for item in listed.json()["items"]] == [running.sid]


async def test_the_server_never_receives_or_stores_session_plaintext(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path,
) -> None:
    recorder = Recorder()
    live = start_server(recorder)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        http.live = live  # type: ignore[attr-defined]
        running = await active(http, world, signing_key)
        assert running.agent.e2e is not None and running.technician.e2e is not None
        for _ in range(3):
            await running.technician.ws.send(
                running.technician.e2e.seal(ChannelId.CHAT, chat(MARKER)))
            frame = await running.agent.next_where(lambda f: isinstance(f, bytes))
            assert isinstance(frame, bytes)
            assert MARKER in running.agent.e2e.open(frame)[1].decode()
        await running.technician.send(SessionEnd(
            id=mid(), support_session_id=running.sid, ended_by=Party.TECHNICIAN,
            reason=EndReason.TECHNICIAN_ENDED))
        await running.agent.expect("session.end")
    live.stop()

    marker = MARKER.encode()
    assert recorder.frames, "the recorder saw the traffic"
    assert not [f for f in recorder.frames if marker in f]
    # Every row of every table, as the database returns it.
    async with world.app.state.sessionmaker() as db:
        for table in Base.metadata.sorted_tables:
            rows = (await db.execute(select(table))).all()
            dumped = orjson.dumps([tuple(map(str, r)) for r in rows])
            assert marker not in dumped, table.name
    url = world.app.state.settings.effective_database_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        # The database file and its write-ahead log: pages are there before any checkpoint.
        for file in path.parent.glob(path.name + "*"):
            assert marker not in file.read_bytes(), file
    # And every other file the server keeps (keys, witness); this session was not recorded.
    assert not list(world.app.state.settings.data_dir.glob("recordings/*"))
    for file in world.app.state.settings.data_dir.rglob("*"):
        if file.is_file():
            assert marker not in file.read_bytes(), file
