"""The technician console in a real browser (issue 10, build 2).

A technician logs in with TOTP and sees the queue of their organisation (its own organisation
here, "console", so that other tests' tickets stay out of it); the filters (status, skill,
priority, "mine") narrow it without a reload, and a ticket opened meanwhile appears by itself.
The ticket page shows the history; "start a session" makes the key in the browser, asks the
server and shows the join code and link, or the policy's refusal with its rule; the live page
carries the data the live-session script needs. A senior technician takes a ticket, moves it
and adds a note. axe-core on each page, the keyboard alone for the queue, Spanish.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person, describe

playwright = pytest.importorskip("playwright.sync_api")
Page = playwright.Page
expect = playwright.expect

pytestmark = pytest.mark.e2e

ORG = "console"
JOIN_CODE = re.compile(r"^[A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3}$")
Login = Callable[..., None]
Axe = Callable[["Page"], list[Any]]
Shot = Callable[["Page", str], Any]


@dataclass
class ConsoleOrg:
    person: Person
    technician: Person  # skill software, trainings recorded
    untrained: Person  # skill account, no trainings
    senior: Person  # skill network
    tickets: dict[str, dict[str, Any]]  # by category: software, network, hardware


def open_ticket(
    server: str, token: str, title: str, category: str, priority: str
) -> dict[str, Any]:
    done = httpx.post(
        f"{server}/api/v1/tickets",
        json={"title": title, "category": category, "priority": priority},
        headers={"Authorization": f"Bearer {token}"}, timeout=60,
    )  # fmt: skip
    assert done.status_code == 201, done.text
    return dict(done.json())


def record_trainings(server: str, admin_token: str, person: Person) -> None:
    """The default policy requires the privacy and approved-tools trainings of technicians."""
    for training in ("privacy", "approved-tools"):
        done = httpx.post(
            f"{server}/api/v1/users/{person.id}/trainings",
            json={"training_id": training, "title": training,
                  "completed_at": datetime.now(UTC).isoformat()},
            headers={"Authorization": f"Bearer {admin_token}"}, timeout=60,
        )  # fmt: skip
        assert done.status_code == 201, done.text


@pytest.fixture(scope="module")
def console_org(
    live_server: str, web_data_dir: Path, create_person: Callable[..., Person],
    api_token: Callable[[Person], str], tmp_path_factory: pytest.TempPathFactory,
) -> ConsoleOrg:
    """An organisation of its own with three tickets: the software one routed to the
    technician (the only one with that skill), the network one to the senior technician, the
    hardware one to nobody. The default policy records every session, which needs the
    organisation's auditor key, and wants trainings of the technician who starts one."""
    person = create_person("elena@console.example", "end_user", name="Elena Pérez", org=ORG)
    technician = create_person("tomas@console.example", "technician", name="Tomás Ruiz",
                               org=ORG, skills="software")  # fmt: skip
    untrained = create_person("ursula@console.example", "technician", name="Úrsula Nueva",
                              org=ORG, skills="account")  # fmt: skip
    senior = create_person("sara@console.example", "senior_technician", name="Sara Senior",
                           org=ORG, skills="network")  # fmt: skip
    admin = create_person("adrian@console.example", "admin", name="Adrián Admin", org=ORG)
    admin_token = api_token(admin)
    record_trainings(live_server, admin_token, technician)
    record_trainings(live_server, admin_token, senior)
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path_factory.mktemp("auditor") / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    token = api_token(person)
    tickets = {
        "software": open_ticket(live_server, token, "The printer queue is stuck", "software",
                                "high"),
        "network": open_ticket(live_server, token, "Cannot reach the VPN", "network",
                               "critical"),
        "hardware": open_ticket(live_server, token, "The laptop fan is loud", "hardware", "low"),
    }  # fmt: skip
    assert tickets["software"]["assignee_id"] == technician.id
    assert tickets["network"]["assignee_id"] == senior.id
    assert tickets["hardware"]["assignee_id"] is None
    return ConsoleOrg(person=person, technician=technician, untrained=untrained, senior=senior,
                      tickets=tickets)  # fmt: skip


def assert_accessible(page: Page, axe: Axe) -> None:
    violations = axe(page)
    assert not violations, describe(violations)


def rows(page: Page) -> Any:
    return page.locator("#queue tbody tr")


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until ``selector`` has the focus (the keyboard alone, as a person would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


# ---- the queue -------------------------------------------------------------------------------


def test_the_queue_filters_and_updates_without_a_reload(
    page: Page, console_org: ConsoleOrg, live_server: str, login: Login, axe: Axe,
    screenshot: Shot, api_token: Callable[[Person], str],
) -> None:
    login(page, console_org.technician)
    page.goto("/console")
    expect(page.locator("#queue-count")).to_have_text("3 tickets in the queue")
    expect(rows(page)).to_have_count(3)
    # Most urgent first: critical, high, low.
    expect(rows(page).nth(0)).to_contain_text("Cannot reach the VPN")
    expect(rows(page).nth(2)).to_contain_text("The laptop fan is loud")
    expect(rows(page).nth(1)).to_contain_text("Tomás Ruiz")
    assert_accessible(page, axe)
    screenshot(page, "web-console-queue")

    page.evaluate("() => { window.sameDocument = true; }")
    page.get_by_label("Only tickets assigned to me").check()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("The printer queue is stuck")
    expect(page).to_have_url(re.compile(r"/console\?mine=1$"))
    page.get_by_label("Priority").select_option("critical")
    expect(page.locator("#queue .empty")).to_have_text("No ticket matches these filters.")
    page.get_by_label("Only tickets assigned to me").uncheck()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Cannot reach the VPN")
    page.get_by_label("Priority").select_option("")
    page.get_by_label("Skill").select_option("hardware")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Nobody")
    page.get_by_label("Skill").select_option("")
    page.get_by_label("Status").select_option("closed")
    expect(page.locator("#queue .empty")).to_be_visible()
    page.get_by_label("Status").select_option("new")
    expect(rows(page)).to_have_count(3)

    # A ticket opened now appears by itself: the page polls, and swaps rows only on a change.
    opened = open_ticket(live_server, api_token(console_org.person), "Outlook asks for the "
                         "password again", "account", "normal")  # fmt: skip
    expect(rows(page)).to_have_count(4, timeout=20_000)
    expect(page.locator(f'#queue tr[data-ticket="{opened["number"]}"]')).to_contain_text(
        "Outlook asks for the password again"
    )
    expect(page.locator("#queue-count")).to_have_text("4 tickets in the queue")
    assert page.evaluate("() => window.sameDocument === true"), "the page was reloaded"


def test_the_queue_fragment_is_204_while_nothing_changed(
    page: Page, console_org: ConsoleOrg, login: Login
) -> None:
    """The poll names the version it shows; the same version again is answered with no body,
    so htmx swaps nothing (focus and scroll stay)."""
    login(page, console_org.untrained)
    page.goto("/console?skill=network")
    poll = page.locator("#queue").get_attribute("hx-get")
    assert poll is not None and "skill=network" in poll and "v=" in poll
    same = page.request.get(poll)
    assert same.status == 204
    changed = page.request.get(re.sub(r"v=[0-9a-f]+", "v=0", poll))
    assert changed.status == 200 and "Cannot reach the VPN" in changed.text()


def test_the_queue_and_a_ticket_by_keyboard(
    page: Page, console_org: ConsoleOrg, login: Login
) -> None:
    login(page, console_org.untrained)
    page.goto("/console")
    expect(rows(page)).to_have_count(console_org_count(page))
    tab_to(page, "#filter-skill")
    page.keyboard.press("ArrowDown")  # the first skill, "hardware"
    expect(page.get_by_label("Skill")).to_have_value("hardware")
    expect(rows(page)).to_have_count(1)
    tab_to(page, "#filter-mine")
    page.keyboard.press("Space")
    expect(page.locator("#queue .empty")).to_be_visible()
    page.keyboard.press("Space")
    expect(rows(page)).to_have_count(1)
    tab_to(page, '#queue a[href^="/console/tickets/"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/tickets/\d+$"))
    expect(page.locator("h1")).to_contain_text("The laptop fan is loud")
    tab_to(page, "#comment-body")
    page.keyboard.type("Asked the person for the model number.")
    tab_to(page, ".comment-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#history")).to_contain_text("Asked the person for the model number.")


def console_org_count(page: Page) -> int:
    text = page.locator("#queue-count").inner_text()
    return int(text.split()[0])


# ---- the ticket and starting a session -------------------------------------------------------


def test_a_technician_starts_a_session_and_sees_the_join_code(
    page: Page, console_org: ConsoleOrg, live_server: str, login: Login, axe: Axe,
    screenshot: Shot, api_token: Callable[[Person], str],
) -> None:
    ticket = console_org.tickets["software"]
    login(page, console_org.technician)
    page.goto(f"/console/tickets/{ticket['number']}")
    expect(page.locator("h1")).to_have_text(f"#{ticket['number']} The printer queue is stuck")
    history = page.locator("#history")
    expect(history).to_contain_text("Elena Pérez opened the ticket")
    expect(history).to_contain_text("assigned it to Tomás Ruiz (automatically)")
    # Offered: what the default policy lists and agents deliver (remote control is "input";
    # not the clipboard, which no template lists).
    offered = page.locator("input[name=capabilities]")
    assert sorted(offered.evaluate_all("(all) => all.map((e) => e.value)")) == [
        "chat", "diagnostics", "files", "input", "runbooks", "screen", "terminal"]  # fmt: skip
    expect(page.locator("#start")).to_contain_text("The policy requires every session to be "
                                                   "recorded.")  # fmt: skip
    assert_accessible(page, axe)

    page.get_by_label("Files").check()
    page.get_by_label("File transfer direction").select_option("download")
    page.get_by_role("button", name="Start the session").click()
    code = page.locator("#start-join-code")
    expect(code).to_have_text(JOIN_CODE)
    join_code = code.inner_text()
    expect(page.locator("#start-join-link")).to_have_attribute(
        "href", f"{live_server}/join/{join_code}"
    )
    expect(page.locator("#start-error")).to_be_hidden()
    expect(page.locator("#sessions tbody tr")).to_have_count(1)  # the list follows, no reload
    expect(page.locator("#sessions tbody tr").first).to_contain_text("Requested")
    screenshot(page, "web-console-ticket")

    token = api_token(console_org.technician)
    found = httpx.get(f"{live_server}/api/v1/tickets/{ticket['id']}/support-sessions",
                      headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
    session = found["items"][0]
    assert session["state"] == "requested"
    assert session["requested_capabilities"] == ["chat", "files"]
    # The private key stays in the page's origin, in IndexedDB, not extractable.
    key = page.evaluate(
        """async (id) => {
            const { loadTechnicianKey } = await import("/static/js/e2e.js");
            const key = await loadTechnicianKey(id);
            return { extractable: key.privateKey.extractable,
                     algorithm: key.privateKey.algorithm.name, length: key.publicKey.length };
        }""",
        session["id"],
    )
    assert key == {"extractable": False, "algorithm": "X25519", "length": 43}

    page.get_by_role("link", name="Open the live session").click()
    expect(page).to_have_url(f"{live_server}/console/sessions/{session['id']}")
    expect(page.locator("#join-code")).to_have_text(join_code)
    decisions = page.locator("#decisions")
    expect(decisions).to_contain_text("Chat: allowed by capabilities.chat")
    expect(decisions).to_contain_text("Files: needs the person's consent by consent.required")
    data = json.loads(page.locator("#session-data").text_content() or "{}")
    server_key = httpx.get(f"{live_server}/api/v1/server-key", timeout=60).json()
    assert data["support_session_id"] == session["id"]
    assert data["server_public_key"] == server_key["public_key"]
    assert data["server_fingerprint"] == server_key["fingerprint"]
    texts = json.loads(page.locator("#session-texts").text_content() or "{}")
    assert texts["state.requested"] == "Waiting for the person to join"
    for element in ("chat-log", "chat-form", "files-form", "files-upload-form", "end-form",
                    "extension-form", "session-state", "time-left", "decisions"):
        expect(page.locator(f"#{element}")).to_have_count(1)
    expect(page.locator("#terminal")).to_have_count(0)  # not requested
    assert_accessible(page, axe)
    screenshot(page, "web-console-session")

    page.goto(f"/console/tickets/{ticket['number']}")
    expect(page.locator("#sessions tbody tr").first).to_contain_text("Chat, Files")


def test_a_refused_request_shows_the_decision_and_its_rule(
    page: Page, console_org: ConsoleOrg, login: Login, axe: Axe, screenshot: Shot
) -> None:
    ticket = console_org.tickets["hardware"]
    login(page, console_org.untrained)
    page.goto(f"/console/tickets/{ticket['number']}")
    expect(page.get_by_label("Terminal", exact=True).locator("..")).to_contain_text(
        "the policy lists it for: senior technician, supervisor"
    )
    # By keyboard: to the button, Enter; the refusal takes the focus (and is an alert).
    tab_to(page, "#start-session")
    page.keyboard.press("Enter")
    error = page.locator("#start-error")
    expect(error).to_be_visible()
    expect(error).to_be_focused()
    expect(error).to_have_text(
        "Denied by staff.trainings_required.privacy: the technician has no record of the "
        "training 'privacy'"
    )
    expect(page.locator("#start-result")).to_be_hidden()
    assert_accessible(page, axe)
    screenshot(page, "web-console-refused")
    # The refusal is kept: the ticket's sessions show the denied request with its rule.
    page.reload()
    denied = page.locator("#sessions tbody tr").first
    expect(denied).to_contain_text("Denied")
    expect(denied).to_contain_text("staff.trainings_required.privacy")


def test_a_capability_the_role_may_not_use_is_refused_by_its_rule(
    page: Page, console_org: ConsoleOrg, login: Login
) -> None:
    ticket = console_org.tickets["software"]
    login(page, console_org.technician)
    page.goto(f"/console/tickets/{ticket['number']}")
    page.get_by_label("Terminal", exact=True).check()
    page.get_by_label("Terminal shell").select_option("bash")
    page.get_by_role("button", name="Start the session").click()
    expect(page.locator("#start-error")).to_have_text(
        "Denied by capabilities.terminal.roles: a technician may not use terminal"
    )


# ---- staff actions ---------------------------------------------------------------------------


def test_a_senior_technician_takes_a_ticket_moves_it_and_adds_a_note(
    page: Page, console_org: ConsoleOrg, login: Login, axe: Axe
) -> None:
    ticket = console_org.tickets["hardware"]
    login(page, console_org.senior)
    page.goto(f"/console/tickets/{ticket['number']}")
    page.get_by_role("button", name="Take this ticket").click()
    expect(page.locator("#ticket-assignee")).to_have_text("Sara Senior")
    expect(page.locator("#history")).to_contain_text("Sara Senior assigned it to Sara Senior")
    expect(page.get_by_role("button", name="Take this ticket")).to_have_count(0)
    page.get_by_label("Move to").select_option("pending")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#history")).to_contain_text("moved it from New to Pending")
    page.get_by_label("Comment").fill("Waiting for the spare part.")
    page.get_by_label("Internal note (the person does not see it)").check()
    page.get_by_role("button", name="Add comment").click()
    note = page.locator("#history li", has_text="Waiting for the spare part.")
    expect(note).to_contain_text("internal note")
    assert_accessible(page, axe)
    # A move the state table does not have is refused with its code, changing nothing.
    answer = page.request.post(
        f"/console/tickets/{ticket['number']}/status",
        form={"to": "closed", "csrf_token": page.locator('meta[name="csrf-token"]')
              .get_attribute("content") or ""},
    )  # fmt: skip
    assert answer.status == 409, answer.status
    assert "illegal_transition" in answer.text()


def test_a_technician_may_not_assign(page: Page, console_org: ConsoleOrg, login: Login) -> None:
    """Assignment is ticket:assign (senior technicians and up): the page offers no form, and
    the route refuses a forged post."""
    ticket = console_org.tickets["network"]
    login(page, console_org.untrained)
    page.goto(f"/console/tickets/{ticket['number']}")
    expect(page.locator("#assignment")).to_have_count(0)
    answer = page.request.post(
        f"/console/tickets/{ticket['number']}/assign",
        form={"assignee": "me", "csrf_token": page.locator('meta[name="csrf-token"]')
              .get_attribute("content") or ""},
    )  # fmt: skip
    assert answer.status == 403


def test_an_end_user_cannot_open_the_console(
    page: Page, console_org: ConsoleOrg, login: Login
) -> None:
    login(page, console_org.person)
    answer = page.goto("/console")
    assert answer is not None and answer.status == 403


def test_the_console_in_spanish(
    page: Page, console_org: ConsoleOrg, login: Login, axe: Axe, screenshot: Shot
) -> None:
    login(page, console_org.senior)
    page.goto("/console")
    page.get_by_role("button", name="Español").click()
    expect(page.locator("h1")).to_have_text("Cola de tickets")
    expect(page.get_by_label("Solo los tickets asignados a mí")).to_be_visible()
    expect(page.locator("#queue-count")).to_contain_text("tickets en la cola")
    assert_accessible(page, axe)
    screenshot(page, "web-console-queue-es")
    page.goto(f"/console/tickets/{console_org.tickets['network']['number']}")
    expect(page.get_by_role("button", name="Iniciar la sesión")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("abrió el ticket")


# ---- the live session ------------------------------------------------------------------------


def csrf(page: Page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content") or ""


def test_the_ws_token_is_csrf_checked_and_narrow(
    page: Page, console_org: ConsoleOrg, live_server: str, login: Login
) -> None:
    """The live page's WebSocket token: only with the page's CSRF token, and good for nothing
    but support_session:request (not a login either: no page accepts it as a cookie)."""
    login(page, console_org.untrained)
    page.goto("/console")
    assert page.request.post("/web/ws-token").status == 403
    assert page.request.post("/web/ws-token", headers={"X-CSRF-Token": "0" * 64}).status == 403
    answer = page.request.post("/web/ws-token", headers={"X-CSRF-Token": csrf(page)})
    assert answer.status == 200
    assert answer.headers["cache-control"] == "no-store"
    token = answer.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    tickets = httpx.get(f"{live_server}/api/v1/tickets", headers=bearer, timeout=60)
    assert tickets.status_code == 403, tickets.text
    as_cookie = httpx.get(f"{live_server}/console", cookies={"auxilio_session": token},
                          timeout=60, follow_redirects=False)  # fmt: skip
    assert as_cookie.status_code == 303 and as_cookie.headers["location"].startswith("/login")


def test_the_live_page_with_a_real_agent_chat_and_terminal(
    page: Page, console_org: ConsoleOrg, live_server: str, login: Login,
    tmp_path: Path, screenshot: Shot,
) -> None:
    """The page this module serves, driven by live-session.js, against a real agent process:
    the person consents at its prompt, chat both ways, a command in the browser terminal."""
    ticket = console_org.tickets["network"]  # assigned to the senior technician
    login(page, console_org.senior)
    page.goto(f"/console/tickets/{ticket['number']}")
    page.get_by_label("Terminal", exact=True).check()
    page.get_by_label("Terminal shell").select_option("bash")
    page.get_by_role("button", name="Start the session").click()
    expect(page.locator("#start-join-code")).to_have_text(JOIN_CODE)
    code = page.locator("#start-join-code").inner_text()
    page.get_by_role("link", name="Open the live session").click()
    expect(page.locator("#session-state")).to_contain_text("Waiting for the person to join")
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", live_server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 160),
    )  # fmt: skip
    try:
        for _ in range(2):  # one question per capability: chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        expect(page.locator("#session-state")).to_have_text("Active, end-to-end encrypted",
                                                            timeout=30_000)  # fmt: skip
        page.get_by_label("Message").fill("hello from the console")
        page.get_by_label("Message").press("Enter")
        agent.expect("hello from the console")
        agent.sendline("hello from the person")
        expect(page.locator("#chat-log")).to_contain_text("hello from the person")
        page.locator("#terminal .xterm").click()
        page.keyboard.type("echo marker-$((6*7))\n")
        expect(page.locator("#terminal")).to_contain_text("marker-42", timeout=20_000)
        agent.expect("Technician ran: echo marker")
        page.get_by_label("Summary of what was done (the person may see it)").fill(
            "Reset the VPN profile."
        )
        page.get_by_role("button", name="End the session and save the summary").click()
        expect(page.locator("#session-state")).to_contain_text("Finished", timeout=20_000)
        expect(page.locator("#decisions")).to_contain_text("Summary saved")
        screenshot(page, "web-console-session-live")
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()
    page.goto(f"/console/tickets/{ticket['number']}")
    expect(page.locator("#sessions tbody tr").first).to_contain_text("Finished")
    expect(page.locator("#history")).to_contain_text("Reset the VPN profile.")
