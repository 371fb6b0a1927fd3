"""The web console's journey end to end, in a real browser (issue 10, "Tests in a real browser").

The person opens a ticket in the portal; the technician takes it in the console and starts a
session; a real agent process joins and the person consents at its prompt; the technician types
in the browser terminal and sees the output; the two chat; the session ends with a summary; the
person reads the report in the portal. Two browser contexts (two people, two cookies), one real
`auxilio serve`, one real `auxilio agent join`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person
from tests.web.test_console import JOIN_CODE, record_trainings

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
Page = playwright.Page

pytestmark = pytest.mark.e2e
ORG = "journey"


def test_a_ticket_from_the_portal_is_helped_in_the_console_and_reported_back(
    new_page: Callable[..., Any], create_person: Callable[..., Person],
    api_token: Callable[[Person], str], live_server: str, web_data_dir: Path,
    login: Callable[..., None], tmp_path: Path, screenshot: Callable[..., Any],
) -> None:
    person = create_person("lucia@journey.example", "end_user", name="Lucía Gómez", org=ORG)
    senior = create_person("marta@journey.example", "senior_technician", name="Marta Soporte",
                           org=ORG, skills="software")  # fmt: skip
    admin = create_person("ines@journey.example", "admin", name="Inés Admin", org=ORG)
    record_trainings(live_server, api_token(admin), senior)
    keyed = subprocess.run(  # the default policy records sessions: the auditor key
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout

    # The person opens a ticket in the portal.
    portal = new_page()
    login(portal, person)
    portal.goto("/portal")
    portal.get_by_label("Title").fill("The office printer prints blank pages")
    portal.get_by_role("button", name="Open the ticket").click()
    expect(portal).to_have_url(re.compile(r"/portal/tickets/[0-9a-f-]{36}$"))
    ticket_url = portal.url
    heading = portal.get_by_role("heading", level=1).inner_text()
    number = re.search(r"#(\d+)", heading)
    assert number is not None, heading

    # The technician finds it in the queue and starts a session with chat and terminal.
    console = new_page()
    login(console, senior)
    console.goto("/console")
    row = console.locator("#queue tbody tr", has_text="The office printer prints blank pages")
    expect(row).to_have_count(1)
    row.get_by_role("link").first.click()
    expect(console).to_have_url(re.compile(rf"/console/tickets/{number.group(1)}$"))
    console.get_by_label("Terminal", exact=True).check()
    console.get_by_label("Terminal shell").select_option("bash")
    console.get_by_role("button", name="Start the session").click()
    expect(console.locator("#start-join-code")).to_have_text(JOIN_CODE)
    code = console.locator("#start-join-code").inner_text()
    console.get_by_role("link", name="Open the live session").click()
    expect(console.locator("#session-state")).to_contain_text("Waiting for the person to join")

    # A real agent joins with the code the technician read out; the person consents.
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", live_server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal", "--lang", "en"],
        encoding="utf-8", timeout=90, dimensions=(50, 200),
    )  # fmt: skip
    try:
        for _ in range(2):  # chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        expect(console.locator("#session-state")).to_have_text(
            "Active, end-to-end encrypted", timeout=30_000)  # fmt: skip
        # The technician types in the browser terminal and sees the device's output.
        console.locator("#terminal .xterm").click()
        console.keyboard.type("echo journey-$((6*7))\n")
        expect(console.locator("#terminal")).to_contain_text("journey-42", timeout=20_000)
        agent.expect("Technician ran: echo journey")
        # They chat, both ways.
        console.get_by_label("Message").fill("I cleaned the print queue; try again please")
        console.get_by_label("Message").press("Enter")
        agent.expect("I cleaned the print queue")
        agent.sendline("It prints now, thank you")
        expect(console.locator("#chat-log")).to_contain_text("It prints now, thank you")
        # The end, with a summary.
        console.get_by_label("Summary of what was done (the person may see it)").fill(
            "Cleared a stuck job from the print queue."
        )
        console.get_by_role("button", name="End the session and save the summary").click()
        expect(console.locator("#session-state")).to_contain_text("Finished", timeout=20_000)
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()

    # The person reads the one report in the portal.
    portal.goto(ticket_url)
    session = portal.get_by_test_id("session")
    expect(session).to_have_count(1)
    expect(session).to_contain_text("Session with Marta Soporte · Finished")
    report = session.get_by_test_id("report")
    for label, value in (
        ("Capabilities granted", "Chat, Terminal"), ("Commands run", "1"),
        ("Summary", "Cleared a stuck job from the print queue."),
    ):  # fmt: skip
        expect(report.locator("dt", has_text=label).locator("xpath=following-sibling::dd[1]")
               ).to_have_text(value)  # fmt: skip
    screenshot(portal, "web-journey-report")
