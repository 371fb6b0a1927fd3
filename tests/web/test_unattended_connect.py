"""Starting an unattended session from the console in a real browser (docs/unattended.md): the
device enrolled and pre-authorised with the real agent (``auxilio agent enroll``, ``agent access
grant``, ``agent run``), the technician on ``/console/devices/{id}/connect`` picks the owner's
ticket and a capability the owner allowed; console.js makes the key and asks; no join code is
shown; the live page attaches, the device is offered the session and it becomes active with
nobody at the device."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person

playwright = pytest.importorskip("playwright.sync_api")
Page = playwright.Page
expect = playwright.expect

pytestmark = pytest.mark.e2e

ORG = "unattended-web"
POLICY = """
version: 1
name: Unattended web
consent: {required: true, timeout: 30s, on_timeout: deny}
capabilities:
  chat: {roles: [technician, senior_technician, supervisor], modes: [attended, unattended]}
  terminal: {roles: [technician, senior_technician, supervisor], shells: [bash, sh],
             modes: [attended, unattended]}
unattended:
  allowed_device_groups: [kiosks]
  owner_pre_authorisation: {required: true, window: 30d, scope: [chat, terminal]}
  ticket_required: true
sessions: {max_duration: 1h, warn_before: 5m, idle_timeout: 15m, recording: off}
staff: {mfa_required: true}
"""


def test_a_technician_starts_an_unattended_session_from_the_device_page(
    page: Page, live_server: str, create_person: Callable[..., Person],
    api_token: Callable[[Person], str], login: Callable[..., None], tmp_path: Path,
) -> None:
    owner = create_person("olga@unattended.example", "end_user", name="Olga Owner", org=ORG)
    senior = create_person("sam@unattended.example", "senior_technician", name="Sam Senior",
                           org=ORG, skills="software")  # fmt: skip
    admin = create_person("ana@unattended.example", "admin", name="Ana Admin", org=ORG)
    admin_headers = {"Authorization": f"Bearer {api_token(admin)}"}
    uploaded = httpx.post(f"{live_server}/api/v1/policies", headers=admin_headers, timeout=60,
                          json={"document": POLICY})
    assert uploaded.status_code == 201, uploaded.text
    assert httpx.post(f"{live_server}/api/v1/policies/{uploaded.json()['number']}/activate",
                      headers=admin_headers, timeout=60).status_code == 200
    senior_headers = {"Authorization": f"Bearer {api_token(senior)}"}
    made = httpx.post(f"{live_server}/api/v1/enrolment-tokens", headers=senior_headers,
                      timeout=60, json={"device_group": "kiosks", "owner_id": owner.id,
                                        "label": "kiosk", "expires_in_hours": 1})  # fmt: skip
    assert made.status_code == 201, made.text
    ticket = httpx.post(f"{live_server}/api/v1/tickets", timeout=60,
                        headers={"Authorization": f"Bearer {api_token(owner)}"},
                        json={"title": "The kiosk is frozen", "category": "software"})
    assert ticket.status_code == 201, ticket.text

    state_dir = tmp_path / "agent"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    def agent(*args: str) -> str:
        done = subprocess.run([*AUXILIO, "agent", *args, "--state-dir", str(state_dir)],
                              capture_output=True, text=True, timeout=60, env=env, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    enrolled = agent("enroll", "--server", live_server, "--token", made.json()["token"],
                     "--name", "kiosk-web", "--no-service")  # fmt: skip
    device_id = re.search(r"device ([0-9a-f-]{36})", enrolled).group(1)  # type: ignore[union-attr]
    agent("access", "grant", "--scope", "chat", "--days", "all", "--hours", "all", "--for", "1d",
          "--timezone", "UTC")
    log = (tmp_path / "agent-run.log").open("w", encoding="utf-8")
    service = subprocess.Popen([*AUXILIO, "agent", "run", "--no-window", "--state-dir",
                                str(state_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        login(page, senior)
        deadline = time.monotonic() + 30
        while True:  # the service connects and publishes the pre-authorisation
            page.goto(f"/console/devices/{device_id}/connect")
            if page.locator("#start-session-form").count() and page.locator(
                    "#device-online").count():
                break
            assert time.monotonic() < deadline, page.content()
            time.sleep(0.5)
        offered = page.locator("input[name=capabilities]")
        assert offered.evaluate_all("(all) => all.map((e) => e.value)") == ["chat"]
        expect(page.locator("#ticket")).to_contain_text("The kiosk is frozen")
        page.get_by_role("button", name="Start the session").click()
        live = page.locator("#start-live-link")
        expect(live).to_be_visible()
        expect(page.locator("#start-error")).to_be_hidden()
        live.click()
        expect(page).to_have_url(re.compile(r"/console/sessions/[0-9a-f-]{36}$"))
        expect(page.locator("#join-code-box")).to_be_hidden()
        expect(page.locator("#session-state")).to_contain_text("Active, end-to-end encrypted",
                                                               timeout=30_000)
        sid = page.url.rsplit("/", 1)[1]
        found = httpx.get(f"{live_server}/api/v1/support-sessions/{sid}", headers=senior_headers,
                          timeout=60).json()
        assert (found["mode"], found["state"], found["device_id"]) == ("unattended", "active",
                                                                       device_id)
    finally:
        service.terminate()
        service.wait(timeout=20)
        log.close()
