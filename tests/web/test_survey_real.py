"""The person's survey in a real browser (issue 14), after a real session between real processes.

The organisation's policy sends the survey as soon as a session ends (``delay: 0s``). A technician's
CLI and an agent process hold a chat session on the person's ticket; the person then finds the
survey on the ticket page of the portal, answers it on the survey page by keyboard (axe-core
finds nothing serious), sees the survey gone from the portal, the same link refused as already
answered, and the one answer counted in the KPIs the REST API gives a supervisor.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
from playwright.sync_api import Page, expect

from auxilio.policy import load_template
from tests.e2e.conftest import AUXILIO
from tests.e2e.test_support_session_e2e import JOIN_CODE
from tests.web.conftest import Person, describe, join_in_terminal
from tests.web.test_console import record_trainings, tab_to

pytestmark = pytest.mark.e2e
ORG = "survey-web"
SURVEY_RULE = "  survey: {scale: 1-5, delay: 10m, sampling: 1.0}\n"


def _api(server: str, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server}/api/v1{path}", timeout=60,
                         headers={"Authorization": f"Bearer {token}"}, **kwargs)  # fmt: skip


def _activate_survey_at_once(server: str, admin_token: str) -> None:
    template = load_template("software-company")
    assert SURVEY_RULE in template
    document = template.replace(SURVEY_RULE, "  survey: {scale: 1-5, delay: 0s, sampling: 1.0}\n")
    uploaded = _api(server, admin_token, "POST", "/policies",
                    json={"document": document, "comment": "the survey at once"})  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    done = _api(server, admin_token, "POST", f"/policies/{uploaded.json()['number']}/activate")
    assert done.status_code == 200, done.text


def _session(server: str, number: int, technician: Person, tmp_path: Path) -> None:
    """The technician's CLI connects for chat, says hello and ends; the person's agent allows."""
    client_env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "client-config")}
    logged_in = subprocess.run(
        [*AUXILIO, "login", "--server", server, "--email", technician.email, "--org", ORG,
         "--password-stdin", "--totp-code", technician.next_code()],
        input=technician.password + "\n", capture_output=True, text=True, timeout=60,
        env=client_env, check=False,
    )  # fmt: skip
    assert logged_in.returncode == 0, logged_in.stderr + logged_in.stdout
    cli = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(number), "-c", "chat",
         "--send", "chat:hello from support", "--send", "end", "--summary", "Reset the mailbox."],
        env=client_env, encoding="utf-8", timeout=60,
    )  # fmt: skip
    cli.expect(JOIN_CODE)
    agent = join_in_terminal(cli.match.group(1), server, tmp_path / "agent-state")
    while agent.expect([r"Allow (\w+)\? \[y/n\]", "hello from support"]) == 0:
        agent.sendline("y")
    cli.expect("summary saved")
    cli.expect(pexpect.EOF)
    agent.expect(pexpect.EOF)


def test_the_person_answers_the_survey_of_a_real_session_once_and_it_counts_once(
    page: Page, live_server: str, web_data_dir: Path, tmp_path: Path,
    create_person: Callable[..., Person], api_token: Callable[[Person], str],
    login: Callable[..., None], axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    person = create_person("marta@survey.example", "end_user", name="Marta Encuesta", org=ORG)
    technician = create_person("teo@survey.example", "senior_technician", name="Teo Soporte",
                               org=ORG, skills="software")  # fmt: skip
    admin = create_person("alba@survey.example", "admin", name="Alba Admin", org=ORG, skills="")
    supervisor = create_person("sol@survey.example", "supervisor", name="Sol Sup", org=ORG)
    admin_token = api_token(admin)
    record_trainings(live_server, admin_token, technician)
    _activate_survey_at_once(live_server, admin_token)
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    person_token = api_token(person)
    ticket = _api(live_server, person_token, "POST", "/tickets",
                  json={"title": "Mail will not send", "category": "software"})  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    ticket_id, number = ticket.json()["id"], ticket.json()["number"]

    _session(live_server, number, technician, tmp_path)

    # The portal's ticket page offers the survey of that session.
    login(page, person)
    page.goto(f"/portal/tickets/{ticket_id}")
    offered = page.get_by_test_id("pending-survey")
    expect(offered).to_have_count(1)
    expect(offered).to_have_text("A short survey about your support session")
    link = offered.get_attribute("href")
    assert link and "/survey/" in link
    offered.click()

    expect(page.get_by_role("heading", name="How did we do?", level=1)).to_be_visible()
    expect(page.get_by_test_id("survey")).to_contain_text(
        f"About the support session on ticket #{number}: Mail will not send"
    )
    violations = axe(page)
    assert not violations, describe(violations)
    # By keyboard: the first score, the arrow keys to 4, the comment, Send.
    tab_to(page, '[data-testid="survey-score-1"]')
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("survey-score-4")).to_be_checked()
    tab_to(page, '[data-testid="survey-comment"]')
    page.keyboard.type("Quick and kind.")
    screenshot(page, "web-survey")
    tab_to(page, '[data-testid="survey-send"]')
    page.keyboard.press("Enter")
    outcome = page.get_by_test_id("survey-outcome")
    expect(outcome.locator("[data-code]")).to_have_attribute("data-code", "survey.answered")

    # Gone from the portal; the same link again is refused, the answer kept as given.
    page.goto(f"/portal/tickets/{ticket_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Mail will not send")
    expect(page.get_by_test_id("pending-survey")).to_have_count(0)
    again = page.goto(link)
    assert again is not None and again.status == 409
    expect(outcome.locator("[data-code]")).to_have_attribute(
        "data-code", "survey.already_answered"
    )
    mine = _api(live_server, person_token, "GET", "/surveys/mine").json()
    assert [(s["state"], s["score"], s["comment"], s["answered_via"]) for s in mine] == [
        ("answered", 4, "Quick and kind.", "link")
    ]

    # Counted once in the KPIs a supervisor reads.
    today = datetime.now(UTC).date()
    period = {"start": today.isoformat(), "end": (today + timedelta(days=1)).isoformat()}
    supervisor_token = api_token(supervisor)
    report = _api(live_server, supervisor_token, "GET", "/reports/kpis", params=period)
    assert report.status_code == 200, report.text
    csat = report.json()["overall"]["kpis"]["csat"]
    assert (csat["n"], csat["value"]) == (1, 100.0)
    scores = _api(live_server, supervisor_token, "GET", "/reports/kpis/distributions",
                  params=period).json()["csat_scores"]  # fmt: skip
    assert {k: v for k, v in scores.items() if v} == {"4": 1}
