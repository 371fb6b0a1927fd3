"""Policy versions through the API: validate, upload, diff, activate, explain, simulate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from auxilio.policy import EvaluationContext, StartSupportSession, load_template
from auxilio.policy.reasons import params_complete
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.context import Actor
from auxilio.server.policies import service
from auxilio.server.policies.models import PolicyVersion
from tests.factories import make_org, make_user

SCHOOL = load_template("school")
COMPANY = load_template("software-company")


async def count(app: FastAPI, model: type) -> int:
    async with app.state.sessionmaker() as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def test_an_organisation_without_a_policy_runs_under_the_default_template(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_user(app, org, Role.TECHNICIAN)
    active = (await client.get("/api/v1/policies/active", headers=tech.headers)).json()
    assert active["version_label"] == "template:software-company"
    assert active["version"] is None


async def test_an_invalid_document_is_refused_with_located_errors_and_nothing_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    broken = COMPANY.replace("\n  max_duration: 1h", '\n  max_duration: "90x"')
    assert broken != COMPANY
    before = (await count(app, PolicyVersion), await count(app, AuditEvent))
    response = await client.post(
        "/api/v1/policies", json={"document": broken}, headers=admin.headers
    )
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "policy_invalid"
    [problem] = body["details"]["errors"]
    assert problem["path"] == "sessions.max_duration"
    assert isinstance(problem["line"], int) and problem["line"] > 1
    assert (await count(app, PolicyVersion), await count(app, AuditEvent)) == before


async def test_validate_answers_without_storing(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_user(app, org, Role.TECHNICIAN)
    ok = await client.post(
        "/api/v1/policies/validate", json={"document": SCHOOL}, headers=tech.headers
    )
    assert ok.json()["valid"] is True
    bad = await client.post(
        "/api/v1/policies/validate", json={"document": "sessions: ["}, headers=tech.headers
    )
    assert bad.json()["valid"] is False and bad.json()["errors"][0]["code"] == "policy.yaml_syntax"
    assert await count(app, PolicyVersion) == 0


async def test_versions_are_numbered_diffed_and_activation_is_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    h = admin.headers
    v1 = await client.post(
        "/api/v1/policies", json={"document": COMPANY, "comment": "first"}, headers=h
    )
    v2 = await client.post(
        "/api/v1/policies", json={"document": SCHOOL, "comment": "pilot"}, headers=h
    )
    assert (v1.json()["number"], v2.json()["number"]) == (1, 2)
    diff = (await client.get("/api/v1/policies/2/diff", headers=h)).json()["diff"]
    assert diff.startswith("--- v1\n+++ v2\n") and "America/Mexico_City" in diff
    activated = await client.post("/api/v1/policies/2/activate", headers=h)
    assert activated.json()["is_active"] is True
    active = (await client.get("/api/v1/policies/active", headers=h)).json()
    assert active["version"]["number"] == 2 and active["version_label"].startswith("v2:")
    await client.post("/api/v1/policies/1/activate", headers=h)
    versions = (await client.get("/api/v1/policies", headers=h)).json()
    assert [v["is_active"] for v in versions] == [True, False]
    async with app.state.sessionmaker() as db:
        actions = (
            await db.execute(
                select(AuditEvent.action, AuditEvent.details)
                .where(AuditEvent.action == "policy:version:activated")
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert [d["number"] for _, d in actions] == [2, 1]
    assert actions[1][1]["previous"] == 2


async def test_only_policy_managers_change_policies(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    response = await client.post(
        "/api/v1/policies", json={"document": COMPANY}, headers=supervisor.headers
    )
    assert response.status_code == 403
    assert await count(app, PolicyVersion) == 0


async def test_another_organisations_version_is_not_found(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine, theirs = await make_org(app), await make_org(app)
    admin = await make_user(app, mine, Role.ADMIN)
    other = await make_user(app, theirs, Role.ADMIN)
    await client.post("/api/v1/policies", json={"document": COMPANY}, headers=other.headers)
    response = await client.get("/api/v1/policies/1", headers=admin.headers)
    assert response.status_code == 404


async def test_explain_returns_the_trail_and_the_deciding_rule(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_user(app, org, Role.TECHNICIAN)
    request = {"kind": "capability.use", "capability": "terminal", "technician_role": "end_user"}
    body = (
        await client.post(
            "/api/v1/policies/explain", json={"request": request}, headers=tech.headers
        )
    ).json()
    assert body["decision"]["effect"] == "deny"
    assert body["decision"]["rule"].startswith("capabilities.terminal")
    assert len(body["trail"]) >= 1
    bad = await client.post(
        "/api/v1/policies/explain", json={"request": {"kind": "nope"}}, headers=tech.headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"


async def test_simulate_lists_the_recorded_decisions_a_draft_would_change(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    # A Sunday at 03:00 in Mexico City: allowed by the company policy (any time), outside the
    # school's working hours.
    sunday_night = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    trained = sunday_night - timedelta(days=30)
    request = StartSupportSession(
        mode="attended",
        technician_role=Role.TECHNICIAN,
        mfa_verified=True,
        trainings={"privacy": trained, "approved-tools": trained, "child-safeguarding": trained},
    )
    async with app.state.sessionmaker() as db, db.begin():
        decision = await service.decide(
            db,
            actor=Actor.system(org.id),
            organisation_id=org.id,
            request=request,
            context=EvaluationContext(now=sunday_night),
        )
    assert decision.effect.value != "deny"
    response = await client.post(
        "/api/v1/policies/simulate",
        json={"document": SCHOOL, "since": (sunday_night - timedelta(days=1)).isoformat()},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["replayed"] == 1
    [change] = body["changes"]
    assert change["request_kind"] == "support_session.start"
    assert change["now_effect"] in {"deny", "require_approval"}
    assert change["now_rule"].startswith("support_hours")
    # The reason by its code too (docs/policy.md, "Reason codes"), with what fills it.
    assert change["now_reason_code"].startswith("support_hours.")
    assert params_complete(change["now_reason_code"], change["now_params"])
    same = await client.post(
        "/api/v1/policies/simulate",
        json={"document": COMPANY, "since": (sunday_night - timedelta(days=1)).isoformat()},
        headers=admin.headers,
    )
    assert same.json()["changes"] == [] and same.json()["unchanged"] == 1
