"""The supervisor page's Declare and Lift forms, in process (the browser test is
tests/web/test_emergency_page.py): CSRF, the confirmation, the policy's refusal named on the
page and audited, bad reasons worded, and the banner on every page of the organisation."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from auxilio.server.web.session import CSRF_FIELD, SESSION_COOKIE, csrf_for_token, csrf_key
from tests.factories import Person
from tests.server.emergency.helpers import Org, make_world, policy_text

# The supervisor page's pending-extensions query (web/supervisor.py, not this feature's) calls
# SQLAlchemy's Result.tuples(), deprecated in 2.1; the warning is not this test's subject.
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


@pytest.fixture
async def world(app: FastAPI) -> Org:
    return await make_world(app)


async def token_id(app: FastAPI, person: Person) -> object:
    from auxilio.server.identity.auth import resolve_token

    async with app.state.sessionmaker() as db:
        token, _user = await resolve_token(db, secret=person.token)
        return token.id


async def post_form(
    client: httpx.AsyncClient, app: FastAPI, person: Person, path: str, data: dict[str, str],
    *, csrf: bool = True,
) -> httpx.Response:
    form = dict(data)
    if csrf:
        form[CSRF_FIELD] = csrf_for_token(csrf_key(app.state), await token_id(app, person))
    cookie = {"Cookie": f"{SESSION_COOKIE}={person.token}"}
    return await client.post(path, data=form, headers=cookie)


async def page(client: httpx.AsyncClient, person: Person, path: str) -> str:
    response = await client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={person.token}"})
    assert response.status_code == 200, response.text[:500]
    return response.text


async def test_the_forms_declare_and_lift_with_csrf_and_confirmation(
    client: httpx.AsyncClient, app: FastAPI, world: Org
) -> None:
    sup = world.supervisor
    assert 'data-testid="emergency-declare-form"' in await page(client, sup, "/supervisor")
    refused = await post_form(client, app, sup, "/supervisor/emergency",
                              {"reason": "Breach", "confirm": "yes"}, csrf=False)
    assert refused.status_code == 403
    assert await world.emergencies() == []
    unconfirmed = await post_form(client, app, sup, "/supervisor/emergency", {"reason": "Breach"})
    assert unconfirmed.status_code == 303
    assert await world.emergencies() == []
    blank = await post_form(client, app, sup, "/supervisor/emergency",
                            {"reason": "  ", "confirm": "yes"})
    assert blank.status_code == 303 and await world.emergencies() == []
    declared = await post_form(client, app, sup, "/supervisor/emergency",
                               {"reason": "Breach <b>now</b>", "confirm": "yes"})
    assert (declared.status_code, declared.headers["location"]) == (303, "/supervisor")
    assert [e.reason for e in await world.emergencies()] == ["Breach <b>now</b>"]
    # Every signed-in person of the organisation: the banner, the reason escaped.
    for person, path in ((world.requester, "/portal"), (world.technician, "/console"),
                         (world.admin, "/admin/users")):
        home = await page(client, person, path)
        assert 'data-testid="emergency-banner"' in home
        assert "Breach &lt;b&gt;now&lt;/b&gt;" in home and "<b>now</b>" not in home
    staff = await page(client, world.technician, "/console")
    assert "security-team, ciso@example.test" in staff
    assert "No email is sent" in staff
    assert "security-team" not in await page(client, world.requester, "/portal")
    lift = await post_form(client, app, sup, "/supervisor/emergency/lift", {"reason": "Over"})
    assert lift.status_code == 303
    assert (await world.emergencies())[0].lift_reason == "Over"
    assert 'data-testid="emergency-banner"' not in await page(client, world.requester, "/portal")


async def test_a_contact_is_told_and_spanish_pages_word_the_banner(
    client: httpx.AsyncClient, app: FastAPI, world: Org
) -> None:
    await world.use_policy(policy_text(contacts=f"[{world.admin.user.email}]"))
    await post_form(client, app, world.supervisor, "/supervisor/emergency",
                    {"reason": "Fallo crítico", "confirm": "yes"})
    admin = await page(client, world.admin, "/admin/users")
    assert 'data-testid="emergency-contact"' in admin
    assert 'data-testid="emergency-contact"' not in await page(client, world.supervisor,
                                                                "/supervisor")
    spanish = await client.get("/portal", headers={
        "Cookie": f"{SESSION_COOKIE}={world.requester.token}; auxilio_lang=es"})
    assert "Emergencia declarada" in spanish.text
    assert "Fallo crítico" in spanish.text


async def test_the_policy_refusal_is_named_on_the_page_and_audited(
    client: httpx.AsyncClient, app: FastAPI, world: Org
) -> None:
    await world.use_policy(policy_text(roles="[admin]"))
    response = await post_form(client, app, world.supervisor, "/supervisor/emergency",
                               {"reason": "Breach", "confirm": "yes"})
    assert response.status_code == 303
    shown = await client.get("/supervisor", headers={
        "Cookie": f"{SESSION_COOKIE}={world.supervisor.token}; "
                  f"auxilio_flash={response.cookies.get('auxilio_flash')}"})
    assert "emergency.declare_roles" in shown.text
    assert "may not declare an emergency" in shown.text
    assert await world.emergencies() == []
    denied = await world.events("policy:decision:denied")
    assert [e.details["rule"] for e in denied] == ["emergency.declare_roles"]
    # Roles without the permission never see the form, and are refused the POST.
    assert "emergency-declare-form" not in await page(client, world.technician, "/console")
    forbidden = await post_form(client, app, world.technician, "/supervisor/emergency",
                                {"reason": "x", "confirm": "yes"})
    assert forbidden.status_code == 403
