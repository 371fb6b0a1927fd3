"""The recording player of the supervisor pages in a real browser, on a real recording.

The recorded session is real: requested over REST by a technician of organisation "web-rec"
(the default policy records every session, so the organisation has an auditor key made with
``auxilio admin auditor-key``), joined, consented and end-to-end encrypted by the test-only
agent and technician of tests/server/support_sessions/peers.py over real WebSockets to the live
server, which writes the recording. The auditor then opens it in chromium with the key file;
what the page shows is compared with what ``auxilio recording export`` writes from the same file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Page, Request, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from auxilio.agent.sealing import recording_key_message
from auxilio.crypto.keys import b64url_encode, load_auditor_key, save_private_key
from auxilio.protocol.app import (
    ChatMessage,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import EndReason, Party, SessionEnd
from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.recordings.playback import read_playback
from tests.e2e.conftest import AUXILIO
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid
from tests.web.conftest import Person, describe
from tests.web.test_supervisor import Loop, PublicKeyOnly

pytestmark = pytest.mark.e2e

ORG = "web-rec"
CHAT_OUT = "hello from the technician, chat-3f1a"
CHAT_IN = "thanks, it works now"
COMMAND = "echo typed-7c2e"
SHOWN = "shown-on-the-terminal-91b4 \u00e9t\u00e9"


@dataclass
class Recorded:
    support_session_id: str
    ticket_ref: str
    key_file: Path
    auditor: Person
    technician: Person


async def _record(server: str, ticket_id: str, token: str) -> str:
    """A recorded session with chat both ways and a terminal, then ended by the technician."""
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        key = (await http.get("/api/v1/server-key")).json()["public_key"]
        technician = FakeTechnician(server)
        created = await http.post(
            "/api/v1/support-sessions", headers={"Authorization": f"Bearer {token}"},
            json={"ticket_id": ticket_id, "mode": "attended",
                  "capabilities": ["chat", "terminal"],
                  "technician_e2e_key": technician.public_key},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        assert created.json()["recorded"] is True
        sid = created.json()["id"]
    await technician.connect()
    await technician.attach(sid, token)
    await technician.expect_state("attached")
    agent = FakeAgent(server, capabilities=(Capability.CHAT, Capability.TERMINAL))
    await agent.connect()
    await agent.authenticate()
    await agent.join(created.json()["join_code"])
    grant = agent.verify(PublicKeyOnly(key))  # type: ignore[arg-type]
    await agent.decide({Capability.CHAT: ConsentDecision.GRANTED,
                        Capability.TERMINAL: ConsentDecision.GRANTED})  # fmt: skip
    await agent.expect_state("technician_ready", within=20)
    await asyncio.gather(agent.start_e2e(), technician.answer_e2e(grant))
    assert agent.e2e is not None and technician.e2e is not None
    keys = recording_key_message(grant, agent.e2e.keys)
    assert keys is not None
    await agent.send(keys)

    def from_technician(message: Any) -> bytes:
        assert technician.e2e is not None
        channel = ChannelId.CHAT if isinstance(message, ChatMessage) else ChannelId.TERMINAL
        return technician.e2e.seal(channel, encode_app_message(message))

    await technician.ws.send(from_technician(ChatMessage(text=CHAT_OUT, sent_at=datetime.now(UTC))))
    await technician.ws.send(from_technician(TerminalOpen(terminal_id=1, cols=90, rows=20)))
    await technician.ws.send(
        from_technician(TerminalInput(terminal_id=1, data=COMMAND.encode() + b"\r"))
    )
    for _ in range(3):
        await agent.next_where(lambda f: isinstance(f, bytes))
    output = f"$ {COMMAND}\r\n{SHOWN}\r\n$ ".encode()
    cut = output.index("\u00e9".encode()) + 1  # inside the two bytes of "é"
    for piece in (output[:cut], output[cut:]):
        message = encode_app_message(TerminalOutput(terminal_id=1, data=piece))
        await agent.ws.send(agent.e2e.seal(ChannelId.TERMINAL, message))
    await agent.ws.send(agent.e2e.seal(ChannelId.CHAT, encode_app_message(
        ChatMessage(text=CHAT_IN, sent_at=datetime.now(UTC)))))  # fmt: skip
    for _ in range(3):
        await technician.next_where(lambda f: isinstance(f, bytes))
    await technician.send(SessionEnd(id=mid(), support_session_id=sid,
                                     ended_by=Party.TECHNICIAN,
                                     reason=EndReason.TECHNICIAN_ENDED))  # fmt: skip
    await agent.expect("session.end")
    return sid


def _wait_for_frames(path: Path, sid: str, frames: int) -> None:
    """The relay writes the file from its own task; wait until every frame is in it."""
    deadline = time.monotonic() + 30
    while True:
        if path.exists():
            with path.open("rb") as handle:
                records = read_playback(handle, support_session_id=sid).records
            if sum(1 for r in records if r.channel is not None) >= frames:
                return
        assert time.monotonic() < deadline, f"{path} has not got {frames} frames"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def recorded(
    create_person: Callable[..., Person],
    api_token: Callable[[Person], str],
    live_server: str,
    web_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Recorded:
    end_user = create_person(f"person@{ORG}.example", "end_user", name="Rita Persona", org=ORG)
    # Only senior technicians may use the terminal under the default policy.
    technician = create_person(f"tech@{ORG}.example", "senior_technician", name="Rubén Tech",
                               org=ORG, skills="software")  # fmt: skip
    auditor = create_person(f"audit@{ORG}.example", "auditor", name="Ramona Auditora", org=ORG)
    admin = create_person(f"admin@{ORG}.example", "admin", name="Raúl Admin", org=ORG)
    headers = {"Authorization": f"Bearer {api_token(admin)}"}
    for training in ("privacy", "approved-tools"):
        done = httpx.post(
            f"{live_server}/api/v1/users/{technician.id}/trainings",
            json={"training_id": training, "title": training,
                  "completed_at": datetime.now(UTC).isoformat()},
            headers=headers, timeout=60,
        )  # fmt: skip
        assert done.status_code == 201, done.text
    key_file = tmp_path_factory.mktemp("auditor") / "auditor.pem"
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(key_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    ticket = httpx.post(
        f"{live_server}/api/v1/tickets", json={"title": "Printer offline", "category": "software"},
        headers={"Authorization": f"Bearer {api_token(end_user)}"}, timeout=60,
    ).json()  # fmt: skip
    loop = Loop()
    try:
        sid = loop.run(_record(live_server, str(ticket["id"]), api_token(technician)), timeout=90)
    finally:
        loop.stop()
    _wait_for_frames(web_data_dir / "recordings" / f"{sid}.rec", sid, 6)
    return Recorded(sid, f"#{ticket['number']}", key_file, auditor, technician)


def _export(web_data_dir: Path, recorded: Recorded, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*AUXILIO, "recording", "export", recorded.support_session_id, "--key",
         str(recorded.key_file), "--out", str(out), "--data-dir", str(web_data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (out / "terminal-1.cast").read_text(encoding="utf-8").splitlines()
    return {
        "chat": (out / "chat.txt").read_text(encoding="utf-8").splitlines(),
        "header": json.loads(lines[0]),
        "events": [json.loads(line) for line in lines[1:]],
    }


def _key_secrets(key_file: Path) -> list[bytes]:
    """Every spelling of the private key a request could carry."""
    pem = key_file.read_bytes()
    der = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    raw = load_auditor_key(key_file).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )  # fmt: skip
    body = b"".join(pem.splitlines()[1:-1])
    return [pem, body, body[:40], der, raw, raw.hex().encode(), b64url_encode(raw).encode(),
            base64.b64encode(raw)]  # fmt: skip


def _open_player(page: Page, recorded: Recorded) -> None:
    page.goto("/supervisor/recordings")
    row = page.locator("#recordings tbody tr", has_text=recorded.support_session_id)
    row.get_by_role("link", name=f"Play the recording of {recorded.ticket_ref}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        f"Recording of {recorded.ticket_ref}"
    )
    # Enabled by the player's script once it has loaded.
    expect(page.get_by_role("button", name="Open the recording")).to_be_enabled()


def _rows(page: Page) -> str:
    return page.locator("#terminal .xterm-rows").inner_text()


def test_the_auditor_plays_a_recording_in_the_page_and_the_key_never_leaves_it(
    page: Page,
    login: Callable[..., None],
    recorded: Recorded,
    web_data_dir: Path,
    tmp_path: Path,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, recorded.auditor)
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _open_player(page, recorded)
    page.get_by_label("Auditor private key (PEM)").set_input_files(str(recorded.key_file))
    page.get_by_role("button", name="Open the recording").click()
    expect(page.locator("#player-status")).to_contain_text(
        "Opened: 6 frames, 1 terminal(s), 2 chat line(s)."
    )
    assert page.locator("#player-error").inner_text() == ""
    page.get_by_role("button", name="Show all of it").click()
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(SHOWN)
    assert COMMAND in _rows(page)
    chat = page.locator("#chat-lines li")
    expect(chat).to_have_count(2)
    expect(chat.nth(0)).to_contain_text(f"technician: {CHAT_OUT}")
    expect(chat.nth(1)).to_contain_text(f"person: {CHAT_IN}")

    # The same chat lines and cast events as the command line export of the same file.
    exported = _export(web_data_dir, recorded, tmp_path / "export")
    shown = page.evaluate("""async () => {
        const { page } = await import("/static/js/recording-player.js");
        const [cast] = page.result.casts;
        return { chat: page.result.chatLines, header: cast.header, events: cast.events };
    }""")  # fmt: skip
    assert shown == exported
    assert SHOWN in "".join(e[2] for e in exported["events"] if e[1] == "o")

    # Played from the start at a speed: the output comes back, and the button says Play again.
    page.get_by_role("button", name="From the start").click()
    expect(page.locator("#terminal .xterm-rows")).not_to_contain_text(SHOWN)
    page.get_by_label("Speed").select_option("8")
    page.get_by_role("button", name="Play").click()
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(SHOWN)
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")

    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "supervisor-recording")

    # Nothing of the key went out: one GET of the ciphertext, no request with a body.
    secrets = _key_secrets(recorded.key_file)
    api = [r for r in sent if "/api/" in r.url]
    assert [(r.method, r.url.split("/api")[1]) for r in api] == [
        ("GET", f"/v1/recordings/{recorded.support_session_id}/sealed")
    ]
    for request in sent:
        carried = (
            (request.post_data_buffer or b"")
            + request.url.encode()
            + json.dumps(request.headers).encode()
        )
        assert not [s for s in secrets if s in carried], request.url
    assert errors == []


def test_a_wrong_key_and_a_file_that_is_no_key_are_refused_clearly(
    page: Page, login: Callable[..., None], recorded: Recorded, tmp_path: Path
) -> None:
    wrong = tmp_path / "other-auditor.pem"
    save_private_key(X25519PrivateKey.generate(), wrong)
    not_a_key = tmp_path / "notes.pem"
    not_a_key.write_text("these are not the keys you are looking for\n")
    login(page, recorded.auditor)
    _open_player(page, recorded)
    key_input = page.get_by_label("Auditor private key (PEM)")
    opener = page.get_by_role("button", name="Open the recording")
    opener.click()
    expect(page.locator("#player-error")).to_have_text(
        "Choose the auditor key file first. (key.no_file)"
    )
    key_input.set_input_files(str(not_a_key))
    opener.click()
    expect(page.locator("#player-error")).to_contain_text("(key.invalid_file)")
    key_input.set_input_files(str(wrong))
    opener.click()
    expect(page.locator("#player-error")).to_have_text(
        "This key does not open this recording: it is sealed to another auditor key. "
        "(recording_key_wrong)"
    )
    # Nothing of the recording is shown with a wrong key.
    expect(page.locator("#player")).to_be_hidden()
    assert page.locator("#chat-lines li").count() == 0
    # A session with no recording (or another organisation's) has no player.
    response = page.goto(f"/supervisor/recordings/{uuid.uuid4()}")
    assert response is not None and response.status == 404
    expect(page.get_by_text("There is no such recording in your organisation.")).to_be_visible()


def test_the_player_works_by_keyboard(
    page: Page, login: Callable[..., None], recorded: Recorded
) -> None:
    login(page, recorded.auditor)
    _open_player(page, recorded)

    def tab_to(selector: str) -> None:
        target = page.locator(selector)
        for _ in range(40):
            page.keyboard.press("Tab")
            if target.evaluate("e => e === document.activeElement"):
                return
        pytest.fail(f"{selector} is not reachable with Tab")

    tab_to("#key-file")
    # The browser's own file input: Enter opens its chooser. Headless chromium now and then
    # drops the first key press right after the page loads, so it gets three tries.
    for attempt in range(3):
        try:
            with page.expect_file_chooser(timeout=5_000) as chooser:
                page.keyboard.press("Enter")
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    chooser.value.set_files(str(recorded.key_file))
    tab_to("#key-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#player-status")).to_contain_text("Opened:")
    tab_to("#play")
    page.keyboard.press("Enter")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(SHOWN)
    tab_to("#restart")
    page.keyboard.press("Space")
    expect(page.locator("#terminal .xterm-rows")).not_to_contain_text(SHOWN)
    tab_to("#to-end")
    page.keyboard.press("Enter")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(SHOWN)


def test_a_technician_may_not_open_the_player_nor_fetch_the_ciphertext(
    page: Page, login: Callable[..., None], recorded: Recorded, live_server: str,
    api_token: Callable[[Person], str],
) -> None:  # fmt: skip
    login(page, recorded.technician)
    response = page.goto(f"/supervisor/recordings/{recorded.support_session_id}")
    assert response is not None and response.status == 403
    fetched = httpx.get(
        f"{live_server}/api/v1/recordings/{recorded.support_session_id}/sealed",
        headers={"Authorization": f"Bearer {api_token(recorded.technician)}"}, timeout=60,
    )  # fmt: skip
    assert fetched.status_code == 403 and fetched.json()["error"]["code"] == "forbidden"


def test_an_altered_dropped_or_keyless_recording_is_refused_with_its_offset(
    page: Page, login: Callable[..., None], recorded: Recorded
) -> None:
    """The page's own checks, on the server's answer changed on its way to the page."""
    login(page, recorded.auditor)
    _open_player(page, recorded)
    change: dict[str, Callable[[dict[str, Any]], None]] = {}

    def altered(route: Any) -> None:
        body = route.fetch().json()
        change["now"](body)
        route.fulfill(json=body)

    page.route("**/api/v1/recordings/*/sealed", altered)
    page.get_by_label("Auditor private key (PEM)").set_input_files(str(recorded.key_file))
    opener = page.get_by_role("button", name="Open the recording")
    error = page.locator("#player-error")

    offsets: dict[str, int] = {}

    def flip(body: dict[str, Any]) -> None:
        record = body["records"][2]
        frame = bytearray(base64.urlsafe_b64decode(record["body"] + "=="))
        frame[-1] ^= 1  # in the GCM tag
        record["body"] = b64url_encode(bytes(frame))
        offsets["flip"] = record["offset"]

    def drop(body: dict[str, Any]) -> None:
        body["records"].pop(2)  # the terminal.open: the next terminal frame is out of order
        offsets["drop"] = body["records"][2]["offset"]

    def keyless(body: dict[str, Any]) -> None:
        body["sealed_keys"] = {}
        offsets["keyless"] = body["records"][0]["offset"]

    for how in (flip, drop, keyless):
        change["now"] = how
        opener.click()
        code = "recording_key_missing" if how is keyless else "recording_corrupt"
        expect(error).to_contain_text(f"({code})")  # the route has run once this shows
        expect(error).to_contain_text(f"at byte {offsets[how.__name__]}")
        expect(page.locator("#player")).to_be_hidden()
    # And the unchanged answer still opens.
    change["now"] = lambda body: None
    opener.click()
    expect(page.locator("#player-status")).to_contain_text("Opened: 6 frames")
    assert error.inner_text() == ""
