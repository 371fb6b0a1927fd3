"""Relay backpressure with the screen view (issue 11, "Faults"): a real relay (this server in a
thread), a real ``auxilio agent join`` on a private Xvfb whose picture keeps changing, and a
technician client that speaks the real E2E channel (``FakeTechnician``) and is the viewer.

* The viewer reads every frame but stops acknowledging: the device sends no more than the flow
  window (``protocol/screen_flow.py``: 2 frames, 2 MiB) beyond the last ack, the relay's queue
  towards the viewer stays within that, and chat still flows both ways on the same session.
  When the acks resume, so do the frames (in order, decodable), and a keyframe comes when the
  viewer asks for one.
* The viewer closing (its connection gone without a word) and coming back: the new viewer's
  ``screen.start`` gets a fresh stream (a new ``screen.config``, ``seq`` 0, a keyframe).

Counts are asserted, never times; the waits only give the device a chance to break the bound.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

for module in ("mss", "av", "numpy", "Xlib"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from auxilio.crypto.grants import Grant, SignedGrant, read_grant  # noqa: E402
from auxilio.protocol.app import (  # noqa: E402
    AppMessage,
    ChatMessage,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId  # noqa: E402
from auxilio.protocol.frames import parse_message  # noqa: E402
from auxilio.protocol.screen import (  # noqa: E402
    ScreenAck,
    ScreenConfig,
    ScreenFrame,
    ScreenKeyframeRequest,
    ScreenStart,
)
from auxilio.protocol.screen_flow import DEFAULT_MAX_BYTES, DEFAULT_MAX_FRAMES  # noqa: E402
from auxilio.server.relay.connection import SendQueue  # noqa: E402
from auxilio.server.relay.hub import Peer, topic  # noqa: E402
from tests.agent.screen.conftest import XServer, xvfb_screen  # noqa: E402
from tests.e2e.conftest import AUXILIO  # noqa: E402
from tests.server.support_sessions.conftest import ServerFactory, World, policy_text  # noqa: E402
from tests.server.support_sessions.flow import request  # noqa: E402
from tests.server.support_sessions.peers import FakeTechnician  # noqa: E402

pytestmark = pytest.mark.e2e

SCREEN_RULE = "  chat: {roles: [technician, senior_technician, supervisor]}\n"
WITH_SCREEN = SCREEN_RULE + "  screen_view: {roles: [technician, senior_technician, supervisor]}\n"
WIDTH, HEIGHT = 640, 480
# A Tk window that changes colour every 40 ms: there is always a new picture to send.
CHANGING = f"""
import tkinter
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("{WIDTH // 2}x{HEIGHT // 2}+40+40")
colours = ["#c00000", "#00c000", "#0000c0", "#c0c000"]
state = [0]
def flip():
    state[0] += 1
    root.configure(background=colours[state[0] % len(colours)])
    root.after(40, flip)
root.after(40, flip)
root.after(200, lambda: print("shown", flush=True))
root.mainloop()
"""
WITHHELD_SECONDS = 3.0  # how long the viewer withholds its acks (the device had many chances)
WITHIN = 60.0
# The agent's start (the screen extra imported) may take long on a loaded machine.
LOADED = 60.0


@contextmanager
def changing_desktop() -> Iterator[XServer]:
    with xvfb_screen(WIDTH, HEIGHT) as server:
        env = {**os.environ, "DISPLAY": server.name}
        subprocess.run(["xsetroot", "-solid", "#404040"], env=env, check=False, timeout=60)
        window = subprocess.Popen([sys.executable, "-c", CHANGING], env=env,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert window.stdout is not None
            assert window.stdout.readline().strip() == "shown"
            yield server
        finally:
            window.terminate()
            window.wait(timeout=30)
            if window.stdout is not None:
                window.stdout.close()


@dataclass
class Received:
    seq: int
    keyframe: bool
    size: int


@dataclass
class Viewer:
    """The technician as the screen's viewer: opens every E2E frame the relay delivers, in
    order, and keeps what came on the screen and chat channels."""

    technician: FakeTechnician
    frames: list[Received] = field(default_factory=list)
    configs: list[ScreenConfig] = field(default_factory=list)
    chats: list[str] = field(default_factory=list)
    others: list[AppMessage] = field(default_factory=list)
    stale: int = 0  # binary frames of an earlier connection's channel, skipped
    _opened: int = 0

    def poll(self) -> None:
        assert self.technician.e2e is not None
        arrived = self.technician.frames
        while self._opened < len(arrived):
            frame = arrived[self._opened]
            self._opened += 1
            if not isinstance(frame, bytes):
                continue
            channel, plaintext = self.technician.e2e.open(frame)
            message = decode_app_message(plaintext)
            if isinstance(message, ScreenFrame):
                assert channel == ChannelId.SCREEN
                self.frames.append(Received(message.seq, message.keyframe, len(message.data)))
            elif isinstance(message, ScreenConfig):
                self.configs.append(message)
            elif isinstance(message, ChatMessage):
                self.chats.append(message.text)
            else:
                self.others.append(message)

    def newer_than(self, seq: int) -> Callable[[], bool]:
        return lambda: bool(self.frames) and self.frames[-1].seq > seq

    async def until(self, done: Callable[[], bool], *, within: float = WITHIN) -> None:
        """Wait (bounded) until ``done()`` holds on what arrived."""
        async with asyncio.timeout(within):
            while True:
                self.poll()
                if done():
                    return
                await asyncio.sleep(0.02)

    async def watch(self, seconds: float) -> None:
        """Keep reading for ``seconds`` (what a device breaking the bound would send arrives)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            self.poll()
            await asyncio.sleep(0.02)
        self.poll()

    async def send(self, message: AppMessage, channel: ChannelId = ChannelId.SCREEN) -> None:
        assert self.technician.e2e is not None
        sealed = self.technician.e2e.seal(channel, encode_app_message(message))
        await self.technician.ws.send(sealed)

    async def ack(self, seq: int) -> None:
        await self.send(ScreenAck(seq=seq, decode_us=1000))


def spawn_agent(url: str, join_code: str, display: str, state: Path) -> Any:
    env = {**os.environ, "COLUMNS": "220", "DISPLAY": display}
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("XDG_SESSION_TYPE", None)
    return pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", join_code, "--server", url, "--state-dir", str(state),
         "--terminal"],
        encoding="utf-8", timeout=WITHIN, dimensions=(50, 220), env=env,
    )  # fmt: skip


async def expect(agent: Any, pattern: str, within: float = 60) -> None:
    await asyncio.to_thread(agent.expect, pattern, within)


async def the_grant(http: httpx.AsyncClient, world: World, sid: str,
                    server_key: Ed25519PrivateKey) -> Grant:  # fmt: skip
    """The signed grant as the console fetches it, checked against the server's key."""
    bearer = {"Authorization": f"Bearer {world.technician.token}"}
    response = await http.get(f"/api/v1/support-sessions/{sid}", headers=bearer)
    assert response.status_code == 200, response.text
    signed = SignedGrant.model_validate(response.json()["grant"])
    return read_grant(server_key.public_key(), signed)


async def attach_viewer(technician: FakeTechnician, world: World, sid: str, grant: Grant) -> Viewer:
    """A technician (re)attached and through the handshake. What the relay delivered before
    the handshake's ``e2e.confirm`` was sealed for the connection before (frames the device
    sent while the new one attached): this channel cannot open them, and skips them."""
    await technician.connect()
    await technician.attach(sid, world.technician.token)
    await technician.answer_e2e(grant)
    viewer = Viewer(technician)
    confirm = max(i for i, f in enumerate(technician.frames)
                  if isinstance(f, str) and parse_message(f).type == "e2e.confirm")  # fmt: skip
    viewer.stale = sum(isinstance(f, bytes) for f in technician.frames[:confirm])
    viewer._opened = confirm + 1
    return viewer


def technician_queue(live: Any, sid: str) -> SendQueue:
    """The relay's send queue towards the technician's connection."""
    hub = live.app.state.support_sessions.hub
    handlers = hub.bus._topics[topic(sid, Peer.TECHNICIAN)]
    queue: SendQueue = handlers[0].__self__.conn.queue
    return queue


async def test_a_viewer_that_stops_acknowledging_holds_the_device_to_the_window(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    await world.use_policy(policy_text().replace(SCREEN_RULE, WITH_SCREEN))
    live = start_server(ws_auth_timeout_seconds=LOADED)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        technician = FakeTechnician(live.url)
        response = await request(http, world, technician, ("chat", "screen"))
        assert response.status_code == 201, response.text
        created = response.json()
        sid = created["id"]
        await technician.connect()
        await technician.attach(sid, world.technician.token)
        await technician.expect_state("attached")
        with changing_desktop() as desktop:
            agent = spawn_agent(live.url, created["join_code"], desktop.name, tmp_path / "agent")
            try:
                for _ in range(2):  # chat, screen
                    await expect(agent, r"Allow \w+\? \[y/n\]")
                    agent.sendline("y")
                grant = await the_grant(http, world, sid, signing_key)
                await technician.answer_e2e(grant)
                viewer = Viewer(technician)
                await viewer.send(ScreenStart(codecs=("vp8",), max_fps=30))
                await expect(agent, "Your screen is being shared")

                # Acknowledged as they come: the stream flows.
                await viewer.until(lambda: len(viewer.frames) >= 1)
                assert viewer.configs and viewer.configs[0].codec == "vp8"
                assert viewer.frames[0].seq == 0 and viewer.frames[0].keyframe
                acked = -1
                while acked < 9:
                    await viewer.until(viewer.newer_than(acked))
                    acked = viewer.frames[-1].seq
                    await viewer.ack(acked)
                assert [f.seq for f in viewer.frames] == list(range(len(viewer.frames)))

                # The viewer stops acknowledging while the picture keeps changing: the device
                # fills the window and sends nothing more.
                queue = technician_queue(live, sid)
                queue.peak_frames, queue.peak_bytes = len(queue), queue.queued_bytes
                await viewer.until(lambda: viewer.frames[-1].seq >= acked + DEFAULT_MAX_FRAMES)
                # Chat flows both ways on the same session meanwhile.
                await viewer.send(ChatMessage(text="still there?", sent_at=datetime.now(UTC)),
                                  ChannelId.CHAT)  # fmt: skip
                await expect(agent, "still there\\?")
                agent.sendline("yes, the picture froze")
                await viewer.until(lambda: "yes, the picture froze" in viewer.chats)
                await viewer.watch(WITHHELD_SECONDS)
                beyond = [f for f in viewer.frames if f.seq > acked]
                assert [f.seq for f in beyond] == [acked + 1, acked + 2]
                assert sum(f.size for f in beyond[:-1]) < DEFAULT_MAX_BYTES
                # The relay held no more than that window (and a chat line or a stats message).
                assert queue.peak_frames <= DEFAULT_MAX_FRAMES + 2
                assert queue.peak_bytes <= sum(f.size for f in beyond) + 64 * 1024

                # The acks resume: frames follow in order, from where the stream stood.
                held = beyond[-1].seq
                await viewer.ack(held)
                await viewer.until(viewer.newer_than(held))
                assert viewer.frames[-1].seq == held + 1
                acked = held
                # The viewer asks for a keyframe (as after a decoder reset): one comes.
                await viewer.send(ScreenKeyframeRequest(reason="decoder_reset"))
                while not any(f.keyframe for f in viewer.frames if f.seq > held):
                    await viewer.until(viewer.newer_than(acked))
                    acked = viewer.frames[-1].seq
                    await viewer.ack(acked)
                seqs = [f.seq for f in viewer.frames]
                assert seqs == list(range(len(seqs)))  # never a gap, never a repeat
                assert not [m for m in viewer.others if getattr(m, "type", "") == "screen.error"]
            finally:
                agent.close(force=True)


async def test_a_viewer_that_goes_away_and_comes_back_gets_a_fresh_stream(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    await world.use_policy(policy_text().replace(SCREEN_RULE, WITH_SCREEN))
    live = start_server(ws_auth_timeout_seconds=LOADED, technician_grace_seconds=60)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        technician = FakeTechnician(live.url)
        response = await request(http, world, technician, ("chat", "screen"))
        assert response.status_code == 201, response.text
        created = response.json()
        sid = created["id"]
        await technician.connect()
        await technician.attach(sid, world.technician.token)
        await technician.expect_state("attached")
        with changing_desktop() as desktop:
            agent = spawn_agent(live.url, created["join_code"], desktop.name, tmp_path / "agent")
            try:
                for _ in range(2):
                    await expect(agent, r"Allow \w+\? \[y/n\]")
                    agent.sendline("y")
                grant = await the_grant(http, world, sid, signing_key)
                await technician.answer_e2e(grant)
                viewer = Viewer(technician)
                await viewer.send(ScreenStart(codecs=("vp8",), max_fps=30))
                await viewer.until(lambda: len(viewer.frames) >= 1)
                await viewer.ack(viewer.frames[-1].seq)
                await viewer.until(lambda: len(viewer.frames) >= 2)
                # The page closes: its connection drops without a screen.stop or an ack.
                technician.ws.transport.abort()
                # The person is told. Under a loaded PostgreSQL run this once took over 60 s
                # (not traced: the agent had stopped its screen for want of acks meanwhile).
                await expect(agent, "connection dropped", within=180)

                # The technician comes back (same key, a new connection and handshake).
                back = FakeTechnician(live.url)
                back.e2e_key = technician.e2e_key
                again = await attach_viewer(back, world, sid, grant)
                await again.send(ScreenStart(codecs=("vp8",), max_fps=30))
                await again.until(lambda: len(again.frames) >= 1)
                assert again.configs and again.configs[-1].codec == "vp8"
                first = again.frames[0]
                assert (first.seq, first.keyframe) == (0, True)
                await again.ack(0)
                await again.until(lambda: len(again.frames) >= 2)
                assert [f.seq for f in again.frames[:2]] == [0, 1]
                # At most the old stream's window (and a stats message) reached the new
                # connection before its handshake: the device learns that the viewer left only
                # from the acks that stop.
                assert again.stale <= DEFAULT_MAX_FRAMES + 1
            finally:
                agent.close(force=True)
