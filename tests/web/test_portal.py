"""The end-user portal and the join page in a real browser (issue 10, build 1).

An end user logs in, opens a ticket, sees it listed, comments, reads the policy in English and
Spanish; the join page with and without a code; another person's ticket is a 404; axe-core on
each page; a ticket opened with the keyboard only; and, across real processes, a support
session's report and consent receipt read in the portal after a real agent took part.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pexpect
import pytest
from babel.dates import format_datetime

from auxilio.policy import compile_policy, load_template, parse_policy
from auxilio.protocol.report import (
    CapabilityUse,
    FileFacts,
    RunbookRunNote,
    SessionReport,
    render_lines,
)
from auxilio.protocol.types import Capability
from auxilio.server.web.portal import normalise_code
from auxilio.server.web.portal_ticket import report_rows
from tests.e2e.conftest import AUXILIO
from tests.e2e.test_support_session_e2e import JOIN_CODE
from tests.web.conftest import Person, describe, join_in_terminal

# Without Playwright the browser tests skip (conftest); the others still run.
with contextlib.suppress(ImportError):
    from playwright.sync_api import Page, expect

Login = Callable[..., None]
Axe = Callable[["Page"], list[Any]]
Shot = Callable[["Page", str], Any]


def open_ticket_over_api(server: str, token: str, title: str) -> dict[str, Any]:
    done = httpx.post(f"{server}/api/v1/tickets", json={"title": title, "category": "software"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
    assert done.status_code == 201, done.text
    return dict(done.json())


def assert_accessible(page: Page, axe: Axe) -> None:
    violations = axe(page)
    assert not violations, describe(violations)


# ---- tickets ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_an_end_user_opens_a_ticket_sees_it_listed_and_comments(
    page: Page, people: dict[str, Person], login: Login, axe: Axe, screenshot: Shot
) -> None:
    login(page, people["end_user"])
    page.goto("/portal")
    expect(page.get_by_role("heading", name="My tickets", level=1)).to_be_visible()
    page.get_by_label("Title").fill("The scanner does not scan")
    page.get_by_label("Description").fill("Since Monday.\nThe light blinks twice.")
    page.get_by_label("Category").select_option("hardware")
    page.get_by_role("button", name="Open the ticket").click()

    expect(page).to_have_url(re.compile(r"/portal/tickets/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("The scanner does not scan")
    expect(page.get_by_test_id("ticket-status")).to_have_text("New")
    page.get_by_label("Add a comment").fill("It also beeps.")
    page.get_by_role("button", name="Send the comment").click()
    history = page.get_by_test_id("history")
    expect(history).to_contain_text("Elena Usuaria wrote:")
    expect(history).to_contain_text("It also beeps.")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-ticket")

    page.get_by_role("link", name="Back to my tickets").click()
    row = page.get_by_test_id("my-tickets").get_by_role("row").filter(
        has_text="The scanner does not scan")
    expect(row).to_contain_text("New")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-tickets")


@pytest.mark.e2e
def test_a_ticket_without_a_title_shows_the_error_next_to_the_field(
    page: Page, people: dict[str, Person], login: Login, axe: Axe
) -> None:
    login(page, people["end_user"])
    page.goto("/portal")
    page.get_by_label("Description").fill("Kept when the form comes back.")
    page.get_by_role("button", name="Open the ticket").click()
    title = page.get_by_label("Title")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(title).to_have_accessible_description(re.compile("Give the ticket a short title"))
    expect(page.get_by_label("Description")).to_have_value("Kept when the form comes back.")
    assert "/portal" in page.url
    assert_accessible(page, axe)


@pytest.mark.e2e
def test_another_persons_ticket_is_not_found(
    page: Page, people: dict[str, Person], create_person: Callable[..., Person],
    api_token: Callable[[Person], str], live_server: str, login: Login,
) -> None:
    owner = create_person("owner.portal@web.example", "end_user", name="Olga Owner")
    ticket = open_ticket_over_api(live_server, api_token(owner), "Olga's private problem")
    login(page, people["end_user"])
    response = page.goto(f"/portal/tickets/{ticket['id']}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Ticket not found")
    assert "Olga" not in page.content()
    page.goto("/portal")
    expect(page.get_by_text("Olga's private problem")).to_have_count(0)
    comment = page.request.post(f"/portal/tickets/{ticket['id']}/comments",
                                form={"body": "hello", "csrf_token": csrf(page)})  # fmt: skip
    assert comment.status == 404


def csrf(page: Page) -> str:
    return str(page.locator('meta[name="csrf-token"]').get_attribute("content"))


@pytest.mark.e2e
def test_a_ticket_is_opened_with_the_keyboard_only(
    page: Page, people: dict[str, Person], api_token: Callable[[Person], str],
    live_server: str, login: Login,
) -> None:
    ticket = open_ticket_over_api(live_server, api_token(people["end_user"]), "Keyboard ticket")
    login(page, people["end_user"])
    page.goto("/portal")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Keyboard ticket":
            break
    else:
        pytest.fail("Tab never reached the ticket's link")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/portal/tickets/{ticket['id']}$"))
    # The comment form is reachable and sends with the keyboard too.
    page.get_by_label("Add a comment").focus()
    page.keyboard.type("Typed without a mouse.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("history")).to_contain_text("Typed without a mouse.")


@pytest.mark.e2e
def test_an_attachment_is_readable_and_dates_are_in_the_persons_language(
    page: Page, people: dict[str, Person], live_server: str,
    api_token: Callable[[Person], str], login: Login, axe: Axe,
) -> None:
    ticket = open_ticket_over_api(live_server, api_token(people["end_user"]), "Slow laptop")
    posted = httpx.post(
        f"{live_server}/api/v1/tickets/{ticket['id']}/attachments",
        json={"kind": "diagnostics", "name": "diagnostics-report.json",
              "content": '{"disk": {"free_gb": 3}, "cpu": "busy"}'},
        headers={"Authorization": f"Bearer {api_token(people['technician'])}"}, timeout=60,
    )  # fmt: skip
    assert posted.status_code == 201, posted.text
    login(page, people["end_user"])
    page.get_by_role("button", name="Español").click()
    page.goto("/portal")
    shown = format_datetime(datetime.fromisoformat(ticket["updated_at"]), format="medium",
                            tzinfo=ZoneInfo("UTC"), locale="es")  # fmt: skip
    row = page.get_by_role("row").filter(has_text="Slow laptop")
    expect(row).to_contain_text(shown)
    expect(row).to_contain_text("Nuevo")
    row.get_by_role("link", name="Slow laptop").click()
    page.get_by_role("link", name="diagnostics-report.json").click()
    content = page.get_by_test_id("attachment-content")
    expect(content).to_contain_text('"free_gb": 3')
    expect(page.get_by_text("Informe de diagnóstico")).to_be_visible()
    assert_accessible(page, axe)


@pytest.mark.e2e
def test_dates_are_in_the_browsers_time_zone(
    new_page: Callable[..., Page], people: dict[str, Person], live_server: str,
    api_token: Callable[[Person], str], login: Login,
) -> None:
    ticket = open_ticket_over_api(live_server, api_token(people["end_user"]), "Clock ticket")
    page = new_page(locale="en-GB", timezone_id="America/Mexico_City")
    login(page, people["end_user"])
    page.goto("/portal")
    shown = format_datetime(datetime.fromisoformat(ticket["updated_at"]), format="medium",
                            tzinfo=ZoneInfo("America/Mexico_City"), locale="en")  # fmt: skip
    expect(page.get_by_role("row").filter(has_text="Clock ticket")).to_contain_text(shown)


@pytest.mark.e2e
def test_an_auditor_reads_a_ticket_in_the_portal_without_forms_to_change_anything(
    page: Page, people: dict[str, Person], live_server: str,
    api_token: Callable[[Person], str], login: Login,
) -> None:
    """Staff may read the portal too; the forms show only where the role may use them."""
    ticket = open_ticket_over_api(live_server, api_token(people["end_user"]), "Audited ticket")
    login(page, people["auditor"])
    page.goto("/portal")
    expect(page.get_by_role("heading", name="New ticket")).to_have_count(0)
    page.goto(f"/portal/tickets/{ticket['id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Audited ticket")
    expect(page.get_by_label("Add a comment")).to_have_count(0)


# ---- the policy ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_policy_page_says_what_the_active_policy_promises_in_english_and_spanish(
    page: Page, people: dict[str, Person], login: Login, axe: Axe, screenshot: Shot
) -> None:
    login(page, people["end_user"])
    page.goto("/portal/policy")
    expect(page.get_by_role("heading", name="What our support promises")).to_be_visible()
    # The default policy (the software-company template), word for word from its values.
    capabilities = page.get_by_test_id("policy-capabilities")
    expect(capabilities.locator('[data-capability="terminal"]')).to_contain_text(
        "allowed to senior technicians, supervisors")
    expect(capabilities.locator('[data-capability="terminal"]')).to_contain_text(
        "At most 30 minutes per session.")
    expect(capabilities.locator('[data-capability="chat"]')).to_contain_text(
        "without asking you first")
    expect(capabilities.locator('[data-capability="file_transfer"]')).to_contain_text(
        "At most 100 MB per file.")
    expect(capabilities.locator('[data-capability="runbooks"]')).to_contain_text(
        "clear-app-cache")
    sessions = page.get_by_test_id("policy-sessions")
    expect(sessions).to_contain_text("A session lasts at most 1 hour.")
    expect(sessions).to_contain_text("extended by up to 30 minutes (at most 1 time)")
    expect(sessions).to_contain_text("Every session is recorded.")
    expect(page.get_by_test_id("policy-consent")).to_contain_text(
        "If you do not answer within 2 minutes, the answer is no.")
    expect(page.get_by_test_id("policy-zones")).to_contain_text("Browser profiles")
    retention = page.get_by_test_id("policy-retention")
    expect(retention).to_contain_text("Session recordings: 90 days")
    expect(retention).to_contain_text("Audit log: 1825 days")
    expect(page.get_by_test_id("policy-hours")).to_contain_text("does not limit support")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-policy-en")

    page.get_by_role("button", name="Español").click()
    expect(page.get_by_role("heading", name="Lo que promete nuestro soporte")).to_be_visible()
    expect(page.get_by_test_id("policy-sessions")).to_contain_text(
        "Una sesión dura como máximo 1 hora.")
    expect(page.get_by_test_id("policy-retention")).to_contain_text("1825 días")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-policy-es")


# ---- joining ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_join_page_without_a_code_asks_for_it_and_with_one_gives_the_command(
    page: Page, live_server: str, axe: Axe, screenshot: Shot
) -> None:
    page.goto("/join")
    expect(page.get_by_role("heading", name="What will happen")).to_be_visible()
    expect(page.get_by_text("auxilio agent join CODE --server")).to_be_visible()
    assert_accessible(page, axe)
    field = page.get_by_label("Join code")
    field.fill("acd efh-jkm")
    field.press("Enter")
    expect(page).to_have_url(f"{live_server}/join/ACD-EFH-JKM")
    expect(page.locator("#join-command")).to_have_text(
        f"auxilio agent join ACD-EFH-JKM --server {live_server}")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-join")

    response = page.goto("/join/NOT-A-CODE")
    assert response is not None and response.status == 400
    expect(page.get_by_label("Join code")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#join-command")).to_have_count(0)
    assert_accessible(page, axe)


def test_a_join_code_is_checked_for_its_shape_only() -> None:
    assert normalise_code(" acd-efh-jkm ") == "ACD-EFH-JKM"
    assert normalise_code("ACDEFHJKM") == "ACD-EFH-JKM"
    # Look-alike letters are not in the alphabet; a wrong length is not a code.
    assert normalise_code("ACD-EFH-JK0") is None
    assert normalise_code("ACD-EFH-JKMM") is None
    assert normalise_code("") is None


# ---- the one report --------------------------------------------------------------------------


def test_the_portal_report_is_render_lines_field_by_field() -> None:
    report = SessionReport(
        support_session_id="3f0c", ticket_ref="#7 Printer", technician_name="Tomás",
        organisation_name="Web", state="ended",
        started_at=datetime(2026, 1, 2, 10, 0, tzinfo=UTC),
        ended_at=datetime(2026, 1, 2, 10, 42, 5, tzinfo=UTC), duration_seconds=2525,
        capabilities=(
            CapabilityUse(capability=Capability.CHAT, granted=True, used=True),
            CapabilityUse(capability=Capability.TERMINAL, granted=True, used=True,
                          revoked_at=datetime(2026, 1, 2, 10, 30, tzinfo=UTC),
                          revoked_by="end_user"),
            CapabilityUse(capability=Capability.FILES, granted=False, used=False),
        ),
        commands_run=3, files=FileFacts(read=1, read_bytes=10, written=2, written_bytes=30),
        zones_opened=("documents",), zones_refused=("mail",), diagnostics_sent=1,
        runbooks_run=(RunbookRunNote(runbook_id="flush-dns", exit_code=0),
                      RunbookRunNote(runbook_id="collect-logs")),
        recorded=True, ended_by="technician", end_reason="technician_ended",
        end_detail="done", summary_state="written", summary="Fixed the queue.",
    )  # fmt: skip
    rows = report_rows(report, _=lambda text: text, clock=lambda moment: moment.isoformat(),
                       label=lambda name: name)  # fmt: skip
    assert [f"{label}: {value}" for label, value in rows] == render_lines(report)


# ---- a real session, read in the portal ------------------------------------------------------

SESSION_ORG = "portal-sessions"


def record_trainings(server: str, admin_token: str, person: Person) -> None:
    """The default policy wants the privacy and approved-tools trainings of the technician."""
    for training in ("privacy", "approved-tools"):
        done = httpx.post(
            f"{server}/api/v1/users/{person.id}/trainings",
            json={"training_id": training, "title": training,
                  "completed_at": datetime.now(UTC).isoformat()},
            headers={"Authorization": f"Bearer {admin_token}"}, timeout=60,
        )  # fmt: skip
        assert done.status_code == 201, done.text


@pytest.mark.e2e
def test_the_person_reads_the_report_and_the_consent_receipt_of_a_real_session(
    page: Page, live_server: str, web_data_dir: Path, tmp_path: Path,
    create_person: Callable[..., Person], api_token: Callable[[Person], str], login: Login,
    axe: Axe, screenshot: Shot,
) -> None:
    """A technician's CLI and a real agent process (the person answers in its terminal prompt)
    hold a session on a ticket opened in the portal; the person then reads the session's one
    report, the receipt of what they were asked and answered, and the summary in the history."""
    person = create_person("ines@portal.example", "end_user", name="Inés Persona",
                           org=SESSION_ORG)  # fmt: skip
    senior = create_person("samuel@portal.example", "senior_technician", name="Samuel Soporte",
                           org=SESSION_ORG, skills="software")  # fmt: skip
    admin = create_person("ana@portal.example", "admin", name="Ana Admin", org=SESSION_ORG,
                          skills="")
    record_trainings(live_server, api_token(admin), senior)
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", SESSION_ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout

    login(page, person)
    page.goto("/portal")
    page.get_by_label("Title").fill("Mail does not sync")
    page.get_by_role("button", name="Open the ticket").click()
    expect(page).to_have_url(re.compile(r"/portal/tickets/[0-9a-f-]{36}$"))
    ticket_url = page.url
    number = re.search(r"#(\d+)", page.get_by_role("heading", level=1).inner_text())
    assert number is not None

    client_env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "client-config")}
    logged_in = subprocess.run(
        [*AUXILIO, "login", "--server", live_server, "--email", senior.email, "--org",
         SESSION_ORG, "--password-stdin", "--totp-code", senior.next_code()],
        input=senior.password + "\n", capture_output=True, text=True, timeout=60,
        env=client_env, check=False,
    )  # fmt: skip
    assert logged_in.returncode == 0, logged_in.stderr + logged_in.stdout
    technician = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", number.group(1), "-c", "chat", "-c", "terminal",
         "--send", "chat:hello from support", "--send", "expect:thanks", "--send", "end",
         "--summary", "Re-created the mail profile."],
        env=client_env, encoding="utf-8", timeout=60,
    )  # fmt: skip
    technician.expect(JOIN_CODE)
    agent = join_in_terminal(technician.match.group(1), live_server, tmp_path / "agent-state")
    answers = {"chat": "y", "terminal": "n"}
    while agent.expect([r"Allow (\w+)\? \[y/n\]", "hello from support"]) == 0:
        agent.sendline(answers[agent.match.group(1)])
    agent.sendline("thanks")
    technician.expect("summary saved")
    technician.expect(pexpect.EOF)
    agent.expect(pexpect.EOF)

    page.goto(ticket_url)
    session = page.get_by_test_id("session")
    expect(session).to_have_count(1)
    expect(session).to_contain_text("Session with Samuel Soporte · Finished")
    report = session.get_by_test_id("report")
    for label, value in (
        ("Technician", f"Samuel Soporte ({SESSION_ORG})"), ("Capabilities granted", "Chat"),
        ("Capabilities used", "Chat"), ("Commands run", "0"), ("Recorded", "yes"),
        ("End reason", "technician_ended (by technician)"),
        ("Summary", "Re-created the mail profile."),
    ):  # fmt: skip
        expect(report.locator("dt", has_text=label).locator("xpath=following-sibling::dd[1]")
               ).to_have_text(value)  # fmt: skip
    expect(report.locator("dt")).to_have_count(16)
    receipt = session.get_by_test_id("receipt")
    expect(receipt).to_contain_text("Your device's signature on this receipt checks out.")
    expect(receipt.get_by_role("row", name="Chat allowed")).to_be_visible()
    expect(receipt.get_by_role("row", name="Terminal refused")).to_be_visible()
    expect(receipt.locator("blockquote")).to_contain_text("Samuel Soporte")
    history = page.get_by_test_id("history")
    expect(history).to_contain_text("Samuel Soporte changed the status from New to Open.")
    expect(history).to_contain_text("Re-created the mail profile.")
    assert_accessible(page, axe)
    screenshot(page, "web-portal-session")

    page.get_by_role("button", name="Español").click()
    expect(page.get_by_test_id("report").locator("dt").first).to_have_text("Sesión de soporte")
    expect(page.get_by_test_id("receipt").get_by_role("row", name="Chat permitido")
           ).to_be_visible()  # fmt: skip


@pytest.mark.parametrize("template", ["software-company", "school", "strict-privacy",
                                      "managed-servers"])  # fmt: skip
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_policy_template_renders_in_plain_words(template: str, lang: str) -> None:
    """The page is generated from the model: each template's values appear, in both languages,
    and no placeholder or label is left untranslated."""
    active = compile_policy(parse_policy(load_template(template)))
    html = render_policy_page(active, lang)
    policy = active.policy
    assert policy.name in html
    for name in policy.capabilities.listed():
        assert f'data-capability="{name}"' in html
    if policy.support_hours is not None:
        assert policy.support_hours.timezone in html
        for holiday in policy.support_hours.holidays:
            assert holiday.name in html
    assert "%(" not in html and "{{" not in html


def test_the_school_policy_reads_in_spanish_with_its_hours_holidays_and_no_terminal() -> None:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render_policy_page(
        compile_policy(parse_policy(load_template("school"))), "es")))  # fmt: skip
    assert "Las horas son de la zona horaria America/Mexico_City." in text
    assert "lunes, martes, miércoles, jueves, viernes: 08:00-14:00, 15:00-18:00" in text
    assert "Navidad" in text
    assert "Fuera de este horario ningún técnico puede iniciar una sesión." in text
    assert "Terminal (órdenes en tu equipo): nunca, para nadie" in text


def render_policy_page(compiled: Any, lang: str) -> str:
    """The policy template as the route renders it, without a server."""
    from babel.dates import get_day_names

    from auxilio.server.web import i18n, portal_policy
    from auxilio.server.web.pages import environment

    class Url:
        path, query = "/portal/policy", ""

    class FakeRequest:
        url = Url()

    view = portal_policy.describe_policy(compiled, version_label="v1:test")
    names = get_day_names("wide", locale=lang)
    return environment(lang).get_template("web/portal/policy.html").render(
        request=FakeRequest(), policy=view, labels=portal_policy,
        duration_parts=portal_policy.duration_parts, size_parts=portal_policy.size_parts,
        day_names=[str(names[i]) for i in range(7)], csrf_field=lambda: "", languages={},
        locale=lang, nav=[], flashes=[], _formatters=i18n.Formatters(lang, i18n.zone("UTC")),
    )  # fmt: skip
