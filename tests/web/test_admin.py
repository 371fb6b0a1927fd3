"""The admin pages in a real browser: users, roles, skills, the admin's tokens, the policy editor.

The tests that change an organisation's state (its active policy, its users) use an
organisation of their own, so the other web tests on the same server see the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from auxilio.policy import load_template
from tests.web.conftest import Person, describe

pytestmark = pytest.mark.e2e

BAD_FIELD = "max_durashun"


@pytest.fixture
def org_admin(create_person: Callable[..., Person], request: pytest.FixtureRequest) -> Person:
    """A new admin of organisation "web-admin" (its policy and users are this module's) for
    each test: a TOTP code is accepted once, so one person logging in again and again would
    wait for the clock."""
    name = request.node.name.removeprefix("test_")[:40].replace("_", "-")
    return create_person(f"{name}@web-admin.example", "admin", name="Ada Admin", org="web-admin")


def _no_serious_violations(page: Page, axe: Callable[[Page], list[Any]]) -> None:
    violations = axe(page)
    assert not violations, describe(violations)


def test_an_admin_creates_a_staff_user_with_role_skills_and_hours_then_deactivates_them(
    page: Page,
    login: Callable[..., None],
    org_admin: Person,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org_admin)
    page.goto("/admin/users")
    form = page.locator("form[action='/admin/users']")
    form.get_by_label("Email").fill("new.tech@web-admin.example")
    form.get_by_label("Name", exact=True).fill("Nuria Nueva")
    form.get_by_label("Role").select_option("technician")
    form.get_by_label("First password").fill("a long enough first password")
    form.get_by_label("Time zone").fill("Europe/Madrid")
    form.get_by_label("Skills").fill("Network, printers")
    form.get_by_label("Languages").fill("es, en")
    form.get_by_label("Monday").fill("09:00-13:00, 14:00-18:00")
    form.get_by_role("button", name="Create user").click()

    expect(page.get_by_role("status")).to_have_text("The user was created.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Nuria Nueva")
    expect(page.get_by_label("Skills")).to_have_value("network, printers")
    expect(page.get_by_label("Monday")).to_have_value("09:00-13:00, 14:00-18:00")
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-user")

    trainings = page.locator("form[action$='/trainings']")
    trainings.get_by_label("Training").fill("privacy")
    trainings.get_by_label("Title").fill("Privacy at work")
    trainings.get_by_label("Completed on").fill("2026-01-15")
    trainings.get_by_role("button", name="Record training").click()
    expect(page.get_by_role("cell", name="Privacy at work")).to_be_visible()

    page.get_by_role("button", name="Deactivate user").click()
    expect(page.locator("#user-status")).to_have_text("Deactivated")
    page.goto("/admin/users")
    row = page.get_by_role("row").filter(has_text="new.tech@web-admin.example")
    expect(row).to_contain_text("technician")
    expect(row).to_contain_text("network, printers")
    expect(row).to_contain_text("Deactivated")
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-users")


def test_a_refused_user_shows_the_reason_and_keeps_what_was_typed(
    page: Page, login: Callable[..., None], org_admin: Person
) -> None:
    login(page, org_admin)
    page.goto("/admin/users")
    form = page.locator("form[action='/admin/users']")
    form.get_by_label("Email").fill("short.password@web-admin.example")
    form.get_by_label("Name", exact=True).fill("Pablo Corto")
    # The browser's own minlength check would stop the form; the server's rule is the one tested.
    form.get_by_label("First password").evaluate("e => e.removeAttribute('minlength')")
    form.get_by_label("First password").fill("too short")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("#form-error")).to_contain_text("at least 12 characters")
    expect(form.get_by_label("Email")).to_have_value("short.password@web-admin.example")


def test_the_new_user_form_works_with_the_keyboard_alone(
    page: Page, login: Callable[..., None], org_admin: Person
) -> None:
    login(page, org_admin)
    page.goto("/admin/users")
    page.locator("#email").focus()
    page.keyboard.type("keyboard.only@web-admin.example")
    page.keyboard.press("Tab")
    page.keyboard.type("Karla Teclado")
    page.keyboard.press("Tab")  # the role: end user stays selected
    page.keyboard.press("Tab")
    page.keyboard.type("a long enough first password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Karla Teclado")


def test_the_roles_and_skills_pages_show_what_each_role_may_do_and_who_has_a_skill(
    page: Page,
    login: Callable[..., None],
    people: dict[str, Person],
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, people["admin"])
    page.goto("/admin/roles")
    row = page.get_by_role("row").filter(has_text="policy:manage")
    expect(row.get_by_role("cell")).to_have_text(["no", "no", "no", "no", "yes", "no"])
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-roles")
    page.goto("/admin/skills")
    expect(page.get_by_role("row").filter(has_text="network")).to_contain_text(
        people["technician"].name
    )
    _no_serious_violations(page, axe)


def test_an_admin_creates_uses_and_revokes_an_api_token(
    page: Page,
    login: Callable[..., None],
    org_admin: Person,
    live_server: str,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org_admin)
    page.goto("/admin/security")
    expect(page.get_by_text("Enrolled on")).to_be_visible()
    page.get_by_label("Token name").fill("backup script")
    page.get_by_label("Lifetime").select_option("7")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text()
    me = httpx.get(f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["email"] == org_admin.email
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-security")

    page.get_by_role("button", name="Revoke token backup script").click()
    expect(page.get_by_role("row").filter(has_text="backup script")).to_contain_text("Revoked")
    again = httpx.get(f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert again.status_code == 401


def test_an_admin_not_yet_enrolled_scans_the_qr_code_and_enrols(
    page: Page,
    login: Callable[..., None],
    create_person: Callable[..., Person],
    api_token: Callable[[Person], str],
    live_server: str,
) -> None:
    """Where the policy does not require two-factor, an admin may still enrol from the page."""
    first = create_person("admin@web-nomfa.example", "admin", name="Olga Admin", org="web-nomfa")
    headers = {"Authorization": f"Bearer {api_token(first)}"}
    optional = load_template("software-company").replace(
        "mfa_required: true", "mfa_required: false"
    )
    assert optional != load_template("software-company")
    body = {"document": optional, "comment": "two-factor optional"}
    uploaded = httpx.post(f"{live_server}/api/v1/policies", headers=headers, json=body)
    assert uploaded.status_code == 201, uploaded.text
    number = uploaded.json()["number"]
    activated = httpx.post(f"{live_server}/api/v1/policies/{number}/activate", headers=headers)
    assert activated.status_code == 200, activated.text
    created = create_person("later@web-nomfa.example", "admin", name="Luis Luego", org="web-nomfa",
                            enrolled=False)  # fmt: skip
    # The CLI's pending secret is not used: the page starts an enrolment of its own.
    later = Person(email=created.email, role="admin", name=created.name, id=created.id,
                   org="web-nomfa")  # fmt: skip
    login(page, later)
    page.goto("/admin/security")
    page.get_by_role("button", name="Enrol with an authenticator app").click()
    expect(page.locator("#totp-qr svg")).to_be_visible()
    uri = page.locator("#totp-qr code").inner_text()
    page.get_by_label("Code from the app").fill(pyotp.parse_uri(uri).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.goto("/admin/security")
    expect(page.get_by_text("Enrolled on")).to_be_visible()


# ---- the policy editor -----------------------------------------------------------------------


def _fill_document(page: Page, text: str) -> None:
    page.locator("#policy-document").fill(text)


def test_the_policy_editor_shows_each_error_at_its_line_and_jumps_there(
    page: Page,
    login: Callable[..., None],
    org_admin: Person,
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org_admin)
    page.goto("/admin/policy")
    good = load_template("software-company")
    bad = good.replace("max_duration", BAD_FIELD, 1)
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if BAD_FIELD in text)
    column = bad.splitlines()[line - 1].index(BAD_FIELD) + 1
    _fill_document(page, bad)
    page.get_by_role("button", name="Validate").click()

    error = page.locator("li.policy-error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text(f"Line {line}, column {column}")
    expect(error).to_contain_text(f'Unknown field "{BAD_FIELD}"')
    expect(error.locator("pre.source")).to_contain_text(BAD_FIELD)
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-policy-error")

    # The error's button puts the caret on that line of the text, by keyboard too.
    error.get_by_role("button").focus()
    page.keyboard.press("Enter")
    selected = page.locator("#policy-document").evaluate(
        "a => a.value.slice(a.selectionStart, a.selectionEnd)"
    )
    assert selected.startswith(BAD_FIELD), selected
    assert page.evaluate("document.activeElement.id") == "policy-document"

    # Saving a document with errors stores nothing and shows the same located error.
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("li.policy-error")).to_contain_text(f"Line {line}")
    expect(page.get_by_role("cell", name="No version stored yet", exact=False)).to_be_visible()


def test_the_policy_editor_diffs_simulates_saves_and_activates_a_good_version(
    page: Page,
    login: Callable[..., None],
    org_admin: Person,
    live_server: str,
    api_token: Callable[[Person], str],
    axe: Callable[[Page], list[Any]],
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org_admin)
    page.goto("/admin/policy")
    page.get_by_label("Start from a template").select_option("strict-privacy")
    page.get_by_role("button", name="Load template").click()
    expect(page.locator("#policy-document")).to_have_value(load_template("strict-privacy"))
    page.get_by_label("Start from a template").select_option("software-company")
    page.get_by_role("button", name="Load template").click()
    # The swap lands before the text is edited (else it would replace the edit).
    expect(page.locator("#policy-document")).to_have_value(load_template("software-company"))
    document = load_template("software-company") + "# reviewed by the web test\n"
    _fill_document(page, document)

    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#validation")).to_contain_text("The policy is valid")
    page.get_by_role("button", name="Diff against the active version").click()
    # One line added, nothing else: the text area's CRLF line ends do not reach the document.
    expect(page.locator("#policy-diff .added")).to_have_text(["+# reviewed by the web test"])
    expect(page.locator("#policy-diff .removed")).to_have_count(0)

    page.get_by_role("button", name="Simulate this request").click()
    decision = page.locator("#decision")
    expect(decision).to_be_visible()
    expect(page.locator("#policy-explain tbody tr").first).to_be_visible()
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("#policy-replay")).to_contain_text("Replayed:")

    page.get_by_label("What changed and why").fill("the template, reviewed")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#policy-saved")).to_contain_text("Saved as version 1")
    page.get_by_role("button", name="Activate v1").click()
    expect(page.locator("#policy-activated")).to_contain_text("Version 1 is now the active policy")
    expect(page.get_by_role("row").filter(has_text="the template, reviewed")).to_contain_text(
        "Active"
    )
    _no_serious_violations(page, axe)
    screenshot(page, "web-admin-policy")

    token = api_token(org_admin)
    active = httpx.get(f"{live_server}/api/v1/policies/active",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert active.status_code == 200
    assert active.json()["version_label"].startswith("v1:")
    assert active.json()["document"] == document

    page.get_by_role("link", name="v1").click()
    expect(page.locator("pre.diff")).to_contain_text("+# reviewed by the web test")
    _no_serious_violations(page, axe)


def test_the_admin_pages_refuse_a_technician(
    page: Page, login: Callable[..., None], people: dict[str, Person]
) -> None:
    login(page, people["technician"])
    for path in ("/admin/users", "/admin/policy", "/admin/security"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path


def test_the_admin_pages_speak_spanish(
    page: Page,
    login: Callable[..., None],
    org_admin: Person,
    live_server: str,
    screenshot: Callable[[Page, str], Any],
) -> None:
    login(page, org_admin)
    page.context.add_cookies([{"name": "auxilio_lang", "value": "es", "url": live_server}])
    page.goto("/admin/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Usuarios")
    expect(page.get_by_role("button", name="Crear usuario")).to_be_visible()
    expect(page.get_by_label("Lunes")).to_be_visible()
    page.goto("/admin/policy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Editor de la política")
    _fill_document(page, "name: x\nsessions: {max_durashun: 1h}\n")
    page.get_by_role("button", name="Validar").click()
    expect(page.locator("li.policy-error[data-column='12']")).to_contain_text("Línea 2, columna 12")
    screenshot(page, "web-admin-policy-es")


def test_an_admin_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    page: Page, login: Callable[..., None], org_admin: Person
) -> None:
    login(page, org_admin)
    # The browser's own cookies, as a page of another site would make it send them.
    form = {"email": "forged@web-admin.example", "display_name": "Forged", "role": "admin",
            "password": "a long enough forged password"}  # fmt: skip
    refused = page.request.post("/admin/users", form=form, max_redirects=0)
    assert refused.status == 403
    assert "csrf_failed" in refused.text() or "expired" in refused.text()
    page.goto("/admin/users")
    expect(page.get_by_role("row").filter(has_text="forged@web-admin.example")).to_have_count(0)
