"""live-session.js against the real ``auxilio serve`` and a real agent process: the browser
attaches on /ws/technician, the person consents in the agent's prompt, the browser does the
E2E handshake itself, types in the xterm terminal and sees the device's output, chats both
ways, and ends the session with a summary the server stores.

The page is the harness's (js_harness/live.html under the console's CSP), not the console's
template: its /api/v1 requests are passed to the real server as the technician (the console's
pages send the session cookie), and it attaches with the technician's API token (the console's
pages ask POST /web/ws-token for one).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.e2e.conftest import AUXILIO

from .js_harness.server import HARNESS_DIR, Harness, serve_harness

ORG = "jsclient"


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with serve_harness() as served:
        yield served


def _post(server: str, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    done = httpx.post(f"{server}/api/v1{path}", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert done.status_code in (200, 201), done.text
    answer: dict[str, Any] = done.json()
    return answer


@pytest.fixture(scope="module")
def organisation(
    live_server: str,
    web_data_dir: Path,
    create_person: Callable[..., Any],
    api_token: Callable[[Any], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """An organisation of its own: the default policy wants the technician's trainings and an
    auditor key (it records every session)."""
    person = create_person("ines@jsclient.example", "end_user", name="Inés Usuaria", org=ORG)
    technician = create_person("teo@jsclient.example", "senior_technician", name="Teo Técnico",
                               org=ORG, skills="software")  # fmt: skip
    admin = create_person("ada@jsclient.example", "admin", name="Ada Admin", org=ORG)
    admin_token = api_token(admin)
    for training in ("privacy", "approved-tools"):
        _post(live_server, f"/users/{technician.id}/trainings", admin_token,
              {"training_id": training, "title": training,
               "completed_at": datetime.now(UTC).isoformat()})  # fmt: skip
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path_factory.mktemp("auditor") / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    return {"person": person, "technician": technician, "token": api_token}


def test_the_browser_technician_helps_through_a_real_server_and_agent(
    browser: Any, harness: Harness, live_server: str, organisation: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    token = organisation["token"]
    ticket = _post(live_server, "/tickets", token(organisation["person"]),
                   {"title": "The printer queue is stuck", "category": "software"})  # fmt: skip
    tech_token = token(organisation["technician"])
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{harness.url}/harness/index.html")
    page.locator("#ready", has_text="ready").wait_for()
    public = page.evaluate("""async () => {
        harnessState.key = await e2e.generateTechnicianKey();
        return harnessState.key.publicKey;
    }""")  # fmt: skip
    created = _post(live_server, "/support-sessions", tech_token, {
        "ticket_id": ticket["id"], "mode": "attended", "capabilities": ["chat", "terminal"],
        "technician_e2e_key": public,
    })  # fmt: skip
    sid = created["id"]
    page.evaluate("(sid) => e2e.storeTechnicianKey(sid, harnessState.key)", sid)

    server_key = httpx.get(f"{live_server}/api/v1/server-key", timeout=30).json()
    harness.proxy = (live_server, tech_token)
    data = {
        "support_session_id": sid, "join_code": created["join_code"], "ws_token": tech_token,
        "ws_url": live_server.replace("http://", "ws://") + "/ws/technician",
        "server_public_key": server_key["public_key"],
        "server_fingerprint": server_key["fingerprint"],
    }  # fmt: skip
    template = (HARNESS_DIR / "live.html").read_text(encoding="utf-8")
    harness.pages["/harness/real.html"] = template.replace(
        "{session_data}", json.dumps(data)
    ).replace("{session_texts}", "{}")
    page.goto(f"{harness.url}/harness/real.html")
    page.locator("#decisions", has_text="attached").wait_for()

    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", created["join_code"], "--server", live_server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 160),
    )  # fmt: skip
    try:
        for _ in range(2):  # one question per capability: chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=60_000)
        page.locator("#terminal .xterm-rows").wait_for()

        page.fill("#chat-input", "hello from the browser")
        page.press("#chat-input", "Enter")
        agent.expect("hello from the browser")
        agent.sendline("hello from the person")
        page.locator("#chat-log", has_text="hello from the person").wait_for()

        page.locator("#terminal .xterm-helper-textarea").focus()
        page.keyboard.type("echo marker-$((6*7))\n")
        page.locator("#terminal .xterm-rows", has_text="marker-42").wait_for(timeout=30_000)

        page.fill("#summary-input", "Cleared the print queue from the browser.")
        page.click("#end-form button")
        page.locator("#session-state[data-state=ended]").wait_for()
        page.locator("#decisions", has_text="Summary saved").wait_for()
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        transcript = str(agent.before or "")
        agent.close()
        harness.proxy = None
    assert errors == [], transcript
    assert page.locator("#session-error").inner_text() == ""
    stored = httpx.get(f"{live_server}/api/v1/support-sessions/{sid}", timeout=30,
                       headers={"Authorization": f"Bearer {tech_token}"}).json()  # fmt: skip
    assert stored["state"] == "ended"
    assert stored["summary"] == "Cleared the print queue from the browser."
    context.close()
