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

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


# What console.js does when the technician starts a session: the key made and kept in the page.
_REQUEST_IN_PAGE = """async ([ticketId, capabilities]) => {
    const e2e = await import("/static/js/e2e.js");
    const key = await e2e.generateTechnicianKey();
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const response = await fetch("/api/v1/support-sessions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ ticket_id: ticketId, mode: "attended", capabilities,
                             technician_e2e_key: key.publicKey }),
    });
    const created = await response.json();
    await e2e.storeTechnicianKey(created.id, key);
    return created;
}"""


def request_in_page(page: Any, ticket_id: str, capabilities: list[str]) -> dict[str, Any]:
    """A session requested from the console's page (its cookie and CSRF token), with a
    technician key made and kept in that page's origin; the API's answer."""
    created: dict[str, Any] = page.evaluate(_REQUEST_IN_PAGE, [ticket_id, capabilities])
    return created


_ORGANISATIONS: dict[str, dict[str, Any]] = {}  # live server URL -> the organisation made there


@pytest.fixture(scope="module")
def organisation(
    live_server: str,
    web_data_dir: Path,
    create_person: Callable[..., Any],
    api_token: Callable[[Any], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """An organisation of its own: the default policy wants the technician's trainings and an
    auditor key (it records every session). Made once per live server: the screen and control
    tests import this fixture, and a module fixture runs again in each importing module."""
    if live_server in _ORGANISATIONS:
        return _ORGANISATIONS[live_server]
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
    made = {"person": person, "technician": technician, "token": api_token}
    _ORGANISATIONS[live_server] = made
    return made


@dataclass
class Live:
    page: Any
    sid: str
    join_code: str
    token: str
    errors: list[str]


def start_live_page(
    browser: Any, harness: Harness, server: str, organisation: dict[str, Any],
    request: dict[str, Any], runbooks: list[dict[str, str]] | None = None,
) -> Live:  # fmt: skip
    """A ticket, a session requested with a key the page made, and the live page attached."""
    token = organisation["token"]
    ticket = _post(server, "/tickets", token(organisation["person"]),
                   {"title": "The printer queue is stuck", "category": "software"})  # fmt: skip
    tech_token = token(organisation["technician"])
    page = browser.new_context(accept_downloads=True).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{harness.url}/harness/index.html")
    page.locator("#ready", has_text="ready").wait_for()
    public = page.evaluate("""async () => {
        harnessState.key = await e2e.generateTechnicianKey();
        return harnessState.key.publicKey;
    }""")  # fmt: skip
    created = _post(server, "/support-sessions", tech_token, {
        "ticket_id": ticket["id"], "mode": "attended", "technician_e2e_key": public, **request,
    })  # fmt: skip
    sid = created["id"]
    page.evaluate("(sid) => e2e.storeTechnicianKey(sid, harnessState.key)", sid)
    server_key = httpx.get(f"{server}/api/v1/server-key", timeout=30).json()
    harness.proxy = (server, tech_token)
    data = {
        "support_session_id": sid, "join_code": created["join_code"], "ws_token": tech_token,
        "ws_url": server.replace("http://", "ws://") + "/ws/technician",
        "server_public_key": server_key["public_key"],
        "server_fingerprint": server_key["fingerprint"], "runbooks": runbooks or [],
    }  # fmt: skip
    template = (HARNESS_DIR / "live.html").read_text(encoding="utf-8")
    harness.pages["/harness/real.html"] = template.replace(
        "{session_data}", json.dumps(data)
    ).replace("{session_texts}", "{}")
    page.goto(f"{harness.url}/harness/real.html")
    page.locator("#decisions", has_text="attached").wait_for()
    return Live(page, sid, created["join_code"], tech_token, errors)


def spawn_agent(server: str, live: Live, tmp_path: Path, home: Path | None = None) -> Any:
    env = {**os.environ, "COLUMNS": "220", **({"HOME": str(home)} if home else {})}
    return pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", live.join_code, "--server", server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 220), env=env,
    )  # fmt: skip


def end_with_summary(live: Live, server: str, agent: Any, summary: str) -> None:
    page = live.page
    page.fill("#summary-input", summary)
    page.click("#end-form button")
    page.locator("#session-state[data-state=ended]").wait_for()
    page.locator("#decisions", has_text="Summary saved").wait_for()
    agent.expect("Session report")
    agent.expect(pexpect.EOF)
    assert live.errors == []
    assert page.locator("#session-error").inner_text() == ""
    stored = httpx.get(f"{server}/api/v1/support-sessions/{live.sid}", timeout=30,
                       headers={"Authorization": f"Bearer {live.token}"}).json()  # fmt: skip
    assert (stored["state"], stored["summary"]) == ("ended", summary)


def test_the_browser_technician_helps_through_a_real_server_and_agent(
    browser: Any, harness: Harness, live_server: str, organisation: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    live = start_live_page(browser, harness, live_server, organisation,
                           {"capabilities": ["chat", "terminal"]})  # fmt: skip
    page = live.page
    agent = spawn_agent(live_server, live, tmp_path)
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
        end_with_summary(live, live_server, agent, "Cleared the print queue from the browser.")
    finally:
        agent.close()
        harness.proxy = None
        page.context.close()


def test_files_diagnostics_and_a_runbook_from_the_browser_with_a_real_agent(
    browser: Any, harness: Harness, live_server: str, organisation: dict[str, Any],
    web_data_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    for args in (("import-examples", "--org", ORG, "--author", "teo@jsclient.example"),
                 ("approve", "--org", ORG, "--id", "flush-dns",
                  "--approver", "ada@jsclient.example")):  # fmt: skip
        done = subprocess.run(
            [*AUXILIO, "admin", "runbooks", *args, "--data-dir", str(web_data_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    home = tmp_path / "person-home"
    home.mkdir()
    device = tmp_path / "device"
    device.mkdir()
    log = os.urandom(600_000)  # three chunks
    (device / "printer.log").write_bytes(log)
    upload = tmp_path / "fix.conf"
    upload.write_text("[printer]\nqueue = reset\n")
    live = start_live_page(
        browser, harness, live_server, organisation,
        {"capabilities": ["chat", "files", "diagnostics", "runbooks"],
         "files_direction": "both", "runbooks": ["flush-dns"]},
        runbooks=[{"id": "flush-dns", "name": "Flush the DNS cache"}],
    )  # fmt: skip
    page = live.page
    agent = spawn_agent(live_server, live, tmp_path, home)
    try:
        for _ in range(4):  # chat, files, diagnostics, runbooks
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=60_000)

        page.fill("#files-path", str(device))
        page.click("#files-form button")
        entry = page.locator("#files-list button", has_text="printer.log")
        entry.wait_for()
        with page.expect_download() as download:
            entry.click()
        saved = tmp_path / "saved.log"
        download.value.save_as(saved)
        assert saved.read_bytes() == log
        assert hashlib.sha256(log).hexdigest() in page.locator("#files-status").inner_text()

        page.set_input_files("#files-upload-input", str(upload))
        page.fill("#files-upload-path", f"{device}/")
        page.click("#files-upload-form button")
        page.locator("#files-status", has_text="checked by the device").wait_for()
        assert (device / "fix.conf").read_text() == "[printer]\nqueue = reset\n"

        page.click("#diagnostics-form button")
        agent.expect("asks for this system report")
        agent.expect(r"Type y")
        agent.sendline("y")
        page.locator("#diagnostics-output", has_text="{").wait_for()
        assert json.loads(page.locator("#diagnostics-output").inner_text())

        page.select_option("#runbooks-select", "flush-dns")
        page.click("#runbooks-form button")
        agent.expect("wants to run an approved script")
        agent.expect(r"Type y")
        agent.sendline("y")
        page.locator("#runbooks-output", has_text="Exit code").wait_for(timeout=60_000)
        end_with_summary(live, live_server, agent, "Printer fixed from the browser.")
    finally:
        agent.close()
        harness.proxy = None
        page.context.close()


def test_the_consoles_live_page_drives_a_real_session(
    page: Any, login: Callable[..., None], live_server: str, organisation: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The console's own template (/console/sessions/{id}): the session cookie for /api/v1,
    a token from POST /web/ws-token, the page's CSP nonce for xterm."""
    ticket = _post(live_server, "/tickets", organisation["token"](organisation["person"]),
                   {"title": "The screen flickers", "category": "software"})  # fmt: skip
    login(page, organisation["technician"])
    page.goto(f"/console/tickets/{ticket['number']}")
    created = request_in_page(page, ticket["id"], ["chat", "terminal"])
    assert "join_code" in created, created
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    page.goto(f"/console/sessions/{created['id']}")
    page.locator("#decisions", has_text="attached").wait_for()
    live = Live(page, created["id"], created["join_code"], "", errors)
    agent = spawn_agent(live_server, live, tmp_path)
    try:
        for _ in range(2):
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=60_000)
        page.fill("#chat-input", "hola desde la consola")
        page.press("#chat-input", "Enter")
        agent.expect("hola desde la consola")
        page.locator("#terminal .xterm-helper-textarea").focus()
        page.keyboard.type("echo console-$((6*7))\n")
        page.locator("#terminal .xterm-rows", has_text="console-42").wait_for(timeout=30_000)
        # xterm's <style> elements carried the server's per-page nonce: its theme applies.
        colour = page.evaluate("""() => getComputedStyle(
            document.querySelector('#terminal .xterm-rows > div')).color""")  # fmt: skip
        assert colour == "rgb(232, 232, 232)"
        page.fill("#summary-input", "Fixed from the console page.")
        page.click("#end-form button")
        page.locator("#session-state[data-state=ended]").wait_for()
        page.locator("#decisions", has_text="Summary saved").wait_for()
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()
    assert errors == []
    assert page.locator("#session-error").inner_text() == ""
