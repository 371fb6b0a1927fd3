"""Identity routes: login, TOTP enrolment, self, tokens, users, staff profiles, trainings."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Request

from auxilio.policy import review_overdue
from auxilio.policy.roles import STAFF_ROLES, Permission, Role
from auxilio.server.api.deps import DbSession, EnrolmentCaller, Identity, SettingsDep, require
from auxilio.server.db.base import utcnow
from auxilio.server.errors import Forbidden, NotStaff, RateLimited
from auxilio.server.identity import auth, service
from auxilio.server.identity import schemas as s
from auxilio.server.identity.models import Organisation
from auxilio.server.identity.ratelimit import Limited, rate_limits
from auxilio.server.policies.service import get_active_policy
from auxilio.server.reporting.schemas import KpiSettings

router = APIRouter(tags=["identity"])

ReadSelf = Annotated[Identity, require(Permission.USER_READ_SELF)]
ManageOwnTokens = Annotated[Identity, require(Permission.TOKEN_MANAGE_OWN)]
ReadUsers = Annotated[Identity, require(Permission.USER_READ)]
ManageUsers = Annotated[Identity, require(Permission.USER_MANAGE)]
ManageStaff = Annotated[Identity, require(Permission.STAFF_MANAGE)]
ReadOrg = Annotated[Identity, require(Permission.ORG_READ)]
ManageOrg = Annotated[Identity, require(Permission.ORG_MANAGE)]
ReadReports = Annotated[Identity, require(Permission.REPORT_READ)]


@router.post("/auth/login", response_model=s.LoginOut)
async def login(
    body: s.LoginIn, request: Request, db: DbSession, settings: SettingsDep
) -> s.LoginOut:
    client = request.client.host if request.client else None
    wait = await rate_limits(request.app.state).check(Limited.LOGIN, client)
    if wait:
        # Before any database work: a flood of guesses costs neither argon2 nor audit rows.
        raise RateLimited(retry_after_seconds=math.ceil(wait))
    outcome = await auth.login(
        db,
        email=body.email,
        password=body.password,
        totp_code=body.totp_code,
        recovery_code=body.recovery_code,
        client_addr=client,
        settings=settings,
        organisation=body.organisation,
    )
    if not isinstance(outcome, auth.LoginResult):
        # The failure counters and the audit event must survive the error response.
        await db.commit()
        raise outcome
    warnings = []
    if outcome.user.role == Role.ADMIN:
        active = await get_active_policy(db, organisation_id=outcome.user.organisation_id)
        if review_overdue(active.policy, utcnow().date()):
            warnings.append(
                f"policy_review_overdue: the active policy ({active.version_label}) was due for "
                f"review on {active.policy.review_by}; review and activate a new version."
            )
    return s.LoginOut(
        warnings=warnings,
        token=outcome.token,
        expires_at=outcome.token_row.expires_at,
        user=s.UserOut.model_validate(outcome.user),
        mfa_enrolment_required=outcome.mfa_enrolment_required,
        totp_enrolment_started=outcome.mfa_enrolment_required and bool(outcome.user.totp_secret),
        recovery_codes=outcome.recovery_codes,
    )


@router.post("/auth/logout", status_code=204)
async def logout(caller: ReadSelf, db: DbSession) -> None:
    await auth.revoke_login_token(db, token=caller.token, actor=caller.actor)


@router.post("/auth/totp/enrol", response_model=s.TotpEnrolOut)
async def totp_enrol(caller: EnrolmentCaller, db: DbSession) -> s.TotpEnrolOut:
    uri = await auth.start_totp_enrolment(db, user=caller.user, actor=caller.actor)
    return s.TotpEnrolOut(provisioning_uri=uri)


@router.post("/auth/totp/confirm", response_model=s.RecoveryCodesOut)
async def totp_confirm(
    body: s.TotpConfirmIn, caller: EnrolmentCaller, db: DbSession
) -> s.RecoveryCodesOut:
    outcome = await auth.confirm_totp_enrolment(
        db, user=caller.user, code=body.code, actor=caller.actor
    )
    if not isinstance(outcome, list):
        await db.commit()
        raise outcome
    return s.RecoveryCodesOut(recovery_codes=outcome)


@router.get("/me", response_model=s.UserOut)
async def me(caller: ReadSelf) -> s.UserOut:
    return s.UserOut.model_validate(caller.user)


@router.get("/me/tokens", response_model=list[s.TokenOut])
async def list_my_tokens(caller: ManageOwnTokens, db: DbSession) -> list[s.TokenOut]:
    return [s.TokenOut.model_validate(t) for t in await auth.list_tokens(db, user=caller.user)]


@router.post("/me/tokens", response_model=s.TokenCreatedOut, status_code=201)
async def create_my_token(
    body: s.TokenIn, caller: ManageOwnTokens, db: DbSession
) -> s.TokenCreatedOut:
    secret, row = await auth.issue_token(
        db,
        user=caller.user,
        kind="api",
        name=body.name,
        scopes=body.scopes,
        ttl=timedelta(days=body.ttl_days),
        mfa_verified=caller.token.mfa_verified,
        actor=caller.actor,
    )
    return s.TokenCreatedOut(token=secret, **s.TokenOut.model_validate(row).model_dump())


@router.delete("/me/tokens/{token_id}", status_code=204)
async def revoke_my_token(token_id: uuid.UUID, caller: ManageOwnTokens, db: DbSession) -> None:
    await auth.revoke_token(db, user=caller.user, token_id=token_id, actor=caller.actor)


@router.get("/organisation", response_model=s.OrganisationOut)
async def organisation(caller: ReadOrg, db: DbSession) -> s.OrganisationOut:
    return s.OrganisationOut.model_validate(await db.get(Organisation, caller.user.organisation_id))


@router.get("/users", response_model=list[s.UserOut])
async def list_users(caller: ReadUsers, db: DbSession, role: Role | None = None) -> list[s.UserOut]:
    users = await service.list_users(db, organisation_id=caller.user.organisation_id, role=role)
    return [s.UserOut.model_validate(u) for u in users]


@router.post("/users", response_model=s.UserCreatedOut, status_code=201)
async def create_user(body: s.UserCreateIn, caller: ManageUsers, db: DbSession) -> s.UserCreatedOut:
    org = await db.get(Organisation, caller.user.organisation_id)
    assert org is not None  # noqa: S101 -- the caller's own organisation
    user = await service.create_user(
        db,
        organisation=org,
        email=body.email,
        display_name=body.display_name,
        role=body.role,
        password=body.password,
        timezone=body.timezone,
        skills=body.skills,
        languages=body.languages,
        working_hours=body.working_hours,
        actor=caller.actor,
    )
    return s.UserCreatedOut(**s.UserOut.model_validate(user).model_dump())


@router.get("/users/{user_id}", response_model=s.UserOut)
async def get_user(user_id: uuid.UUID, caller: ReadUsers, db: DbSession) -> s.UserOut:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    return s.UserOut.model_validate(user)


@router.patch("/users/{user_id}", response_model=s.UserOut)
async def update_user(
    user_id: uuid.UUID, body: s.UserUpdateIn, caller: ManageUsers, db: DbSession
) -> s.UserOut:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    changes = body.model_dump(exclude_unset=True)
    if user.id == caller.user.id and ("role" in changes or changes.get("is_active") is False):
        raise Forbidden("You cannot change your own role or deactivate yourself.")
    user = await service.update_user(db, user=user, actor=caller.actor, changes=changes)
    return s.UserOut.model_validate(user)


@router.put("/users/{user_id}/profile", response_model=s.StaffProfileOut)
async def update_staff_profile(
    user_id: uuid.UUID, body: s.StaffProfileIn, caller: ManageStaff, db: DbSession
) -> s.StaffProfileOut:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    if Role(user.role) not in STAFF_ROLES:
        raise NotStaff()
    changes = body.model_dump(exclude_unset=True)
    user = await service.update_user(db, user=user, actor=caller.actor, changes=changes)
    return s.StaffProfileOut.model_validate(user)


@router.get("/admin/kpi-settings", response_model=KpiSettings)
async def get_kpi_settings(caller: ReadReports, db: DbSession) -> KpiSettings:
    return await service.get_kpi_settings(db, organisation_id=caller.user.organisation_id)


@router.put("/admin/kpi-settings", response_model=KpiSettings)
async def put_kpi_settings(body: KpiSettings, caller: ManageOrg, db: DbSession) -> KpiSettings:
    return await service.update_kpi_settings(
        db, organisation_id=caller.user.organisation_id, settings=body, actor=caller.actor
    )


@router.get("/users/{user_id}/trainings", response_model=list[s.TrainingOut])
async def list_trainings(
    user_id: uuid.UUID, caller: ReadUsers, db: DbSession
) -> list[s.TrainingOut]:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    return [s.TrainingOut.model_validate(t) for t in await service.list_trainings(db, user=user)]


@router.post("/users/{user_id}/trainings", response_model=s.TrainingOut, status_code=201)
async def record_training(
    user_id: uuid.UUID, body: s.TrainingIn, caller: ManageStaff, db: DbSession
) -> s.TrainingOut:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    row = await service.record_training(
        db,
        user=user,
        training_id=body.training_id,
        title=body.title,
        completed_at=body.completed_at,
        expires_at=body.expires_at,
        actor=caller.actor,
    )
    return s.TrainingOut.model_validate(row)


@router.delete("/users/{user_id}/trainings/{training_record_id}", status_code=204)
async def remove_training(
    user_id: uuid.UUID, training_record_id: uuid.UUID, caller: ManageStaff, db: DbSession
) -> None:
    user = await service.get_user_or_raise(
        db, organisation_id=caller.user.organisation_id, user_id=user_id
    )
    await service.remove_training(
        db, user=user, training_record_id=training_record_id, actor=caller.actor
    )
