"""The policy page's pilots in a real browser: start one on a device group, see it run, stop it.

An organisation of its own ("web-pilots"): a pilot's version link would otherwise sit next to
the editor test's version links.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from auxilio.policy import load_template
from tests.web.conftest import Person, describe

pytestmark = pytest.mark.e2e


def test_an_admin_starts_a_pilot_on_a_group_and_stops_it(
    page: Page,
    login: Callable[..., None],
    create_person: Callable[..., Person],
    live_server: str,
    api_token: Callable[[Person], str],
    axe: Callable[[Page], list[Any]],
) -> None:
    admin = create_person("pilots@web-pilots.example", "admin", name="Pia Pilot", org="web-pilots")
    headers = {"Authorization": f"Bearer {api_token(admin)}"}
    company = load_template("software-company")
    for document in (company, company + "# the pilot's version\n"):
        stored = httpx.post(f"{live_server}/api/v1/policies", json={"document": document},
                            headers=headers)  # fmt: skip
        assert stored.status_code == 201, stored.text
    assert httpx.post(f"{live_server}/api/v1/policies/1/activate", headers=headers).is_success

    login(page, admin)
    page.goto("/admin/policy#pilots")
    expect(page.locator("#pilots ~ table")).to_contain_text("No pilot yet.")
    # Only the stored, not active, version can be piloted.
    expect(page.locator("#pilot-version option")).to_have_text(["v2"])
    page.get_by_label("Device group").fill("lab")
    page.get_by_role("button", name="Start the pilot").click()
    expect(page.locator("#pilot-started")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="lab")
    expect(row).to_contain_text("Running")
    expect(row).to_contain_text("until stopped")
    violations = axe(page)
    assert not violations, describe(violations)

    # A second pilot for the same group at the same time is refused, and said why.
    page.get_by_label("Device group").fill("lab")
    page.get_by_role("button", name="Start the pilot").click()
    expect(page.locator("#pilot-error")).to_contain_text("Another pilot runs for this device group")

    listed = httpx.get(f"{live_server}/api/v1/policies/pilots", headers=headers).json()
    assert [(p["device_group"], p["state"], p["version_number"]) for p in listed] == [
        ("lab", "running", 2)
    ]

    page.goto("/admin/policy#pilots")
    page.get_by_role("row").filter(has_text="lab").get_by_role(
        "button", name="Stop the pilot"
    ).click()
    expect(page.locator("#pilot-stopped")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="lab")).to_contain_text("Stopped")
    listed = httpx.get(f"{live_server}/api/v1/policies/pilots", headers=headers).json()
    assert listed[0]["state"] == "stopped"
