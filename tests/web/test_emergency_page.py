"""Emergency mode in a real browser (Debian chromium): the supervisor declares an emergency from
the supervisor page (reason, confirmation, CSRF), the live session ends on the device with
reason emergency, every signed-in person of the organisation sees the banner (the person at
the device in Spanish), and lifting it takes the banner away. A supervisor the policy does not
name is refused by the rule."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person, describe
from tests.web.test_supervisor import Loop, _open_ticket, _start

pytestmark = pytest.mark.e2e

ORG = "web-emg"
REASON = "Ransomware on the file server"


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def people(
    create_person: Callable[..., Person], api_token: Callable[[Person], str], live_server: str,
    web_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Person]:
    found = {
        "end_user": create_person(f"person@{ORG}.example", "end_user", name="Paula Persona",
                                  org=ORG),
        "technician": create_person(f"tech@{ORG}.example", "technician", name="Toni Tech",
                                    org=ORG),
        "supervisor": create_person(f"sup@{ORG}.example", "supervisor", name="Susana Sup",
                                    org=ORG),
        "admin": create_person(f"admin@{ORG}.example", "admin", name="Ana Admin", org=ORG),
        "outsider": create_person(f"sup@{ORG}-other.example", "supervisor", name="Otto Other",
                                  org=f"{ORG}-other"),
    }
    headers = {"Authorization": f"Bearer {api_token(found['admin'])}"}
    for training in ("privacy", "approved-tools"):  # the default policy requires them
        done = httpx.post(
            f"{live_server}/api/v1/users/{found['technician'].id}/trainings",
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
    return found


def test_a_supervisor_declares_from_the_page_and_everyone_sees_the_banner(
    new_page: Callable[..., Page], login: Callable[..., None], people: dict[str, Person],
    loop: Loop, live_server: str, api_token: Callable[[Person], str],
    axe: Callable[[Page], list[Any]], screenshot: Callable[[Page, str], Any],
) -> None:
    ticket = _open_ticket(live_server, api_token(people["end_user"]), "The mail server is down")
    sid, agent, _technician = loop.run(
        _start(live_server, str(ticket["id"]), api_token(people["technician"])))
    page = new_page()
    login(page, people["supervisor"])
    page.goto("/supervisor")
    expect(page.get_by_test_id("emergency-banner")).to_have_count(0)
    form = page.get_by_test_id("emergency-declare-form")
    expect(form).to_be_visible()
    assert form.locator("input[name=csrf_token]").count() == 1
    # Without the confirmation the browser does not send it (required); the server refuses
    # it too, tested in tests/server/emergency/test_emergency_web.py.
    page.get_by_label("Reason (everyone of the organisation will read it)").fill(REASON)
    page.get_by_label("I confirm: end every live support session now and lock unattended "
                      "access.").check()
    page.get_by_role("button", name="Declare an emergency").click()
    page.wait_for_load_state()
    expect(page.locator(".flashes")).to_contain_text(
        "Emergency declared. Support sessions ended: 1.")
    banner = page.get_by_test_id("emergency-banner")
    expect(banner).to_contain_text("Emergency declared")
    expect(banner).to_contain_text("Susana Sup declared an emergency on")
    expect(page.get_by_test_id("emergency-reason")).to_have_text(REASON)
    expect(banner).to_contain_text("unattended access is locked")
    expect(page.get_by_test_id("emergency-lift-form")).to_be_visible()
    violations = axe(page)
    assert not violations, describe(violations)
    screenshot(page, "supervisor-emergency-declared")

    async def ended() -> Any:
        return await agent.expect("session.end", within=20)

    end = loop.run(ended())
    assert (end.support_session_id, end.reason) == (sid, "emergency")

    # The person at the device, in Spanish: the banner in their words, without staff details.
    person = new_page()
    login(person, people["end_user"])  # English labels: the switch comes after
    person.get_by_role("button", name="Español").click()
    person.wait_for_load_state()
    theirs = person.get_by_test_id("emergency-banner")
    expect(theirs).to_contain_text("Emergencia declarada")
    expect(theirs).to_contain_text("Susana Sup declaró una emergencia el")
    expect(theirs).to_contain_text(REASON)
    expect(theirs).to_contain_text("Las sesiones de soporte están detenidas por ahora.")
    expect(theirs).not_to_contain_text("desatendido")
    screenshot(person, "portal-emergency-banner-es")
    # Another organisation's people see nothing of it.
    outsider = new_page()
    login(outsider, people["outsider"])
    expect(outsider.get_by_test_id("emergency-banner")).to_have_count(0)

    # Lifting: the banner goes, everywhere.
    page.get_by_label("Why is it over?").fill("Contained; backups restored")
    page.get_by_role("button", name="Lift the emergency").click()
    page.wait_for_load_state()
    expect(page.locator(".flashes")).to_contain_text("The emergency is lifted.")
    expect(page.get_by_test_id("emergency-banner")).to_have_count(0)
    expect(page.get_by_test_id("emergency-declare-form")).to_be_visible()
    person.reload()
    expect(person.get_by_test_id("emergency-banner")).to_have_count(0)
    state = httpx.get(f"{live_server}/api/v1/emergency", timeout=60,
                      headers={"Authorization": f"Bearer {api_token(people['admin'])}"}).json()
    assert state["active"] is False
    assert state["emergency"]["lift_reason"] == "Contained; backups restored"
