"""The web foundation in a real browser: login with TOTP, logout, languages, CSRF, CSP, a11y.

Everything runs against a live ``auxilio serve`` (tests/web/conftest.py) through Debian's
chromium; the few checks that need headers a browser does not show use Playwright's request
context of the same page (its cookies) or httpx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from auxilio.server.web import i18n, pages
from tests.e2e.conftest import PASSWORD
from tests.web.conftest import Person, describe, login_with, start_server, stop_server

pytestmark = pytest.mark.e2e

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover
    pytest.skip("Playwright is not installed", allow_module_level=True)


def cookie(page: Page, name: str) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == name), None)


def csrf_of(page: Page) -> str:
    return str(page.locator('meta[name="csrf-token"]').get_attribute("content"))


# ---- login -----------------------------------------------------------------------------------


def test_a_technician_logs_in_with_totp_and_the_cookie_is_locked_down(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    tech = people["technician"]
    login(page, tech)
    expect(page.get_by_test_id("person")).to_have_text(tech.name)
    expect(page.get_by_test_id("organisation")).to_have_text("web")
    session = cookie(page, "auxilio_session")
    assert session is not None
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    assert session["secure"] is False  # plain http on loopback; see the proxy test for https
    # Expires with the login token (12 h by default), not at the end of the browser session.
    assert session["expires"] > datetime.now(UTC).timestamp() + 11 * 3600
    # The cookie is the login token itself: the API accepts it (with the page's CSRF token).
    me = page.request.get("/api/v1/me", headers={"X-CSRF-Token": csrf_of(page)})
    assert me.status == 200, me.text()
    assert me.json()["email"] == tech.email


def test_a_wrong_code_is_refused_and_no_session_is_made(
    page: Page, people: dict[str, Person]
) -> None:
    tech = people["senior_technician"]
    right = pyotp.TOTP(tech.totp_secret or "").now()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    login_with(page, tech, code=wrong)
    expect(page.get_by_role("alert")).to_contain_text("The code is wrong")
    assert page.url.endswith("/login")
    assert cookie(page, "auxilio_session") is None
    # The email stays filled in; the password does not come back.
    expect(page.get_by_label("Email")).to_have_value(tech.email)
    expect(page.get_by_label("Password")).to_have_value("")


def test_staff_without_a_code_are_asked_for_it(page: Page, people: dict[str, Person]) -> None:
    tech = people["supervisor"]
    page.goto("/login")
    page.get_by_label("Email").fill(tech.email)
    page.get_by_label("Password").fill(tech.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter the code as well")
    expect(page.get_by_label("Two-factor code")).to_be_focused()
    assert cookie(page, "auxilio_session") is None


def test_an_end_user_without_two_factor_logs_in_with_the_password(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    person = people["end_user"]
    assert person.totp_secret is None
    login(page, person)
    expect(page.get_by_test_id("person")).to_have_text(person.name)


def test_a_first_login_confirms_the_pending_secret_and_shows_the_recovery_codes(
    page: Page, create_person: Callable[..., Person]
) -> None:
    tech = create_person("first.login@web.example", "technician", enrolled=False)
    login_with(page, tech)
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.get_by_test_id("recovery-codes").locator("li")
    expect(codes).to_have_count(10)
    recovery = codes.first.inner_text().strip()
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page.get_by_test_id("person")).to_have_text(tech.name)
    # A recovery code goes in the same field, once.
    page.get_by_role("button", name="Log out").click()
    login_with(page, tech, code=recovery)
    expect(page.get_by_test_id("person")).to_have_text(tech.name)
    page.get_by_role("button", name="Log out").click()
    login_with(page, tech, code=recovery)
    expect(page.get_by_role("alert")).to_contain_text("The code is wrong, expired or already used")


def test_staff_who_must_enrol_see_a_qr_code_and_then_their_recovery_codes(
    page: Page, people: dict[str, Person], api_token: Callable[[Person], str], live_server: str
) -> None:
    # Made over REST: no enrolment link was printed, so the first login must enrol.
    admin = people["admin"]
    made = httpx.post(
        f"{live_server}/api/v1/users",
        json={"email": "enrol.me@web.example", "display_name": "Enrique Enrol",
              "role": "technician", "password": PASSWORD},
        headers={"Authorization": f"Bearer {api_token(admin)}"}, timeout=60,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    page.goto("/login")
    page.get_by_label("Email").fill("enrol.me@web.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert str(qr.get_attribute("src")).startswith("data:image/svg+xml")
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    # A page other than enrolment is not reachable with the enrolment-only token.
    me = page.request.get("/api/v1/me", headers={"X-CSRF-Token": csrf_of(page)})
    assert me.status == 403 and me.json()["error"]["code"] == "mfa_enrolment_required"
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("The code is wrong or expired")
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    # Now a full session: the API answers with the new cookie.
    me = page.request.get("/api/v1/me", headers={"X-CSRF-Token": csrf_of(page)})
    assert me.status == 200, me.text()
    assert me.json()["mfa_enrolled"] is True


def test_logout_revokes_the_token_and_says_so(
    page: Page, people: dict[str, Person], login: Callable[..., None], live_server: str
) -> None:
    login(page, people["auditor"])
    secret = (cookie(page, "auxilio_session") or {})["value"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You have logged out.")
    assert page.url.endswith("/login")
    assert cookie(page, "auxilio_session") is None
    # The token the cookie held is revoked, not merely forgotten by this browser.
    gone = httpx.get(
        f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert gone.status_code == 401


def test_a_page_that_needs_a_login_sends_the_browser_to_the_login_form(page: Page) -> None:
    response = page.request.get("/logout", max_redirects=0)
    assert response.status == 405  # POST only
    page.goto("/login?next=//evil.example/")
    assert page.locator('form[action="/login"] input[name="next"]').get_attribute("value") == ""
    page.goto("/login?next=/console")
    assert page.locator('form[action="/login"] input[name="next"]').get_attribute("value") == (
        "/console"
    )


def test_home_goes_to_the_persons_area_when_it_exists(
    page: Page, people: dict[str, Person], login: Callable[..., None], live_server: str
) -> None:
    login(page, people["end_user"])
    page.goto("/")
    routes = {r["path"] for r in _openapi_paths(live_server)}
    if "/portal" in routes:
        assert page.url.rstrip("/").endswith("/portal")
    else:
        expect(page.get_by_role("heading", name="Auxilio")).to_be_visible()


def _openapi_paths(server: str) -> list[dict[str, str]]:
    # Page routes are not in the OpenAPI document; ask the pages themselves.
    found = []
    for path in ("/portal", "/console", "/supervisor", "/admin"):
        status = httpx.get(f"{server}{path}", timeout=30, follow_redirects=False).status_code
        if status != 404:
            found.append({"path": path})
    return found


def test_navigation_links_only_to_pages_that_exist(
    new_page: Callable[..., Page], people: dict[str, Person], login: Callable[..., None]
) -> None:
    for role in ("end_user", "technician", "admin"):
        page = new_page()
        login(page, people[role])
        page.goto("/login")  # any page with the layout: the login page sends a session home
        links = page.get_by_role("navigation", name="Main").get_by_role("link")
        for href in [links.nth(i).get_attribute("href") for i in range(links.count())]:
            assert page.request.get(str(href)).status == 200, (role, href)


# ---- languages and time zones ----------------------------------------------------------------


def test_the_language_switch_turns_the_page_spanish_and_back(
    page: Page, screenshot: Callable[[Page, str], Path]
) -> None:
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    screenshot(page, "web-login-en")
    page.get_by_role("button", name="Español").click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "es"
    expect(page.get_by_label("Contraseña")).to_be_visible()
    expect(page.get_by_role("link", name="Saltar al contenido principal")).to_be_attached()
    screenshot(page, "web-login-es")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "en"


def test_the_browser_language_is_the_default(new_page: Callable[..., Page]) -> None:
    page = new_page(locale="es-ES")
    page.goto("/login")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    page = new_page(locale="fr-FR")
    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_spanish_login_failure_is_in_spanish(
    new_page: Callable[..., Page], people: dict[str, Person]
) -> None:
    page = new_page(locale="es-ES")
    page.goto("/login")
    page.get_by_label("Correo electrónico").fill(people["end_user"].email)
    page.get_by_label("Contraseña").fill("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("El correo o la contraseña son incorrectos")


def test_the_browser_time_zone_is_remembered_for_dates(new_page: Callable[..., Page]) -> None:
    page = new_page(timezone_id="America/Mexico_City")
    page.goto("/login")
    page.wait_for_function("() => document.cookie.includes('auxilio_tz=')")
    tz = cookie(page, "auxilio_tz")
    assert tz is not None and tz["value"].replace("%2F", "/") == "America/Mexico_City"


def test_dates_and_numbers_follow_the_locale_and_time_zone() -> None:
    moment = datetime(2026, 3, 5, 23, 30, tzinfo=UTC)
    madrid = i18n.Formatters("es", i18n.zone("Europe/Madrid"))
    london = i18n.Formatters("en", i18n.zone("Europe/London"))
    assert madrid.date(moment) == "6 mar 2026"  # already the next day in Madrid
    assert "0:30" in madrid.datetime(moment)
    assert london.date(moment) == "Mar 5, 2026"  # "en" formats as CLDR's en (US)
    assert madrid.number(1234567.5, 1) == "1.234.567,5"
    assert london.number(1234567.5, 1) == "1,234,567.5"
    assert i18n.zone("Not/AZone").key == "UTC"
    assert i18n.negotiate(None, "de-DE, es;q=0.8, en;q=0.5") == "es"
    assert i18n.negotiate("en", "es") == "en"


# ---- CSRF ------------------------------------------------------------------------------------


def test_a_form_post_without_the_csrf_token_is_refused(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    login(page, people["technician"])
    refused = page.request.post("/logout", form={"next": "/"}, max_redirects=0)
    assert refused.status == 403
    assert 'data-code="csrf_failed"' in refused.text()
    # Still logged in: the refused logout did nothing.
    me = page.request.get("/api/v1/me", headers={"X-CSRF-Token": csrf_of(page)})
    assert me.status == 200


def test_another_sessions_csrf_token_is_refused(
    new_page: Callable[..., Page], people: dict[str, Person], login: Callable[..., None]
) -> None:
    mine, theirs = new_page(), new_page()
    login(mine, people["technician"], fresh=True)
    login(theirs, people["technician"], fresh=True)  # two sessions of one person
    foreign = csrf_of(theirs)
    assert foreign != csrf_of(mine)
    refused = mine.request.post("/logout", form={"csrf_token": foreign}, max_redirects=0)
    assert refused.status == 403 and 'data-code="csrf_failed"' in refused.text()
    api = mine.request.get("/api/v1/me", headers={"X-CSRF-Token": foreign})
    assert api.status == 403 and api.json()["error"]["code"] == "csrf_failed"
    done = mine.request.post("/logout", form={"csrf_token": csrf_of(mine)}, max_redirects=0)
    assert done.status == 303


def test_an_htmx_request_without_the_header_is_refused_and_htmx_sends_it(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    login(page, people["technician"])
    refused = page.request.post("/logout", headers={"HX-Request": "true"}, max_redirects=0)
    assert refused.status == 403
    token = csrf_of(page)
    with page.expect_request("**/logout") as sent:
        page.evaluate("() => htmx.ajax('POST', '/logout', {swap: 'none'})")
    assert sent.value.headers.get("x-csrf-token") == token
    page.wait_for_function(
        "async () => (await fetch('/api/v1/me')).status === 401", polling=200, timeout=10_000
    )


def test_the_api_wants_the_csrf_header_with_the_cookie(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    login(page, people["technician"])
    bare = page.request.get("/api/v1/me")
    assert bare.status == 403 and bare.json()["error"]["code"] == "csrf_failed"
    # fetch() from the page with the meta tag's token, as the pages' modules do.
    status = page.evaluate(
        """async () => (await fetch('/api/v1/me', {headers: {'X-CSRF-Token':
            document.querySelector('meta[name="csrf-token"]').content}})).status"""
    )
    assert status == 200


def test_the_login_form_itself_needs_its_csrf_token(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        refused = client.post("/login", data={"email": "a@b.c", "password": "x"})
        assert refused.status_code == 403 and 'data-code="csrf_failed"' in refused.text
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token
        tried = client.post(
            "/login", data={"email": "a@b.c", "password": "x", "csrf_token": token.group(1)}
        )
        assert tried.status_code == 401


# ---- headers, accessibility, keyboard --------------------------------------------------------


def test_pages_have_a_strict_csp_and_no_violations(page: Page) -> None:
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text))
    response = page.goto("/login")
    assert response is not None
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    nonce = page.locator('meta[name="csp-nonce"]').get_attribute("content")
    assert f"'nonce-{nonce}'" in directives["style-src"]
    # htmx and app.js ran (no CSP refusal): htmx is defined and the time zone cookie is set.
    page.wait_for_function("() => typeof htmx !== 'undefined' && htmx.version.startsWith('2.0')")
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_the_login_page_has_no_serious_accessibility_violations(
    new_page: Callable[..., Page], axe: Callable[[Page], list[Any]]
) -> None:
    for locale in ("en-GB", "es-ES"):
        page = new_page(locale=locale)
        page.goto("/login")
        violations = axe(page)
        assert not violations, describe(violations)


def test_the_error_page_has_a_working_skip_link_and_no_serious_violations(
    page: Page, axe: Callable[[Page], list[Any]]
) -> None:
    page.goto("/login")
    page.locator('form[action="/login"] input[name="csrf_token"]').evaluate("e => e.value = 'x'")
    page.get_by_label("Email").fill("a@b.c")
    page.get_by_label("Password").fill("x")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    violations = axe(page)
    assert not violations, describe(violations)
    # The first Tab stop is the skip link, shown when focused; Enter moves to the main landmark.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()


def test_the_login_form_works_with_the_keyboard_alone(
    page: Page, people: dict[str, Person]
) -> None:
    tech = people["technician"]
    page.goto("/login")
    # The email field has the focus at once; Tab walks the form in reading order.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(tech.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(tech.password)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Two-factor code")).to_be_focused()
    page.keyboard.type(tech.next_code())
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("person")).to_have_text(tech.name)
    # The focus ring is drawn (an outline) on a focused control.
    page.get_by_role("button", name="Log out").focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


# ---- the login limits and https --------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with a tiny login limit behind a "proxy" on loopback that says https."""
    env = {"AUXILIO_RATE_LOGIN_PER_ADDRESS_PER_MINUTE": "3", "AUXILIO_TRUSTED_PROXIES": "127.0.0.1"}
    url, proc = start_server(tmp_path_factory.mktemp("strict") / "data", env)
    yield url
    log = stop_server(proc)
    assert "Traceback" not in log, log


def test_web_logins_share_the_apis_rate_limit(strict_server: str) -> None:
    with httpx.Client(base_url=strict_server, timeout=30) as client:
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/login").text)
        assert token
        form = {"email": "nobody@web.example", "password": "x", "csrf_token": token.group(1)}
        statuses = [client.post("/login", data=form).status_code for _ in range(4)]
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3] == 429
        last = client.post("/login", data=form)
        assert "Too many attempts" in last.text
        # The API's own login counts in the same bucket.
        api = client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})
        assert api.status_code == 429


def test_cookies_are_secure_behind_a_trusted_https_proxy(strict_server: str) -> None:
    page = httpx.get(f"{strict_server}/login", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    set_cookie = page.headers["set-cookie"]
    assert "auxilio_pre=" in set_cookie
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie
    assert "samesite=strict" in set_cookie.lower()
    plain = httpx.get(f"{strict_server}/login", timeout=30)
    assert "Secure" not in plain.headers["set-cookie"]


def test_the_time_zone_cookie_is_read_decoded_and_junk_falls_back_to_utc() -> None:
    from starlette.requests import Request

    def zone_of(cookie: bytes) -> str:
        scope = {"type": "http", "headers": [(b"cookie", cookie)], "state": {}}
        return pages.time_zone(Request(scope))

    assert zone_of(b"auxilio_tz=America%2FMexico_City") == "America/Mexico_City"
    assert zone_of(b"auxilio_tz=Europe/Madrid") == "Europe/Madrid"
    assert zone_of(b"auxilio_tz=..%2F..%2Fetc%2Fpasswd") == "UTC"


def test_a_page_behind_a_login_redirects_and_htmx_is_told_where(
    page: Page, live_server: str
) -> None:
    plain = httpx.get(f"{live_server}/console", timeout=30)
    if plain.status_code == 404:
        pytest.skip("no console pages on this server")
    assert plain.status_code == 303
    assert plain.headers["location"] == "/login?next=%2Fconsole"
    htmx = httpx.get(f"{live_server}/console", headers={"HX-Request": "true"}, timeout=30)
    assert htmx.status_code == 204 and htmx.headers["hx-redirect"].startswith("/login")
    page.goto("/console")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.url.endswith("/login?next=%2Fconsole")


def test_a_page_the_role_may_not_use_answers_403_with_a_page(
    page: Page, people: dict[str, Person], login: Callable[..., None]
) -> None:
    login(page, people["end_user"])
    response = page.goto("/admin")
    assert response is not None
    if response.status == 404:
        pytest.skip("no admin pages on this server")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    # The layout still says who is logged in and offers only the person's own area.
    expect(page.get_by_test_id("person")).to_have_text(people["end_user"].name)
    nav = page.get_by_role("navigation", name="Main").get_by_role("link")
    assert "Admin" not in nav.all_inner_texts()
