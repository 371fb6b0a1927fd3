"""The web pages in a real browser: a live ``auxilio serve``, people of each role, Playwright.

One server per test session (``live_server``: its URL) on a free loopback port with a fresh data
directory (``web_data_dir``); people made with ``auxilio admin create-user`` as an administrator
would (``people``: one of each role, staff with TOTP already confirmed; ``create_person`` for
more). Playwright drives Debian's chromium (/usr/bin/chromium); each test gets a fresh browser
context (``page``: no cookies of another test). Helpers: ``login(page, person)`` through the real
login form, ``api_token(person)`` for set-up over REST, ``axe(page)`` (the serious and critical
axe-core violations), ``screenshot(page, name)`` into docs/screenshots/.

TOTP codes are accepted once (a step at or before the last one used never matches), so each
Person remembers the last step it spent and ``Person.next_code()`` takes a later one, waiting
for the clock when the window has none left.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pyotp
import pytest

from auxilio.server.web.session import SESSION_COOKIE
from tests.e2e.conftest import AUXILIO, PASSWORD, free_port

CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ORG = "web"
TOTP_PERIOD = 30
TOTP_WINDOW = 1
ROLES = ("end_user", "technician", "senior_technician", "supervisor", "admin", "auditor")
STAFF = frozenset(ROLES) - {"end_user"}

pytestmark = pytest.mark.e2e

try:
    from playwright.sync_api import Browser, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - the test extra brings it
    sync_playwright = None  # type: ignore[assignment]


@dataclass
class Person:
    email: str
    role: str
    name: str
    id: str
    org: str = ORG
    password: str = PASSWORD
    totp_secret: str | None = None
    last_step: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The session cookie and home page of this person's last form login (see the login fixture).
    signed_in: tuple[list[Any], str] | None = field(default=None, repr=False)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def next_code(self) -> str:
        """A TOTP code the server has not seen from this person yet."""
        assert self.totp_secret, f"{self.email} has no TOTP secret"
        totp = pyotp.TOTP(self.totp_secret)
        with self._lock:
            while True:
                current = int(time.time()) // TOTP_PERIOD
                # Not the oldest step of the window: it may expire between here and the server.
                first = current if self.last_step is None else max(current, self.last_step + 1)
                if first <= current + TOTP_WINDOW:
                    self.last_step = first
                    return str(totp.at(first * TOTP_PERIOD))
                time.sleep(max(0.1, (current + 1) * TOTP_PERIOD - time.time()))


def _create_user(
    data_dir: Path, email: str, role: str, *, name: str, org: str, extra: list[str]
) -> tuple[str, str | None]:
    done = subprocess.run(
        [*AUXILIO, "admin", "create-user", email, "--role", role, "--org", org, "--name", name,
         "--password-stdin", "--hours", "mon-sun 00:00-24:00", "--data-dir", str(data_dir),
         *extra],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    found = re.search(r"\(([0-9a-f-]{36})\)", done.stdout)
    assert found, done.stdout
    uri = next((ln for ln in done.stdout.splitlines() if ln.startswith("otpauth://")), None)
    return found.group(1), (str(pyotp.parse_uri(uri).secret) if uri else None)


@pytest.fixture(scope="session")
def web_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web") / "data"


@pytest.fixture(scope="session")
def web_server_env() -> dict[str, str]:
    """Extra AUXILIO_* settings of the session's server. Many browser logins come from one
    address in a short time, so the per-address login limit is raised here (the limit itself
    is tested with its own server in test_foundation.py)."""
    return {"AUXILIO_RATE_LOGIN_PER_ADDRESS_PER_MINUTE": "1000"}


_LOGS: dict[int, Path] = {}  # a server process's pid -> the file its output goes to


def _log_path(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}-server.log"


def start_server(data_dir: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
    """The server's output goes to a file beside its data directory, never to a pipe: nobody
    reads a pipe while the tests run, and once its 64 KiB buffer was full the server blocked on
    its next log line (the supervisor tests, run last, timed out)."""
    port = free_port()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = _log_path(data_dir).open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [*AUXILIO, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **env},
    )  # fmt: skip
    log.close()
    _LOGS[proc.pid] = _log_path(data_dir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    pytest.fail(f"server did not start: {_log_path(data_dir).read_text(encoding='utf-8')}")


def stop_server(proc: subprocess.Popen[str]) -> str:
    """Stop the server; its whole output."""
    proc.terminate()
    proc.wait(timeout=30)
    return _LOGS.pop(proc.pid).read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session")
def live_server(web_data_dir: Path, web_server_env: dict[str, str]) -> Iterator[str]:
    """The URL of a live ``auxilio serve`` on 127.0.0.1 (one for the whole test session)."""
    url, proc = start_server(web_data_dir, web_server_env)
    yield url
    log = stop_server(proc)
    assert "Traceback" not in log, log


def _api_login(server: str, person: Person) -> httpx.Response:
    body: dict[str, Any] = {"email": person.email, "password": person.password,
                            "organisation": person.org}  # fmt: skip
    if person.totp_secret:
        body["totp_code"] = person.next_code()
    return httpx.post(f"{server}/api/v1/auth/login", json=body, timeout=60)


@pytest.fixture(scope="session")
def create_person(live_server: str, web_data_dir: Path) -> Callable[..., Person]:
    """``create_person(email, role, name=..., org=..., skills="software", enrolled=True)``: a new
    account made with the CLI; staff get TOTP, confirmed by a first API login unless
    ``enrolled=False`` (their first login then completes the enrolment)."""

    def create(
        email: str,
        role: str,
        *,
        name: str | None = None,
        org: str = ORG,
        skills: str = "software,hardware,network",
        enrolled: bool = True,
    ) -> Person:
        extra = ["--skills", skills] if role in STAFF and skills else []
        display = name or email.split("@")[0].replace(".", " ").title()
        user_id, secret = _create_user(
            web_data_dir, email, role, name=display, org=org, extra=extra
        )
        person = Person(email=email, role=role, name=display, id=user_id, org=org,
                        totp_secret=secret)  # fmt: skip
        if secret and enrolled:
            done = _api_login(live_server, person)
            assert done.status_code == 200, done.text
            assert done.json()["recovery_codes"], done.text
        return person

    return create


@pytest.fixture(scope="session")
def people(create_person: Callable[..., Person]) -> dict[str, Person]:
    """One person of each role in organisation "web", keyed by role."""
    names = {
        "end_user": "Elena Usuaria", "technician": "Tomás Técnico",
        "senior_technician": "Sara Senior", "supervisor": "Silvia Supervisora",
        "admin": "Adrián Admin", "auditor": "Aurora Auditora",
    }  # fmt: skip
    return {
        role: create_person(f"{role.replace('_', '.')}@web.example", role, name=names[role])
        for role in ROLES
    }


@pytest.fixture(scope="session")
def api_token(live_server: str) -> Callable[[Person], str]:
    """A login token of ``person`` over the REST API, for set-up steps that need no browser."""

    def token(person: Person) -> str:
        done = _api_login(live_server, person)
        assert done.status_code == 200, done.text
        return str(done.json()["token"])

    return token


# Module scope, not session: while Playwright's sync API is active its event loop counts as
# running in this thread, and an async test run meanwhile (pytest-asyncio) could not start.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip("Playwright or /usr/bin/chromium is not installed")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
    )
    yield browser
    browser.close()


@pytest.fixture
def new_page(browser: Browser, live_server: str) -> Iterator[Callable[..., Page]]:
    """``new_page(locale="es-ES", timezone_id="Europe/Madrid")``: a page in a fresh context
    (another person at the same time, or another language)."""
    contexts = []

    def make(locale: str = "en-GB", timezone_id: str = "UTC", **options: Any) -> Page:
        context = browser.new_context(
            base_url=live_server, locale=locale, timezone_id=timezone_id,
            viewport={"width": 1280, "height": 860}, **options,
        )  # fmt: skip
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A page in a fresh browser context, English, UTC."""
    return new_page()


def login_with(page: Page, person: Person, *, code: str | None = None) -> None:
    """Log ``person`` in through the real login form."""
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    if person.totp_secret:
        page.get_by_label("Two-factor code").fill(code or person.next_code())
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


@pytest.fixture
def login() -> Callable[..., None]:
    """``login(page, person)``: log in through the form (English labels: call it before a
    language switch); the page then shows the person's home."""

    def do(page: Page, person: Person, *, code: str | None = None, fresh: bool = False) -> None:
        # A person with two-factor authentication who logged in through the form before is
        # signed in again with that session's cookie, as their browser would: the server takes
        # each TOTP step once, so a second form login within the step waited up to 30 s.
        # ``fresh=True`` (or a ``code``) always goes through the form, for a new session.
        if person.signed_in is not None and not fresh and code is None:
            cookies, home = person.signed_in
            page.context.add_cookies(cookies)
            page.goto(home)
            if "/login" not in page.url:
                return
            page.context.clear_cookies(name=SESSION_COOKIE)  # ended meanwhile (a logout)
        login_with(page, person, code=code)
        assert "/login" not in page.url, page.content()[:2000]
        if person.totp_secret:
            cookies = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
            person.signed_in = (cookies, page.url) if cookies else None

    return do


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """axe-core's violations of ``impacts`` on the page as it is now (vendored axe.min.js,
    injected with Playwright, which is not subject to the page's CSP)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # evaluate(), not add_script_tag(): an inline <script> is what the page's CSP forbids.
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await window.axe.run(document)")
    return [v for v in result["violations"] if v.get("impact") in impacts]


@pytest.fixture
def axe() -> Callable[[Page], list[Any]]:
    return axe_violations


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG as docs/screenshots/<name>.png (the README shows the current ones)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    return save_screenshot


def describe(violations: list[Any]) -> str:
    """axe violations as readable lines for an assertion message."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in violations
    )


def join_in_terminal(code: str, server: str, state_dir: Path) -> pexpect.spawn:
    """The person's agent joining with ``code`` in its terminal prompt (English, 200 columns)."""
    return pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", server, "--state-dir", str(state_dir),
         "--terminal", "--lang", "en"],
        encoding="utf-8", timeout=60, dimensions=(50, 200), env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
