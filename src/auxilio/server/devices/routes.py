"""Device routes: an end user registers their own devices; staff list the organisation's; agents
enrol with a token; supervisors revoke.

=====================================  ======================  ===============================
route                                  permission              notes
=====================================  ======================  ===============================
POST   /devices                        device:register_own     end users
GET    /devices(?owner_id=)            user:read_self          service narrows (own / all)
GET    /devices/{id}                   user:read_self          404 outside the caller's sight
POST   /devices/{id}/revoke            device:revoke           supervisors; ends its sessions
POST   /enrolment-tokens               device:enrol            senior technicians and up
GET    /enrolment-tokens               device:enrol
DELETE /enrolment-tokens/{id}          device:enrol            an unused token
POST   /agents/enroll                  (public, rate limited)  the agent, with a token
=====================================  ======================  ===============================

Reading is gated by ``user:read_self`` (any signed-in member) because ``device:read_own`` (end
users) and ``device:read_all`` (staff) are disjoint in the role table; the service then narrows
what the caller sees by which of the two they hold, and answers 404 for anything else.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.devices import enrolment, service
from auxilio.server.devices import schemas as s
from auxilio.server.devices.channel import close_device, online_devices
from auxilio.server.devices.models import Device, EnrolmentToken
from auxilio.server.errors import EnrolmentRefused, RateLimited
from auxilio.server.identity.ratelimit import Limited, rate_limits
from auxilio.server.support_sessions.runtime import SupportSessionRuntime

router = APIRouter(prefix="/devices", tags=["devices"])
tokens_router = APIRouter(prefix="/enrolment-tokens", tags=["devices"])
agents_router = APIRouter(prefix="/agents", tags=["devices"])

RegisterDevice = Annotated[Identity, require(Permission.DEVICE_REGISTER_OWN)]
ReadDevices = Annotated[Identity, require(Permission.DEVICE_READ)]
EnrolDevices = Annotated[Identity, require(Permission.DEVICE_ENROL)]
RevokeDevices = Annotated[Identity, require(Permission.DEVICE_REVOKE)]


def _runtime(request: Request) -> SupportSessionRuntime:
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    return runtime


async def _out(request: Request, devices: list[Device]) -> list[s.DeviceOut]:
    online = await online_devices(_runtime(request).hub.bus, [d.id for d in devices])
    return [s.DeviceOut.model_validate(d).model_copy(update={"online": d.id in online})
            for d in devices]  # fmt: skip


@router.post("", response_model=s.DeviceOut, status_code=201)
async def register_device(
    body: s.DeviceCreateIn, caller: RegisterDevice, db: DbSession
) -> s.DeviceOut:
    device = await service.register_device(
        db, name=body.name, platform=str(body.platform), device_group=body.device_group,
        actor=caller.actor,
    )
    return s.DeviceOut.model_validate(device)


@router.get("", response_model=s.DevicePage)
async def list_devices(
    request: Request,
    caller: ReadDevices,
    db: DbSession,
    owner_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.DevicePage:
    rows, total = await service.list_devices(
        db, actor=caller.actor, owner_id=owner_id, limit=limit, offset=offset
    )
    return s.DevicePage(items=await _out(request, rows), total=total, limit=limit, offset=offset)


@router.get("/{device_id}", response_model=s.DeviceOut)
async def get_device(
    request: Request, device_id: uuid.UUID, caller: ReadDevices, db: DbSession
) -> s.DeviceOut:
    device = await service.get_visible_device_or_raise(db, device_id=device_id, actor=caller.actor)
    return (await _out(request, [device]))[0]


@router.post("/{device_id}/revoke", response_model=s.DeviceOut)
async def revoke_device(
    request: Request, device_id: uuid.UUID, body: s.DeviceRevokeIn, caller: RevokeDevices,
    db: DbSession,
) -> s.DeviceOut:  # fmt: skip
    revoked = await enrolment.revoke_device(db, device_id=device_id, reason=body.reason,
                                            actor=caller.actor)  # fmt: skip
    out = s.DeviceOut.model_validate(revoked.device).model_copy(update={"online": False})
    await db.commit()
    await announce_revoked(_runtime(request), revoked)
    return out


async def announce_revoked(runtime: SupportSessionRuntime, revoked: enrolment.Revoked) -> None:
    """After the revocation committed: the ended sessions' peers hear ``session.end`` (reason
    ``device_revoked``) and the node holding the device's connection closes it."""
    await runtime.announce_ends(revoked.ended)
    await close_device(runtime.hub.bus, revoked.device.id, "device revoked")


# ---- enrolment tokens ------------------------------------------------------------------------


def _token_out(row: EnrolmentToken) -> s.EnrolmentTokenOut:
    return s.EnrolmentTokenOut.model_validate(row).model_copy(
        update={"state": enrolment.token_state(row)})


@tokens_router.post("", response_model=s.EnrolmentTokenCreated, status_code=201)
async def create_enrolment_token(
    body: s.EnrolmentTokenIn, caller: EnrolDevices, db: DbSession
) -> s.EnrolmentTokenCreated:
    issued = await enrolment.create_token(
        db, device_group=body.device_group, owner_id=body.owner_id, label=body.label,
        expires_in_hours=body.expires_in_hours, actor=caller.actor,
    )  # fmt: skip
    return s.EnrolmentTokenCreated(**_token_out(issued.row).model_dump(), token=issued.token)


@tokens_router.get("", response_model=s.EnrolmentTokenList)
async def list_enrolment_tokens(
    caller: EnrolDevices,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> s.EnrolmentTokenList:
    rows = await enrolment.list_tokens(db, actor=caller.actor, limit=limit, offset=offset)
    return s.EnrolmentTokenList(items=[_token_out(r) for r in rows])


@tokens_router.delete("/{token_id}", response_model=s.EnrolmentTokenOut)
async def revoke_enrolment_token(
    token_id: uuid.UUID, caller: EnrolDevices, db: DbSession
) -> s.EnrolmentTokenOut:
    return _token_out(await enrolment.revoke_token(db, token_id=token_id, actor=caller.actor))


# ---- the agent enrols ------------------------------------------------------------------------


@agents_router.post("/enroll", response_model=s.EnrolOut, status_code=201)
async def enroll(body: s.EnrolIn, request: Request, db: DbSession) -> s.EnrolOut:
    client = request.client.host if request.client else None
    # Tokens are guessed like join codes: the same buckets, before any database work.
    wait = await rate_limits(request.app.state).check(Limited.JOIN, client)
    if wait:
        raise RateLimited(retry_after_seconds=math.ceil(wait))
    server_key = _runtime(request).signing_key.public_key()
    ask = enrolment.EnrolmentRequest(
        token=body.token, device_public_key=body.device_public_key, platform=body.platform,
        name=body.name, agent_version=body.agent_version, proof=body.proof,
    )  # fmt: skip
    try:
        done = await enrolment.enrol(db, request=ask, server_key=server_key)
    except EnrolmentRefused:
        await db.commit()  # the refusal's audit event survives the error response
        raise
    device = done.device
    assert device.device_group is not None and device.enrolled_at is not None  # noqa: S101
    return s.EnrolOut(
        device_id=device.id, organisation_id=done.organisation.id,
        organisation_name=done.organisation.name, device_group=device.device_group,
        owner_name=done.owner_name, server_public_key=encode_public_key(server_key),
        server_fingerprint=fingerprint(server_key), enrolled_at=device.enrolled_at,
    )  # fmt: skip
