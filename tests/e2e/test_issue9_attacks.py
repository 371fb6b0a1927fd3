"""Issue 9 attacked from a proxy between a real agent and a real server (real processes).

``auxilio serve``; the technician's ``auxilio connect`` straight to it; ``auxilio agent join``
(its HOME a temporary folder with a key ring) connected to this module run as a proxy::

    python -m tests.e2e.test_issue9_attacks --port P --upstream ws://127.0.0.1:S --attack NAME

Attacks (the proxy prints ``READY``, then ``TAMPERED <what>`` each time it changed a frame):

- ``none``: pass everything through (the control case);
- ``hello-platform``: the agent's ``agent.hello`` says "Darwin" instead of "Linux". The hello is
  not signed, so the server signs the macOS zones into the grant;
- ``grant-zones``: the offer's grant loses the zones of files (the signature kept);
- ``drop-activity``: the agent's ``session.activity`` facts about files never reach the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pexpect
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.e2e.conftest import AUXILIO, free_port
from tests.e2e.test_proxy_attacks import Transcript, World, world  # noqa: F401 -- fixture
from tests.e2e.test_support_session_e2e import JOIN_CODE
from tests.e2e.wsproxy import _decode_body, _encode_body

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
REASON = "the mail client cannot sign; I need to look at your key ring"
KEY = b"-----BEGIN PGP PRIVATE KEY BLOCK-----\nnot a real key\n"


# -- the proxy (run as a module) ------------------------------------------------------------------


def _say(what: str) -> None:
    print(f"TAMPERED {what}", flush=True)


def from_agent(attack: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """What to pass on to the server in place of ``message``; None drops it."""
    if attack == "hello-platform" and message.get("type") == "agent.hello":
        message["platform"] = "Darwin 23.4.0 (arm64)"
        _say("hello: platform Darwin")
    if (
        attack == "drop-activity"
        and message.get("type") == "session.activity"
        and message.get("capability") == "files"
    ):
        _say(f"activity dropped: {message.get('kind')}")
        return None
    return message


def from_server(attack: str, message: dict[str, Any]) -> dict[str, Any]:
    if attack == "grant-zones" and message.get("type") == "session.offer":
        document = _decode_body(message["grant"]["body"])
        for item in document["payload"]["capabilities"]:
            if item["capability"] == "files":
                item["limits"].update(zones=[], zone_exceptions=[])
        message["grant"]["body"] = _encode_body(document)
        _say("offer: zones removed, signature kept")
    return message


async def _pump(
    source: ServerConnection | ClientConnection,
    sink: ServerConnection | ClientConnection,
    change: Any,
) -> None:
    async for frame in source:
        if isinstance(frame, bytes):
            await sink.send(frame)
        else:
            changed = change(orjson.loads(frame))
            if changed is not None:
                await sink.send(orjson.dumps(changed).decode())


async def run_proxy(port: int, upstream: str, attack: str) -> None:
    async def handle(agent: ServerConnection) -> None:
        path = agent.request.path if agent.request is not None else "/ws/agent"
        async with connect(upstream + path, max_size=None) as server:
            tasks = [
                asyncio.create_task(_pump(server, agent, lambda m: from_server(attack, m))),
                asyncio.create_task(_pump(agent, server, lambda m: from_agent(attack, m))),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except websockets.ConnectionClosed:
                pass
            finally:
                for task in tasks:
                    task.cancel()

    http_upstream = upstream.replace("ws://", "http://", 1)

    async def plain_http(connection: ServerConnection, request: Request) -> Response | None:
        # The server's public key (pinned by the agent) passes through unchanged.
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        async with httpx.AsyncClient() as client:
            answer = await client.get(http_upstream + request.path)
        response = connection.respond(answer.status_code, answer.text)
        response.headers["Content-Type"] = answer.headers.get("content-type", "text/plain")
        return response

    async with serve(handle, "127.0.0.1", port, max_size=None, process_request=plain_http):
        print("READY", flush=True)
        await asyncio.Future()


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(world: World, request: pytest.FixtureRequest) -> Iterator[tuple[str, pexpect.spawn]]:  # noqa: F811
    port = free_port()
    command = [sys.executable, "-m", "tests.e2e.test_issue9_attacks", "--port", str(port),
               "--upstream", world.server.replace("http://", "ws://"),
               "--attack", request.param]  # fmt: skip
    child = pexpect.spawn(command[0], command[1:], cwd=str(ROOT), encoding="utf-8", timeout=30)
    child.expect("READY")
    yield f"http://127.0.0.1:{port}", child
    child.terminate(force=True)


def person_home(tmp_path: Path) -> Path:
    home = tmp_path / "person-home"
    (home / ".gnupg").mkdir(parents=True)
    (home / ".gnupg" / "secring.gpg").write_bytes(KEY)
    return home


def technician_downloads(world: World, tmp_path: Path, remote: Path) -> pexpect.spawn:  # noqa: F811
    steps = [f"reason:{REASON}", f"get:{remote}=>{tmp_path / 'stolen.gpg'}", "end"]
    child = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(world.ticket), "-c", "chat", "-c", "files",
         "--files-direction", "download", *[a for s in steps for a in ("--send", s)],
         "--summary", "Attack test."],
        env=world.client_env, encoding="utf-8", timeout=180,
    )  # fmt: skip
    child.logfile_read = Transcript(tmp_path / "technician-transcript.txt")
    return child


def person_joins(world: World, code: str, server: str, home: Path) -> pexpect.spawn:  # noqa: F811
    child = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", server,
         "--state-dir", str(world.agent_state), "--terminal"],
        encoding="utf-8", timeout=180, dimensions=(50, 220),
        env={**os.environ, "COLUMNS": "220", "HOME": str(home)},
    )  # fmt: skip
    child.logfile_read = Transcript(world.agent_state.parent / "agent-transcript.txt")
    return child


def download_session(
    world: World,  # noqa: F811
    tmp_path: Path,
    server: str,
    remote: str = ".gnupg/secring.gpg",
) -> bool:
    """The technician downloads ``remote`` (under the person's home); the person allows chat
    and files and refuses any zone question. True when the person was asked about a zone."""
    home = person_home(tmp_path)
    technician = technician_downloads(world, tmp_path, home / remote)
    technician.expect(JOIN_CODE)
    agent = person_joins(world, technician.match.group(1), server, home)
    for _ in range(2):  # chat, files
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")
    asked = agent.expect(["asks to open your", "Session ended"]) == 0
    if asked:
        agent.expect(r"Type y")
        agent.sendline("n")
        technician.expect("error< files.zone_refused")
    technician.expect(pexpect.EOF)
    agent.expect(pexpect.EOF)
    return asked


def agent_transcript(world: World) -> str:  # noqa: F811
    return (world.agent_state.parent / "agent-transcript.txt").read_text()


def file_facts(world: World) -> list[tuple[str, int | None]]:  # noqa: F811
    """The server's activity facts about files: (kind, size)."""
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        rows = db.execute(
            "SELECT kind, size FROM support_session_activities WHERE capability = 'files'"
        ).fetchall()
    db.close()
    return [(str(kind), size) for kind, size in rows]


@pytest.mark.parametrize("proxy", ["none"], indirect=True)
def test_through_an_honest_proxy_the_key_ring_is_asked_for_and_kept(
    world: World,  # noqa: F811
    proxy: tuple[str, pexpect.spawn],
    tmp_path: Path,
) -> None:
    # The control case: the zones of this (Linux) device; the person is asked and says no.
    assert download_session(world, tmp_path, proxy[0])
    assert not (tmp_path / "stolen.gpg").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the device must be Linux")
@pytest.mark.parametrize("proxy", ["hello-platform"], indirect=True)
def test_a_proxy_that_renames_the_platform_does_not_open_the_key_ring(
    world: World,  # noqa: F811
    proxy: tuple[str, pexpect.spawn],
    tmp_path: Path,
) -> None:
    # The agent refuses a files grant made for another platform (files.platform_mismatch,
    # with an alert to the person) rather than judge Linux paths by macOS patterns; the person
    # being asked (the device's own zones used instead) would be an answer too.
    asked = download_session(world, tmp_path, proxy[0])
    proxy[1].expect("TAMPERED hello")
    refused = "files.platform_mismatch" in (tmp_path / "technician-transcript.txt").read_text()
    assert asked or refused
    assert not (tmp_path / "stolen.gpg").exists()


@pytest.mark.parametrize("proxy", ["none"], indirect=True)
def test_through_an_honest_proxy_the_server_has_the_file_read(
    world: World,  # noqa: F811
    proxy: tuple[str, pexpect.spawn],
    tmp_path: Path,
) -> None:
    # The control case for the next test: a file outside every zone, read without a question.
    (tmp_path / "person-home" / "printer.log").parent.mkdir(parents=True)
    (tmp_path / "person-home" / "printer.log").write_text("paper jam\n")
    assert not download_session(world, tmp_path, proxy[0], remote="printer.log")
    assert (tmp_path / "stolen.gpg").read_text() == "paper jam\n"
    assert ("file_read", 10) in file_facts(world)


@pytest.mark.parametrize("proxy", ["drop-activity"], indirect=True)
def test_a_proxy_that_drops_the_activity_facts_is_noticed_by_the_server(
    world: World,  # noqa: F811
    proxy: tuple[str, pexpect.spawn],
    tmp_path: Path,
) -> None:
    (tmp_path / "person-home" / "printer.log").parent.mkdir(parents=True)
    (tmp_path / "person-home" / "printer.log").write_text("paper jam\n")
    download_session(world, tmp_path, proxy[0], remote="printer.log")
    proxy[1].expect("TAMPERED activity dropped: file_read")
    assert "differs from the server's report" in agent_transcript(world)  # the device notices
    assert ("file_read", 10) in file_facts(world) or audit_mentions_a_gap(world)


def audit_mentions_a_gap(world: World) -> bool:  # noqa: F811
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        rows = db.execute("SELECT action FROM audit_events").fetchall()
    db.close()
    return any("gap" in str(action) or "mismatch" in str(action) for (action,) in rows)


@pytest.mark.parametrize("proxy", ["grant-zones"], indirect=True)
def test_a_proxy_that_removes_the_zones_from_the_grant_breaks_its_signature(
    world: World,  # noqa: F811
    proxy: tuple[str, pexpect.spawn],
    tmp_path: Path,
) -> None:
    # DEFENCE HOLDS: the zones are inside the signed grant; the agent refuses the offer.
    home = person_home(tmp_path)
    technician = technician_downloads(world, tmp_path, home / ".gnupg" / "secring.gpg")
    technician.expect(JOIN_CODE)
    agent = person_joins(world, technician.match.group(1), proxy[0], home)
    agent.expect(r"Error grant\.bad_signature")
    proxy[1].expect("TAMPERED offer: zones removed")
    agent.expect(pexpect.EOF)
    technician.terminate(force=True)
    assert "Allow" not in re.sub(r"\s+", " ", str(agent.before or ""))
    assert not (tmp_path / "stolen.gpg").exists()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--attack", default="none")
    arguments = parser.parse_args()
    try:
        asyncio.run(run_proxy(arguments.port, arguments.upstream, arguments.attack))
    except KeyboardInterrupt:
        sys.exit(0)
