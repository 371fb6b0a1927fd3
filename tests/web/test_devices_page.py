"""The console's devices in a real browser (Debian chromium) against a live ``auxilio serve``: a
device enrolled over the real REST routes with an owner's pre-authorisation (signed with the
device's key, crypto/preauth.py) is listed with its window in words, in English and Spanish;
its page shows the pre-authorisation and no connect link while it is offline; a senior
technician's enrol form shows a token once with the command line; a supervisor revokes it."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.server.devices.helpers import enrol_body, pre_authorisation
from tests.web.conftest import Person, describe

pytestmark = pytest.mark.e2e

ORG = "web-dev"


@pytest.fixture(scope="module")
def people(create_person: Callable[..., Person]) -> dict[str, Person]:
    return {
        "owner": create_person(f"owner@{ORG}.example", "end_user", name="Olga Owner", org=ORG),
        "senior": create_person(f"senior@{ORG}.example", "senior_technician", name="Sam Senior",
                                org=ORG),
        "supervisor": create_person(f"sup@{ORG}.example", "supervisor", name="Sue Sup", org=ORG),
    }  # fmt: skip


@pytest.fixture(scope="module")
def device(
    people: dict[str, Person], api_token: Callable[[Person], str], live_server: str,
    web_data_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """A device enrolled through the API, with a live pre-authorisation stored as the server
    stores one: working hours on weekdays, Madrid time."""
    headers = {"Authorization": f"Bearer {api_token(people['senior'])}"}
    made = httpx.post(f"{live_server}/api/v1/enrolment-tokens", headers=headers, timeout=60,
                      json={"device_group": "servers", "owner_id": people["owner"].id})
    assert made.status_code == 201, made.text
    server = httpx.get(f"{live_server}/api/v1/server-key", timeout=60).json()
    key = Ed25519PrivateKey.generate()

    class _ServerKey:  # enrol_body needs only the public half, from the key route
        def public_key(self) -> Any:
            from auxilio.crypto.keys import decode_ed25519_public_key

            return decode_ed25519_public_key(server["public_key"])

    body = enrol_body(made.json()["token"], _ServerKey(), key, name="rack-web-01")  # type: ignore[arg-type]
    enrolled = httpx.post(f"{live_server}/api/v1/agents/enroll", json=body, timeout=60)
    assert enrolled.status_code == 201, enrolled.text
    device_id = uuid.UUID(enrolled.json()["device_id"])
    record = pre_authorisation(
        device_id=device_id, organisation_id=uuid.UUID(enrolled.json()["organisation_id"]),
        key=key, server_fingerprint=server["fingerprint"], owner_name="Olga Owner",
        scope=("chat", "terminal", "diagnostics"),
        window={"weekdays": [0, 1, 2, 3, 4], "daily_start": "09:00", "daily_end": "17:00",
                "timezone": "Europe/Madrid"},
    )  # fmt: skip
    # Written straight into the server's database, as H3's store would after verifying it.
    pre_id = str(record.id)
    engine = create_engine(f"sqlite:///{web_data_dir / 'auxilio.db'}")
    with Session(engine) as db, db.begin():
        db.add(record)
    engine.dispose()
    return {"id": str(device_id), "pre_id": pre_id}


def test_the_device_list_shows_the_pre_authorisation_and_its_window(
    new_page: Callable[..., Page], login: Callable[..., None], people: dict[str, Person],
    device: dict[str, Any], axe: Callable[[Page], list[Any]],
) -> None:  # fmt: skip
    page = new_page()
    login(page, people["senior"])
    page.goto("/console")
    page.get_by_role("link", name="Devices").click()
    expect(page).to_have_url(re.compile(r"/console/devices$"))
    row = page.locator(f'tr[data-device-id="{device["id"]}"]')
    expect(row).to_contain_text("rack-web-01")
    expect(row).to_contain_text("servers")
    expect(row).to_contain_text("Olga Owner")
    expect(row).to_contain_text("Offline")
    expect(row.locator(".pre-authorisation")).to_contain_text("Live until")
    expect(row.locator(".pre-authorisation")).to_contain_text(
        "Chat, Terminal, Diagnostics · Mon, Tue, Wed, Thu, Fri 09:00-17:00 (Europe/Madrid)")
    violations = axe(page)
    assert not violations, describe(violations)

    page.get_by_role("link", name="rack-web-01").click()
    expect(page.locator("h1")).to_have_text("rack-web-01")
    pre = page.locator(f'tr[data-pre-authorisation-id="{device["pre_id"]}"]')
    expect(pre).to_contain_text("Olga Owner")
    expect(pre).to_contain_text("Live until")
    expect(page.locator("#connect-unattended")).to_have_count(0)  # offline: no connect link
    expect(page.locator("#revoke-form")).to_have_count(0)  # a senior technician may not revoke
    violations = axe(page)
    assert not violations, describe(violations)

    page.get_by_role("button", name="Español").click()
    expect(page.locator(f'tr[data-pre-authorisation-id="{device["pre_id"]}"]')).to_contain_text(
        "lun, mar, mié, jue, vie 09:00-17:00 (Europe/Madrid)")


def test_the_enrol_form_shows_a_token_once_with_the_command_line(
    new_page: Callable[..., Page], login: Callable[..., None], people: dict[str, Person],
    live_server: str, api_token: Callable[[Person], str], axe: Callable[[Page], list[Any]],
) -> None:  # fmt: skip
    page = new_page()
    login(page, people["senior"])
    page.goto("/console/devices")
    page.get_by_label("Device group").fill("desks")
    page.get_by_label("Owner").select_option(label=f"Olga Owner (owner@{ORG}.example)")
    page.get_by_label("Label (optional)").fill("reception")
    page.get_by_role("button", name="Make an enrolment token").click()
    command = page.locator("#enrol-command")
    expect(command).to_contain_text("auxilio agent enroll --server ")
    found = re.fullmatch(r"auxilio agent enroll --server (\S+) --token ([A-Za-z0-9_-]{43})",
                         command.inner_text().strip())  # fmt: skip
    assert found, command.inner_text()
    token = found.group(2)
    violations = axe(page)
    assert not violations, describe(violations)
    listed = httpx.get(f"{live_server}/api/v1/enrolment-tokens", timeout=60,
                       headers={"Authorization": f"Bearer {api_token(people['senior'])}"})
    mine = [t for t in listed.json()["items"] if t["label"] == "reception"]
    assert [(t["device_group"], t["state"]) for t in mine] == [("desks", "live")]
    assert token not in listed.text
    assert hashlib.sha256(token.encode()).hexdigest() not in listed.text
    page.goto("/console/devices")
    expect(page.locator("#enrol-command")).to_have_count(0)  # shown once


def test_a_supervisor_revokes_the_device_from_its_page(
    new_page: Callable[..., Page], login: Callable[..., None], people: dict[str, Person],
    device: dict[str, Any],
) -> None:  # fmt: skip
    page = new_page()
    login(page, people["supervisor"])
    page.goto(f"/console/devices/{device['id']}")
    page.get_by_label("Reason").fill("Stolen from the office")
    page.get_by_role("button", name="Revoke device").click()
    expect(page.locator(".flash")).to_contain_text("The device is revoked.")
    expect(page.locator("#device-revoked")).to_contain_text("Stolen from the office")
    expect(page.locator(f'tr[data-pre-authorisation-id="{device["pre_id"]}"]')).to_contain_text(
        "Revoked")
    expect(page.locator("#revoke-form")).to_have_count(0)
