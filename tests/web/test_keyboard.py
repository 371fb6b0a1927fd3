"""Every page by the keyboard alone (issue 10: "every page works by keyboard").

For each main page of each role the test presses Tab from the top of the page until the focus
comes round again, and checks what a keyboard user meets: a skip link first that moves the focus
to the main content; every visible control reached, in document order (no positive tabindex
shuffling it); each with an accessible name (the browser's own, over the DevTools protocol) and
a visible focus indicator (a computed outline or box-shadow). Then the page's main actions are
done with Tab, Shift+Tab, Enter, Space and the arrows only, and their outcome is checked.

The people belong to organisation "kbd", so the other tests' tickets and policies stay apart.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import CDPSession, Page, expect

from auxilio.policy import load_template
from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person
from tests.web.test_supervisor import Loop, Running, _ask_extension, _start

pytestmark = pytest.mark.e2e

ORG = "kbd"
JOIN_CODE = re.compile(r"^[A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3}$")

# The walk's state lives in the page: each element met gets a number (a WeakMap, so the live
# pages' DOM updates during the walk neither renumber nor confuse it).
_START = """() => {
  window.__kbd = {ids: new WeakMap(), next: 0, prev: null};
  document.body.tabIndex = -1;  // start where a fresh page does: the document has the focus
  document.body.focus();
  document.body.removeAttribute("tabindex");
  window.scrollTo(0, 0);
}"""

# The focused element: its number, whether it comes after the one before it in the document,
# and how its focus shows.
_FOCUSED = """() => {
  const k = window.__kbd;
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  const known = k.ids.has(el);
  if (!known) k.ids.set(el, k.next++);
  const after = !k.prev || !k.prev.isConnected
    || !!(k.prev.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
  const same = k.prev === el;
  k.prev = el;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    id: k.ids.get(el), known, same, after,
    what: el.outerHTML.slice(0, 160),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
    visible: box.width > 0 && box.height > 0,
  };
}"""

# The controls a keyboard user must be able to reach, that the walk never focused: what is
# focusable and shown. Of a radio group only one button is a Tab stop (the arrows move within
# it), so a group is reached when any of its buttons was.
_MISSED = """() => {
  const k = window.__kbd;
  const all = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]")];
  const shown = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== "hidden";
  const reachedGroups = new Set(all.filter((el) => el.type === "radio" && k.ids.has(el))
    .map((el) => el.name));
  return all.filter((el) => !(el.disabled || el.tabIndex < 0 || !shown(el)
      || el.closest("[inert]") || k.ids.has(el)
      || (el.type === "radio" && reachedGroups.has(el.name))))
    .map((el) => el.outerHTML.slice(0, 160));
}"""


@dataclass
class Stop:
    what: str
    name: str
    after: bool
    indicated: bool
    visible: bool


def accessible_name(cdp: CDPSession) -> str:
    """The focused element's accessible name as Chromium computes it for assistive tech."""
    handle = cdp.send("Runtime.evaluate", {"expression": "document.activeElement"})
    tree = cdp.send(
        "Accessibility.getPartialAXTree",
        {"objectId": handle["result"]["objectId"], "fetchRelatives": False},
    )
    names = [n.get("name", {}).get("value", "") for n in tree["nodes"] if not n.get("ignored")]
    return str(names[0]).strip() if names else ""


def tab_stops(page: Page, limit: int = 250) -> list[Stop]:
    """Tab from the top of the page until the focus comes round to a stop seen before."""
    page.evaluate(_START)
    cdp = page.context.new_cdp_session(page)
    stops: list[Stop] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is None:
            continue  # past the last control: the browser's own UI, then the page again
        if focused["same"]:
            continue  # a date input's day, month and year are Tab stops of one element
        if focused["known"]:
            break
        stops.append(Stop(focused["what"], accessible_name(cdp), focused["after"],
                          focused["outline"] or focused["shadow"], focused["visible"]))  # fmt: skip
    else:
        raise AssertionError(f"the focus never came round after {limit} presses of Tab")
    cdp.detach()
    return stops


def check_page(page: Page) -> list[Stop]:
    """The keyboard walk of the page as it is now; fails on the first thing a keyboard user
    could not do. Returns the stops for the page's own checks."""
    # A positive tabindex takes its element out of document order (and the walk's start).
    jumping = page.evaluate(
        "() => [...document.querySelectorAll('[tabindex]')].filter((e) => e.tabIndex > 0)"
        ".map((e) => e.outerHTML.slice(0, 160))"
    )
    assert not jumping, f"a positive tabindex reorders Tab: {jumping}"
    stops = tab_stops(page)
    assert stops, "no control takes the focus"
    assert 'class="skip-link"' in stops[0].what, f"the first Tab stop is {stops[0].what}"
    out_of_order = [s.what for s in stops if not s.after]
    assert not out_of_order, f"Tab goes back up the page to: {out_of_order[:3]}"
    unnamed = [s.what for s in stops if not s.name]
    assert not unnamed, f"controls without an accessible name: {unnamed}"
    unmarked = [s.what for s in stops if not s.indicated]
    assert not unmarked, f"controls without a visible focus indicator: {unmarked}"
    hidden = [s.what for s in stops if not s.visible]
    assert not hidden, f"the focus lands on something not shown: {hidden}"
    missed = page.evaluate(_MISSED)
    assert not missed, f"controls Tab never reaches: {missed}"
    return stops


# ---- the walk itself: it finds what a keyboard user would trip over ---------------------------

_GOOD = """<!doctype html><html lang="en"><head><style>
:focus-visible { outline: 3px solid #c25400; }
</style></head><body><a class="skip-link" href="#main">Skip to main content</a>
<main id="main" tabindex="-1"><h1>A page</h1>%s</main></body></html>"""


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('<button style="outline: none">Save</button>', "without a visible focus indicator"),
        ('<button aria-label=""></button>', "without an accessible name"),
        (
            '<input aria-label="A"><button tabindex="1">First</button>',
            "a positive tabindex reorders Tab",
        ),
        (
            '<div tabindex="0" style="display: none">x</div><a href="/x" tabindex="-1">Hidden</a>'
            '<div role="button" tabindex="0">Go</div><span onclick="1" hidden></span>'
            '<button>Ok</button><div id="late"></div>',
            None,
        ),
    ],
    ids=["no-focus-ring", "no-name", "positive-tabindex", "good"],
)
def test_the_walk_finds_what_a_keyboard_user_would_trip_over(
    new_page: Callable[..., Page], body: str, problem: str | None
) -> None:
    page = new_page()
    page.set_content(_GOOD % body)
    if problem is None:
        stops = check_page(page)
        assert stops[0].name == "Skip to main content"
        assert len(stops) >= 2
    else:
        with pytest.raises(AssertionError, match=problem):
            check_page(page)


def test_the_walk_finds_a_control_the_tab_key_cannot_reach(new_page: Callable[..., Page]) -> None:
    page = new_page()
    # A control that takes no Tab stop (tabindex -1 on a native button is reachable by no key).
    page.set_content(_GOOD % '<button>Reached</button><a href="/x" tabindex="0">Also</a>'
                             '<summary tabindex="-1">Not counted</summary>')  # fmt: skip
    check_page(page)
    page.set_content(_GOOD % '<button>Reached</button><input id="x">')
    page.evaluate("() => document.getElementById('x').addEventListener('focus', (e) => "
                  "e.target.blur())")  # fmt: skip
    with pytest.raises(AssertionError, match="Tab never reaches"):
        check_page(page)


def skip_to_main(page: Page) -> None:
    """The skip link, by keyboard (Shift+Tab up to it): the focus lands on the main content."""
    if not page.evaluate("() => document.activeElement?.classList.contains('skip-link')"):
        tab_to(page, "a.skip-link", back=True)
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def tab_to(
    page: Page, selector: str, *, text: str = "", back: bool = False, limit: int = 120
) -> None:
    """Tab (or Shift+Tab) until an element matching ``selector`` (and holding ``text``) has
    the focus."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate(
            "([s, t]) => { const el = document.activeElement;"
            " return !!el && el.matches(s) && el.textContent.includes(t); }",
            [selector, text],
        ):
            return
    raise AssertionError(f"Tab never reached {selector} {text!r}")


def visit(page: Page, path: str) -> list[Stop]:
    """Open ``path`` and walk it by keyboard, skip link included."""
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    stops = check_page(page)
    skip_to_main(page)
    return stops


def keyboard_login(page: Page, person: Person) -> None:
    """The login form with the keyboard alone (the email field has the focus on arrival)."""
    page.goto("/login")
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(person.email)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    if person.totp_secret:
        page.keyboard.press("Tab")
        page.keyboard.type(person.next_code())
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(r"/login"))


# ---- people ----------------------------------------------------------------------------------


@dataclass
class Kbd:
    end_user: Person
    technician: Person
    supervisor: Person
    admin: Person
    auditor: Person


@pytest.fixture(scope="module")
def kbd(
    create_person: Callable[..., Person],
    api_token: Callable[[Person], str],
    live_server: str,
    web_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Kbd:
    """Organisation "kbd": a technician with the trainings the default policy asks for, and
    the auditor key its recordings need, so that a session can be started."""
    people = Kbd(
        end_user=create_person(f"person@{ORG}.example", "end_user", name="Paula Teclado", org=ORG),
        technician=create_person(f"tech@{ORG}.example", "technician", name="Teo Teclado", org=ORG,
                                 skills="software"),
        supervisor=create_person(f"sup@{ORG}.example", "supervisor", name="Susana Teclado",
                                 org=ORG),
        admin=create_person(f"admin@{ORG}.example", "admin", name="Alicia Teclado", org=ORG),
        auditor=create_person(f"audit@{ORG}.example", "auditor", name="Aurelio Teclado", org=ORG),
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {api_token(people.admin)}"}
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


def tickets_of(server: str, token: str) -> list[dict[str, Any]]:
    done = httpx.get(f"{server}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"},
                     timeout=60)  # fmt: skip
    assert done.status_code == 200, done.text
    return list(done.json()["items"])


# ---- login and the language switch -----------------------------------------------------------


def test_the_login_page_and_the_language_switch_by_keyboard(page: Page, kbd: Kbd) -> None:
    page.goto("/login")
    check_page(page)
    skip_to_main(page)
    english = page.locator("h1").inner_text()
    tab_to(page, 'form.lang-switch button[value="es"]', back=True)
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).not_to_have_text(english)
    check_page(page)
    tab_to(page, 'form.lang-switch button[value="en"]')
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text(english)
    keyboard_login(page, kbd.end_user)
    expect(page).to_have_url(re.compile(r"/portal$"))


# ---- the portal ------------------------------------------------------------------------------


def test_the_portal_by_keyboard(
    page: Page, kbd: Kbd, live_server: str, api_token: Callable[[Person], str]
) -> None:
    keyboard_login(page, kbd.end_user)
    visit(page, "/portal")
    # Open a ticket: type the title and description, pick the category with the arrows.
    tab_to(page, "#title")
    page.keyboard.type("The keyboard opens this ticket")
    page.keyboard.press("Tab")
    page.keyboard.type("Not a mouse in sight.")
    tab_to(page, "#category")
    before = page.locator("#category").input_value()
    page.keyboard.press("ArrowDown")
    category = page.locator("#category").input_value()
    assert category != before
    tab_to(page, "main button.primary")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portal/tickets/[0-9a-f-]{36}$"))
    expect(page.locator("h1")).to_contain_text("The keyboard opens this ticket")
    stored = [t for t in tickets_of(live_server, api_token(kbd.end_user))
              if t["title"] == "The keyboard opens this ticket"]  # fmt: skip
    assert len(stored) == 1 and stored[0]["category"] == category, stored

    visit(page, page.url.removeprefix(live_server))
    tab_to(page, "#comment-body")
    page.keyboard.type("A comment typed with the keyboard.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("history")).to_contain_text("A comment typed with the keyboard.")

    visit(page, "/portal/policy")
    visit(page, "/join")
    tab_to(page, "#join-code")
    page.keyboard.type("acd-efh-jkm")
    page.keyboard.press("Enter")
    expect(page.locator("#join-command")).to_contain_text("auxilio agent join ACD-EFH-JKM")
    check_page(page)

    # The language switch of a signed-in page: Spanish, and the page says so.
    page.goto("/portal")
    english = page.locator("h1").inner_text()
    tab_to(page, 'form.lang-switch button[value="es"]')
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1")).not_to_have_text(english)
    expect(page).to_have_url(re.compile(r"/portal$"))
    check_page(page)


# ---- the console -----------------------------------------------------------------------------


def test_the_console_by_keyboard(
    page: Page, kbd: Kbd, live_server: str, api_token: Callable[[Person], str]
) -> None:
    token = api_token(kbd.end_user)
    for title, category in (
        ("Console keyboard: printer", "software"),
        ("Console keyboard: cable", "hardware"),
    ):
        done = httpx.post(f"{live_server}/api/v1/tickets",
                          json={"title": title, "category": category},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
        assert done.status_code == 201, done.text
    keyboard_login(page, kbd.technician)
    visit(page, "/console")
    rows = page.locator("#queue tbody tr")
    total = rows.count()
    assert total >= 2
    tab_to(page, "#filter-skill")
    page.keyboard.press("ArrowDown")  # the first skill, "hardware"
    expect(page.locator("#filter-skill")).to_have_value("hardware")
    expect(rows.filter(has_text="Console keyboard: printer")).to_have_count(0)
    expect(rows.filter(has_text="Console keyboard: cable")).to_have_count(1)
    check_page(page)
    page.keyboard.press("Tab")  # leave the select before its value changes again
    tab_to(page, "#filter-skill", back=True)
    page.keyboard.press("ArrowUp")  # back to every skill
    expect(rows.filter(has_text="Console keyboard: printer")).to_have_count(1)

    tab_to(page, "#queue a", text="Console keyboard: printer")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/tickets/\d+$"))
    expect(page.locator("h1")).to_contain_text("Console keyboard: printer")
    visit(page, page.url.removeprefix(live_server))
    tab_to(page, "#comment-body")
    page.keyboard.type("Noted by keyboard.")
    tab_to(page, ".comment-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#history")).to_contain_text("Noted by keyboard.")

    # Start a session: the mode with the arrows, a capability with Space, then Enter.
    tab_to(page, "input[name=mode]:checked")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#mode-chat-only")).to_be_checked()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#mode-attended")).to_be_checked()
    tab_to(page, "#cap-diagnostics")
    page.keyboard.press("Space")
    expect(page.locator("#cap-diagnostics")).to_be_checked()
    tab_to(page, "#start-session")
    page.keyboard.press("Enter")
    expect(page.locator("#start-join-code")).to_have_text(JOIN_CODE)
    expect(page.locator("#sessions tbody tr")).to_have_count(1)
    ticket_id = page.locator("#start-session-form").get_attribute("data-ticket-id")
    found = httpx.get(f"{live_server}/api/v1/tickets/{ticket_id}/support-sessions",
                      headers={"Authorization": f"Bearer {api_token(kbd.technician)}"},
                      timeout=60).json()  # fmt: skip
    assert [s["requested_capabilities"] for s in found["items"]] == [["chat", "diagnostics"]]
    check_page(page)
    tab_to(page, "a", text="Open the live session")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/sessions/[0-9a-f-]{36}$"))
    # The extension form is enabled once the page's WebSocket is open; walked before that, it
    # was enabled behind the walk and counted as never reached (twice on a loaded CI machine).
    expect(page.locator("#extension-minutes")).to_be_enabled(timeout=30_000)
    check_page(page)


# ---- the supervisor --------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.stop()


def test_the_supervisor_pages_by_keyboard(
    page: Page, kbd: Kbd, loop: Loop, live_server: str, api_token: Callable[[Person], str]
) -> None:
    done = httpx.post(f"{live_server}/api/v1/tickets",
                      json={"title": "Supervised by keyboard", "category": "software"},
                      headers={"Authorization": f"Bearer {api_token(kbd.end_user)}"},
                      timeout=60)  # fmt: skip
    assert done.status_code == 201, done.text
    ticket = done.json()
    token = api_token(kbd.technician)
    sid, agent, technician = loop.run(_start(live_server, str(ticket["id"]), token))
    running = Running(sid, f"#{ticket['number']}", agent, technician, token)
    _ask_extension(live_server, running, 15, "refuse me")
    keyboard_login(page, kbd.supervisor)
    visit(page, "/supervisor")
    tab_to(page, "button.danger[aria-label^='Refuse the extension']")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Refused: the session ends at its current time.")).to_be_visible()
    check_page(page)

    _ask_extension(live_server, running, 10, "approve me")
    page.goto("/supervisor")
    tab_to(page, "button[aria-label^='Approve the extension']")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Approved: the person on the device is asked")).to_be_visible()


def test_the_audit_and_recordings_pages_by_keyboard(page: Page, kbd: Kbd) -> None:
    keyboard_login(page, kbd.auditor)
    visit(page, "/supervisor/audit")
    # The admin recorded the technician's trainings: search the events by that actor.
    tab_to(page, "#actor")
    page.keyboard.type(kbd.admin.name.split()[0])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/supervisor/audit\?.*actor=Alicia"))
    results = page.locator("#audit-results tbody tr")
    expect(results.first).to_contain_text(kbd.admin.name)
    texts = results.all_inner_texts()
    assert all(kbd.admin.name in text for text in texts), texts
    check_page(page)
    visit(page, "/supervisor/recordings")


# ---- the admin pages -------------------------------------------------------------------------


def test_the_admin_pages_by_keyboard(page: Page, kbd: Kbd) -> None:
    keyboard_login(page, kbd.admin)
    visit(page, "/admin/users")
    tab_to(page, "main a", text=kbd.technician.name)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/users/[0-9a-f-]{36}$"))
    expect(page.locator("h1")).to_contain_text(kbd.technician.name)
    check_page(page)
    skip_to_main(page)
    visit(page, "/admin/roles")
    visit(page, "/admin/skills")

    visit(page, "/admin/security")
    tab_to(page, "#token-name")
    page.keyboard.type("keyboard token")
    tab_to(page, "#token-days")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("row").filter(has_text="keyboard token")).to_have_count(1)
    check_page(page)

    visit(page, "/admin/policy")
    bad = load_template("software-company").replace("max_duration", "max_durashun", 1)
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "max_durashun" in text)
    # Typing 3 KB of YAML key by key is slow; the text is set, the rest is by keyboard.
    page.locator("#policy-document").evaluate("(a, text) => { a.value = text; }", bad)
    tab_to(page, "#validate")
    page.keyboard.press("Enter")
    error = page.locator("li.policy-error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text(f"Line {line}")
    expect(error).to_contain_text("policy.unknown_field")
    tab_to(page, "button.goto-line")
    page.keyboard.press("Enter")
    expect(page.locator("#policy-document")).to_be_focused()
    selected = page.locator("#policy-document").evaluate(
        "a => a.value.slice(a.selectionStart, a.selectionEnd)"
    )
    assert selected.startswith("max_durashun"), selected
    check_page(page)


def test_enrolment_and_the_recovery_codes_by_keyboard(
    page: Page, kbd: Kbd, api_token: Callable[[Person], str], live_server: str
) -> None:
    # Made over REST, so the first login must enrol: the QR page, then the recovery codes.
    email = f"enrol@{ORG}.example"
    made = httpx.post(
        f"{live_server}/api/v1/users",
        json={"email": email, "display_name": "Eva Teclado", "role": "technician",
              "password": kbd.admin.password},
        headers={"Authorization": f"Bearer {api_token(kbd.admin)}"}, timeout=60,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    newcomer = Person(email=email, role="technician", name="Eva Teclado",
                      id=made.json()["id"], org=ORG, password=kbd.admin.password)  # fmt: skip
    # The login form as keyboard_login fills it; the answer is the enrolment page (/login/enrol).
    page.goto("/login")
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(newcomer.email)
    page.keyboard.press("Tab")
    page.keyboard.type(newcomer.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    check_page(page)
    skip_to_main(page)
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    tab_to(page, "input#code")
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    # The code's check and the codes' hashing (argon2) take a while on a loaded machine.
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10, timeout=30_000)
    check_page(page)
    tab_to(page, "a.button", text="continue")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console"))
