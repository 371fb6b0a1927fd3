"""The supervisor pages in a real browser: live sessions, extension approvals, audit, recordings.

The running support session is real: requested over REST by a technician of organisation
"web-sup", joined and consented by the test-only agent of tests/server/support_sessions/peers.py
over real WebSockets to the live server (their event loop runs in a thread of its own while the
browser acts). The technician's extension request then waits for an approver, as the default
policy says (sessions.extension.approver_role: senior_technician).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect

from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.protocol.types import Capability, ConsentDecision
from tests.e2e.conftest import AUXILIO
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, close_all
from tests.web.conftest import Person, describe

pytestmark = pytest.mark.e2e

ORG = "web-sup"
T = TypeVar("T")


class Loop:
    """An asyncio loop in a thread: the fake agent and technician stay connected (and answer)
    while the synchronous browser test goes on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class PublicKeyOnly:
    """What FakeAgent.verify needs of the server key: its public half (from /server-key)."""

    def __init__(self, encoded: str) -> None:
        self._public = decode_ed25519_public_key(encoded)

    def public_key(self) -> Any:
        return self._public


@dataclass
class Org:
    end_user: Person
    technician: Person
    supervisor: Person
    auditor: Person
    admin: Person


@pytest.fixture(scope="module")
def org(
    create_person: Callable[..., Person],
    api_token: Callable[[Person], str],
    live_server: str,
    web_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Org:
    people = Org(
        end_user=create_person(f"person@{ORG}.example", "end_user", name="Pedro Persona", org=ORG),
        technician=create_person(f"tech@{ORG}.example", "technician", name="Tina Tech", org=ORG),
        supervisor=create_person(f"sup@{ORG}.example", "supervisor", name="Sofía Sup", org=ORG),
        auditor=create_person(f"audit@{ORG}.example", "auditor", name="Aldo Auditor", org=ORG),
        admin=create_person(f"admin@{ORG}.example", "admin", name="Alba Admin", org=ORG),
    )
    headers = {"Authorization": f"Bearer {api_token(people.admin)}"}
    # The default policy requires these trainings of technicians, and recordings (a key).
    for training in ("privacy", "approved-tools"):
        done = httpx.post(
            f"{live_server}/api/v1/users/{people.technician.id}/trainings",
            json={"training_id": training, "title": training,
                  "completed_at": datetime.now(UTC).isoformat()},
            headers=headers, timeout=60,
        )  # fmt: skip
        assert done.status_code == 201, done.text
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path_factory.mktemp("auditor") / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    return people


@dataclass
class Running:
    support_session_id: str
    ticket_ref: str
    agent: FakeAgent
    technician: FakeTechnician
    technician_token: str


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.stop()


def _open_ticket(server: str, token: str, title: str) -> dict[str, Any]:
    done = httpx.post(
        f"{server}/api/v1/tickets", json={"title": title, "category": "software"},
        headers={"Authorization": f"Bearer {token}"}, timeout=60,
    )  # fmt: skip
    assert done.status_code == 201, done.text
    return dict(done.json())


async def _start(server: str, ticket_id: str, token: str) -> tuple[str, FakeAgent, FakeTechnician]:
    """Requested, attached, joined and consented: an active chat session."""
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        key = (await http.get("/api/v1/server-key")).json()["public_key"]
        technician = FakeTechnician(server)
        created = await http.post(
            "/api/v1/support-sessions", headers={"Authorization": f"Bearer {token}"},
            json={"ticket_id": ticket_id, "mode": "attended", "capabilities": ["chat"],
                  "technician_e2e_key": technician.public_key},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
    await technician.connect()
    await technician.attach(sid, token)
    await technician.expect_state("attached")
    agent = FakeAgent(server, capabilities=(Capability.CHAT, Capability.TERMINAL))
    await agent.connect()
    await agent.authenticate()
    await agent.join(created.json()["join_code"])
    agent.verify(PublicKeyOnly(key))  # type: ignore[arg-type]
    await agent.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await agent.expect_state("consented")
    await technician.expect_state("consented")
    return sid, agent, technician


@pytest.fixture
def running(loop: Loop, org: Org, live_server: str, api_token: Callable[[Person], str]) -> Running:
    ticket = _open_ticket(live_server, api_token(org.end_user), "The VPN drops every hour")
    token = api_token(org.technician)
    sid, agent, technician = loop.run(_start(live_server, str(ticket["id"]), token))
    return Running(sid, f"#{ticket['number']}", agent, technician, token)


def _ask_extension(server: str, running: Running, minutes: int, reason: str) -> None:
    done = httpx.post(
        f"{server}/api/v1/support-sessions/{running.support_session_id}/extensions",
        json={"minutes": minutes, "reason": reason},
        headers={"Authorization": f"Bearer {running.technician_token}"}, timeout=60,
    )  # fmt: skip
    assert done.status_code == 202, done.text  # waiting for an approver


def _minutes_left(page: Page) -> int:
    row = page.locator("#live-sessions tbody tr").first
    found = re.search(r"(\d+) minutes", row.inner_text())
    assert found, row.inner_text()
    return int(found.group(1))


def test_a_supervisor_refuses_then_approves_an_extension_and_the_end_moves(
    page: Page,
    login: Callable[..., None],
    org: Org,
    running: Running,
    loop: Loop,
    live_server: str,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    _ask_extension(live_server, running, 20, "the backup is still copying")
    login(page, org.supervisor)
    page.goto("/supervisor")
    live = page.locator("#live-sessions")
    expect(live).to_contain_text("In progress")
    expect(live).to_contain_text(org.technician.name)
    before = _minutes_left(page)
    pending = page.locator("#pending tbody tr")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("the backup is still copying")
    expect(pending).to_contain_text("20 minutes")
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "web-supervisor-live")

    page.get_by_role("button", name="Refuse the extension").click()
    expect(page.get_by_text("Refused: the session ends at its current time.")).to_be_visible()
    expect(page.locator("#pending-none")).to_be_visible()
    for peer in (running.technician, running.agent):
        refused = loop.run(peer.expect("session.extend.decision"))
        assert (refused.approved, refused.decided_by) == (False, "supervisor")

    _ask_extension(live_server, running, 20, "the backup needs a second pass")
    # The page polls: the new request appears without a reload.
    expect(page.locator("#pending tbody tr")).to_contain_text(
        "the backup needs a second pass", timeout=20_000
    )
    page.get_by_role("button", name="Approve the extension").click()
    expect(page.get_by_text("Approved: the person on the device is asked")).to_be_visible()
    offered = loop.run(running.agent.expect("session.extend.decision"))
    assert offered.approved and offered.grant is not None
    # The end moves once the person accepts on the device, not before.
    assert _minutes_left(page) <= before
    key = httpx.get(f"{live_server}/api/v1/server-key").json()["public_key"]
    loop.run(running.agent.answer_extension(offered, ConsentDecision.GRANTED,
                                            server_key=PublicKeyOnly(key)))  # type: ignore[arg-type]  # fmt: skip
    loop.run(running.agent.expect_state("extended"))
    # The page's next poll shows the new end: 20 minutes more than before (less the time spent).
    deadline = time.monotonic() + 20
    while _minutes_left(page) < before + 15:
        assert time.monotonic() < deadline, page.locator("#live-sessions").inner_text()
        page.wait_for_timeout(500)


def test_the_live_sessions_refuse_an_end_user(
    page: Page, login: Callable[..., None], people: dict[str, Person]
) -> None:
    login(page, people["end_user"])
    response = page.goto("/supervisor")
    assert response is not None and response.status == 403


def test_an_auditor_finds_an_event_and_sees_the_chain_verified(
    page: Page,
    login: Callable[..., None],
    org: Org,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org.auditor)
    page.get_by_role("link", name="Supervisor").click()
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("#chain-status")).to_contain_text("Chain verified")
    page.get_by_label("Action").select_option("identity:user:created")
    page.get_by_label("Target").fill(org.technician.id)
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("identity:user:created")
    expect(rows).to_contain_text(org.technician.id)
    expect(page.locator("#audit-results caption")).to_have_text("1 matching event")
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "web-supervisor-audit")

    # By actor's name and by day: the auditor's own logins today.
    page.goto("/supervisor/audit")
    page.get_by_label("Action").select_option("identity:login:succeeded")
    page.get_by_label("Actor").fill("Aldo")
    today = datetime.now(UTC).date().isoformat()
    page.get_by_label("From (day").fill(today)
    page.get_by_label("To (day").fill(today)
    page.get_by_role("button", name="Search").click()
    expect(rows.first).to_contain_text("Aldo Auditor")
    page.get_by_label("From (day").fill("2001-01-01")
    page.get_by_label("To (day").fill("2001-01-02")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No event matches.")).to_be_visible()


def test_the_recordings_page_lists_the_recorded_sessions(
    page: Page,
    login: Callable[..., None],
    org: Org,
    running: Running,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org.auditor)
    page.goto("/supervisor/recordings")
    rows = page.locator("#recordings tbody tr")
    expect(rows.filter(has_text=running.support_session_id)).to_have_count(1)
    expect(rows.filter(has_text=running.support_session_id)).to_contain_text(org.technician.name)
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "web-supervisor-recordings")


def test_the_supervisor_page_works_by_keyboard(
    page: Page, login: Callable[..., None], org: Org, running: Running, live_server: str
) -> None:
    _ask_extension(live_server, running, 10, "keyboard only")
    login(page, org.supervisor)
    page.goto("/supervisor")
    approve = page.get_by_role("button", name="Approve the extension")
    for _ in range(40):
        page.keyboard.press("Tab")
        if approve.evaluate("b => b === document.activeElement"):
            break
    else:
        pytest.fail("the approve button is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Approved: the person on the device is asked")).to_be_visible()


def test_a_supervisor_ends_a_live_session_and_both_ends_are_told(
    page: Page, login: Callable[..., None], org: Org, running: Running, loop: Loop
) -> None:
    login(page, org.supervisor)
    page.goto("/supervisor")
    row = page.locator(f"#session-{running.support_session_id}")
    expect(row).to_contain_text("In progress")
    row.get_by_role("button", name="End session of").click()
    expect(page.get_by_text("The session was ended.")).to_be_visible()
    expect(page.locator(f"#session-{running.support_session_id}")).to_have_count(0)
    for peer in (running.agent, running.technician):
        ended = loop.run(peer.expect("session.end"))
        assert (ended.ended_by, ended.reason) == ("supervisor", "supervisor_ended")
