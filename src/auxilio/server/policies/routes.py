"""Policy routes: read, validate, upload, diff, activate, explain, simulate; templates; pilots."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter

from auxilio.policy import list_templates, load_template, review_overdue
from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.db.base import utcnow
from auxilio.server.policies import pilots, service
from auxilio.server.policies import schemas as s
from auxilio.server.policies.models import PolicyPilot, PolicyVersion
from auxilio.server.validation import OrdinalNumber

router = APIRouter(prefix="/policies", tags=["policies"])

ReadPolicy = Annotated[Identity, require(Permission.POLICY_READ)]
ManagePolicy = Annotated[Identity, require(Permission.POLICY_MANAGE)]


async def _summary(document: str) -> dict[str, Any]:
    policy = await service.parse_document(document)
    return {
        "name": policy.name,
        "capabilities": sorted(policy.capabilities.model_dump(exclude_none=True)),
        "review_by": policy.review_by.isoformat() if policy.review_by else None,
    }


@router.get("", response_model=list[s.VersionOut])
async def list_versions(caller: ReadPolicy, db: DbSession) -> list[s.VersionOut]:
    rows = await service.list_versions(db, organisation_id=caller.user.organisation_id)
    return [s.VersionOut.model_validate(v) for v in rows]


@router.get("/active", response_model=s.ActiveOut)
async def active(caller: ReadPolicy, db: DbSession) -> s.ActiveOut:
    org = caller.user.organisation_id
    version = await service.get_active_version(db, organisation_id=org)
    current = await service.get_active_policy(db, organisation_id=org)
    document = version.document if version else load_template(service.DEFAULT_TEMPLATE)
    review = current.policy.review_by
    return s.ActiveOut(
        version_label=current.version_label,
        version=s.VersionOut.model_validate(version) if version else None,
        document=document,
        review_by=review.isoformat() if review else None,
        review_overdue=review_overdue(current.policy, utcnow().date()),
    )


@router.get("/templates", response_model=list[s.TemplateOut])
async def templates(caller: ReadPolicy) -> list[s.TemplateOut]:
    return [s.TemplateOut(name=n, document=load_template(n)) for n in list_templates()]


@router.post("/validate", response_model=s.ValidationOut)
async def validate(body: s.DocumentIn, caller: ReadPolicy) -> s.ValidationOut:
    try:
        summary = await _summary(body.document)
    except service.PolicyDocumentInvalid as exc:
        return s.ValidationOut(valid=False, errors=exc.details["errors"], summary={})
    return s.ValidationOut(valid=True, errors=[], summary=summary)


@router.post("", response_model=s.VersionOut, status_code=201)
async def upload(body: s.UploadIn, caller: ManagePolicy, db: DbSession) -> s.VersionOut:
    version = await service.upload_version(
        db,
        organisation_id=caller.user.organisation_id,
        document=body.document,
        comment=body.comment,
        actor=caller.actor,
    )
    return s.VersionOut.model_validate(version)


@router.post("/explain")
async def explain(body: s.ExplainIn, caller: ReadPolicy, db: DbSession) -> dict[str, Any]:
    context = {"now": utcnow().isoformat(), **body.context}
    if body.document is not None:
        policy: Any = await service.parse_document(body.document, version_label="draft")
    else:
        policy = await service.get_active_policy(db, organisation_id=caller.user.organisation_id)
    return service.explain_request(policy, body.request, context)


@router.post("/simulate", response_model=s.SimulateOut)
async def simulate(body: s.SimulateIn, caller: ManagePolicy, db: DbSession) -> s.SimulateOut:
    result = await service.simulate(
        db, organisation_id=caller.user.organisation_id, draft=body.document, since=body.since
    )
    return s.SimulateOut(
        replayed=result.replayed,
        unchanged=result.unchanged,
        skipped=result.skipped,
        changes=[s.ChangeOut(**asdict(c)) for c in result.changes],
    )


def _pilot_out(pilot: PolicyPilot, version: PolicyVersion) -> s.PilotOut:
    return s.PilotOut(
        id=pilot.id,
        version_number=version.number,
        version_label=f"v{version.number}:{version.sha256[:12]}",
        device_group=pilot.device_group,
        starts_at=pilot.starts_at,
        ends_at=pilot.ends_at,
        stopped_at=pilot.stopped_at,
        state=pilots.pilot_state(pilot, utcnow()),
        created_at=pilot.created_at,
    )


@router.get("/pilots", response_model=list[s.PilotOut])
async def list_pilots(caller: ReadPolicy, db: DbSession) -> list[s.PilotOut]:
    rows = await pilots.list_pilots(db, caller.user.organisation_id)
    return [_pilot_out(pilot, version) for pilot, version in rows]


@router.post("/pilots/{pilot_id}/stop", response_model=s.PilotOut)
async def stop_pilot(pilot_id: uuid.UUID, caller: ManagePolicy, db: DbSession) -> s.PilotOut:
    pilot = await pilots.stop_pilot(db, caller.actor, pilot_id)
    version = await db.get(PolicyVersion, pilot.policy_version_id)
    assert version is not None  # noqa: S101 -- a foreign key
    return _pilot_out(pilot, version)


@router.get("/{number}", response_model=s.VersionDocumentOut)
async def get_version(
    number: OrdinalNumber, caller: ReadPolicy, db: DbSession
) -> s.VersionDocumentOut:
    version = await service.get_version_or_raise(
        db, organisation_id=caller.user.organisation_id, number=number
    )
    return s.VersionDocumentOut.model_validate(version)


@router.get("/{number}/diff", response_model=s.DiffOut)
async def diff(number: OrdinalNumber, caller: ReadPolicy, db: DbSession) -> s.DiffOut:
    version = await service.get_version_or_raise(
        db, organisation_id=caller.user.organisation_id, number=number
    )
    return s.DiffOut(number=number, diff=await service.diff_with_previous(db, version=version))


@router.post("/{number}/activate", response_model=s.VersionOut)
async def activate(number: OrdinalNumber, caller: ManagePolicy, db: DbSession) -> s.VersionOut:
    version = await service.get_version_or_raise(
        db, organisation_id=caller.user.organisation_id, number=number
    )
    return s.VersionOut.model_validate(
        await service.activate_version(db, version=version, actor=caller.actor)
    )


@router.post("/versions/{number}/pilots", response_model=s.PilotOut, status_code=201)
async def start_pilot(
    number: OrdinalNumber, body: s.PilotIn, caller: ManagePolicy, db: DbSession
) -> s.PilotOut:
    pilot = await pilots.start_pilot(
        db,
        caller.actor,
        version_number=number,
        device_group=body.device_group,
        starts_at=body.starts_at or utcnow(),
        ends_at=body.ends_at,
    )
    version = await db.get(PolicyVersion, pilot.policy_version_id)
    assert version is not None  # noqa: S101 -- a foreign key
    return _pilot_out(pilot, version)
