"""The end-user portal and the join page in a real browser (issue 10, build 1).

An end user logs in, opens a ticket, sees it listed, comments, reads the policy in English and
Spanish; the join page with and without a code; another person's ticket is a 404; axe-core on
each page; a ticket opened with the keyboard only; and, across real processes, a support
session's report and consent receipt read in the portal after a real agent took part.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

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
from tests.web.conftest import Person, describe

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
