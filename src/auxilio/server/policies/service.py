"""Policy versions per organisation, the active policy, audited decisions and the dry-run.

Versions are immutable: an upload stores a new numbered version; activation points the
organisation at one of them. Every support decision of the server goes through ``decide``,
which evaluates the request against the active version and records the decision (request,
context, effect, rule path, policy version) in the audit chain, so that ``simulate`` can replay
past decisions against a draft before it is activated.
"""

from __future__ import annotations

import difflib
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.policy import (
    CompiledPolicy,
    Decision,
    EvaluationContext,
    Policy,
    PolicyInvalid,
    Request,
    compile_policy,
    evaluate,
    explain,
    load_template,
    parse_policy,
    parse_request,
)
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.audit.service import chain_for, record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import NotFound, PolicyDenied, ValidationFailed
from auxilio.server.policies.models import PolicyPilot, PolicyVersion
from auxilio.server.policies.parsing import Source, off_loop

DEFAULT_TEMPLATE = "software-company"
DECISION_ACTIONS = (AuditAction.POLICY_DECISION_MADE, AuditAction.POLICY_DECISION_DENIED)


class PolicyDocumentInvalid(ValidationFailed):
    code = "policy_invalid"
    default_message = "The policy document is not valid."


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    policy: Policy
    compiled: CompiledPolicy
    version_label: str
    version_id: uuid.UUID | None


# Parsed policies by document hash: parsing and compiling a policy costs milliseconds, a lookup
# microseconds, and a version's text never changes.
_cache: dict[str, ActivePolicy] = {}


def validate_document(document: str, *, version_label: str | None = None) -> Policy:
    """Parse ``document`` on the calling thread; request handlers use ``parse_document``."""
    try:
        return parse_policy(document, version_label=version_label)
    except PolicyInvalid as exc:
        raise PolicyDocumentInvalid(
            errors=[
                {"path": e.path, "line": e.line, "code": e.code, "message": e.message}
                for e in exc.errors
            ]
        ) from exc


async def parse_document(document: str, *, version_label: str | None = None) -> Policy:
    """``validate_document`` off the event loop (see ``policies.parsing``)."""
    return await off_loop(
        lambda: validate_document(document, version_label=version_label), source=Source.REQUEST
    )


def _label(number: int, sha: str) -> str:
    return f"v{number}:{sha[:12]}"


def _compiled(document: str, label: str, version_id: uuid.UUID | None) -> ActivePolicy:
    policy = validate_document(document, version_label=label)
    return ActivePolicy(policy, compile_policy(policy), label, version_id)


async def _load(document: str, label: str, version_id: uuid.UUID | None) -> ActivePolicy:
    key = hashlib.sha256(f"{label}\n{document}".encode()).hexdigest()
    cached = _cache.get(key)
    if cached is None:
        cached = await off_loop(
            lambda: _compiled(document, label, version_id), source=Source.STORED
        )
        if len(_cache) > 256:
            _cache.clear()
        _cache[key] = cached
    return cached


async def get_active_version(
    db: AsyncSession, *, organisation_id: uuid.UUID
) -> PolicyVersion | None:
    return (
        await db.execute(
            select(PolicyVersion).where(
                PolicyVersion.organisation_id == organisation_id, PolicyVersion.is_active
            )
        )
    ).scalar_one_or_none()


async def get_active_policy(db: AsyncSession, *, organisation_id: uuid.UUID) -> ActivePolicy:
    """The organisation's active policy; the software-company template until one is activated."""
    version = await get_active_version(db, organisation_id=organisation_id)
    if version is None:
        return await _load(load_template(DEFAULT_TEMPLATE), f"template:{DEFAULT_TEMPLATE}", None)
    return await _load(version.document, _label(version.number, version.sha256), version.id)


async def running_pilot(
    db: AsyncSession, *, organisation_id: uuid.UUID, device_group: str, at: datetime
) -> PolicyPilot | None:
    """The pilot of ``device_group`` running at ``at``: started, not ended, not yet stopped."""
    return (
        await db.execute(
            select(PolicyPilot)
            .where(
                PolicyPilot.organisation_id == organisation_id,
                PolicyPilot.device_group == device_group,
                PolicyPilot.starts_at <= at,
                or_(PolicyPilot.ends_at.is_(None), PolicyPilot.ends_at > at),
                or_(PolicyPilot.stopped_at.is_(None), PolicyPilot.stopped_at > at),
            )
            .order_by(PolicyPilot.starts_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def get_policy_for(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    device_group: str | None,
    at: datetime | None = None,
) -> ActivePolicy:
    """The policy that decides for a device of ``device_group`` at ``at`` (now by default):
    the version of the group's running pilot, else the active policy."""
    if device_group:
        pilot = await running_pilot(
            db, organisation_id=organisation_id, device_group=device_group, at=at or utcnow()
        )
        if pilot is not None:
            version = await db.get(PolicyVersion, pilot.policy_version_id)
            if version is not None:
                return await _load(
                    version.document, _label(version.number, version.sha256), version.id
                )
    return await get_active_policy(db, organisation_id=organisation_id)


async def get_policy_by_label(
    db: AsyncSession, *, organisation_id: uuid.UUID, label: str | None
) -> ActivePolicy | None:
    """The policy a decision named by its ``version_label`` (``v3:<sha12>`` or
    ``template:<name>``); None when no stored version or template has that label."""
    if not label:
        return None
    if label == f"template:{DEFAULT_TEMPLATE}":
        return await _load(load_template(DEFAULT_TEMPLATE), label, None)
    number, _, sha = label.removeprefix("v").partition(":")
    if not number.isdigit() or not sha:
        return None
    version = (
        await db.execute(
            select(PolicyVersion).where(
                PolicyVersion.organisation_id == organisation_id,
                PolicyVersion.number == int(number),
            )
        )
    ).scalar_one_or_none()
    if version is None or _label(version.number, version.sha256) != label:
        return None
    return await _load(version.document, label, version.id)


class DecidedSession(Protocol):
    """What ``policy_for_session`` reads of a support session (no import of its model)."""

    @property
    def organisation_id(self) -> uuid.UUID: ...

    @property
    def policy_version(self) -> str | None: ...


async def policy_for_session(db: AsyncSession, support_session: DecidedSession) -> ActivePolicy:
    """The policy ``support_session`` was decided with (its stored ``policy_version``: a
    pilot's version where one ran for its device's group), so that every later check of the
    session answers by the same rules; the active policy only for a session with no label."""
    found = await get_policy_by_label(
        db, organisation_id=support_session.organisation_id, label=support_session.policy_version
    )
    if found is not None:
        return found
    return await get_active_policy(db, organisation_id=support_session.organisation_id)


def policy_denied(decision: Decision) -> PolicyDenied:
    return PolicyDenied(
        decision.reason,
        rule=decision.rule,
        reason=decision.reason,
        reason_code=decision.reason_code,
        params=dict(decision.params),
        policy_version=decision.policy_version,
        effect=decision.effect.value,
    )


async def decide(
    db: AsyncSession,
    *,
    actor: Actor,
    organisation_id: uuid.UUID,
    request: Request,
    context: EvaluationContext,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    policy: ActivePolicy | None = None,
) -> Decision:
    """Evaluate on ``policy`` (the active one when not given: a pilot's version or a session's
    own is passed in) and record the decision in the same transaction."""
    active = policy or await get_active_policy(db, organisation_id=organisation_id)
    decision = evaluate(active.compiled, request, context)
    action = (
        AuditAction.POLICY_DECISION_DENIED
        if decision.effect.value == "deny"
        else AuditAction.POLICY_DECISION_MADE
    )
    await record(
        db,
        action=action,
        actor=actor,
        organisation_id=organisation_id,
        target_type=target_type,
        target_id=target_id,
        details={
            "request": request.model_dump(mode="json"),
            "context": context.model_dump(mode="json"),
            "effect": decision.effect.value,
            "rule": decision.rule,
            "reason": decision.reason,
            "reason_code": decision.reason_code,
            "params": dict(decision.params),
            "policy_version": decision.policy_version,
        },
    )
    return decision


# ---- versions --------------------------------------------------------------------------------


async def upload_version(
    db: AsyncSession, *, organisation_id: uuid.UUID, document: str, comment: str, actor: Actor
) -> PolicyVersion:
    await parse_document(document)
    number = (
        int(
            (
                await db.execute(
                    select(func.coalesce(func.max(PolicyVersion.number), 0)).where(
                        PolicyVersion.organisation_id == organisation_id
                    )
                )
            ).scalar_one()
        )
        + 1
    )
    sha = hashlib.sha256(document.encode()).hexdigest()
    version = PolicyVersion(
        organisation_id=organisation_id,
        number=number,
        document=document,
        sha256=sha,
        comment=comment,
        author_id=actor.id,
        author_name=actor.display_name,
    )
    db.add(version)
    await db.flush()
    await record(
        db,
        action=AuditAction.POLICY_VERSION_UPLOADED,
        actor=actor,
        organisation_id=organisation_id,
        target_type="policy_version",
        target_id=version.id,
        details={"number": number, "sha256": sha, "comment": comment},
    )
    return version


async def list_versions(db: AsyncSession, *, organisation_id: uuid.UUID) -> list[PolicyVersion]:
    rows = await db.execute(
        select(PolicyVersion)
        .where(PolicyVersion.organisation_id == organisation_id)
        .order_by(PolicyVersion.number)
    )
    return list(rows.scalars())


async def get_version_or_raise(
    db: AsyncSession, *, organisation_id: uuid.UUID, number: int
) -> PolicyVersion:
    version = (
        await db.execute(
            select(PolicyVersion).where(
                PolicyVersion.organisation_id == organisation_id, PolicyVersion.number == number
            )
        )
    ).scalar_one_or_none()
    if version is None:
        raise NotFound("No such policy version.", number=number)
    return version


def diff_documents(old: str, new: str, *, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


async def diff_with_previous(db: AsyncSession, *, version: PolicyVersion) -> str:
    if version.number == 1:
        return diff_documents("", version.document, old_name="(none)", new_name="v1")
    previous = await get_version_or_raise(
        db, organisation_id=version.organisation_id, number=version.number - 1
    )
    return diff_documents(
        previous.document,
        version.document,
        old_name=f"v{previous.number}",
        new_name=f"v{version.number}",
    )


async def activate_version(
    db: AsyncSession, *, version: PolicyVersion, actor: Actor
) -> PolicyVersion:
    previous = await get_active_version(db, organisation_id=version.organisation_id)
    await db.execute(
        update(PolicyVersion)
        .where(PolicyVersion.organisation_id == version.organisation_id, PolicyVersion.is_active)
        .values(is_active=False)
    )
    version.is_active = True
    version.activated_at = utcnow()
    await db.flush()
    await record(
        db,
        action=AuditAction.POLICY_VERSION_ACTIVATED,
        actor=actor,
        organisation_id=version.organisation_id,
        target_type="policy_version",
        target_id=version.id,
        details={
            "number": version.number,
            "sha256": version.sha256,
            "previous": previous.number if previous else None,
        },
    )
    return version


def explain_request(
    policy: ActivePolicy | Policy, request_data: Mapping[str, Any], context_data: Mapping[str, Any]
) -> dict[str, Any]:
    request, context = parse_request_and_context(request_data, context_data)
    target = policy.compiled if isinstance(policy, ActivePolicy) else policy
    return explain(target, request, context).as_dict()


def parse_request_and_context(
    request_data: Mapping[str, Any], context_data: Mapping[str, Any]
) -> tuple[Request, EvaluationContext]:
    try:
        return parse_request(dict(request_data)), EvaluationContext.model_validate(
            dict(context_data)
        )
    except ValidationError as exc:
        raise ValidationFailed(
            "The request to explain is not valid.",
            problems=[
                {"loc": [str(p) for p in e["loc"]], "message": e["msg"]} for e in exc.errors()
            ],
        ) from exc


# ---- dry-run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatedChange:
    seq: int
    occurred_at: datetime
    request_kind: str
    was_effect: str
    was_rule: str
    was_version: str | None
    now_effect: str
    now_rule: str
    now_reason: str
    now_reason_code: str = ""
    now_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Simulation:
    replayed: int
    unchanged: int
    skipped: int
    changes: list[SimulatedChange]


async def simulate(
    db: AsyncSession, *, organisation_id: uuid.UUID, draft: str, since: datetime
) -> Simulation:
    """Replay the decisions recorded since ``since`` against ``draft``; list what would change.

    Each decision is replayed with the request and context recorded at the time (including
    the time itself), so the only difference is the policy.
    """
    compiled = await off_loop(
        lambda: compile_policy(validate_document(draft, version_label="draft")),
        source=Source.REQUEST,
    )
    rows = await db.execute(
        select(AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.details)
        .where(
            AuditEvent.chain == chain_for(organisation_id),
            AuditEvent.action.in_([str(a) for a in DECISION_ACTIONS]),
            AuditEvent.occurred_at >= since,
        )
        .order_by(AuditEvent.seq)
    )
    replayed = unchanged = skipped = 0
    changes: list[SimulatedChange] = []
    for seq, occurred_at, details in rows:
        try:
            request, context = parse_request_and_context(details["request"], details["context"])
        except (KeyError, TypeError, ValidationFailed):
            # Recorded by an older schema: reported as skipped, never guessed at.
            skipped += 1
            continue
        replayed += 1
        decision = evaluate(compiled, request, context)
        if decision.effect.value == details.get("effect"):
            unchanged += 1
            continue
        changes.append(
            SimulatedChange(
                seq=seq,
                occurred_at=occurred_at,
                request_kind=request.kind,
                was_effect=details.get("effect", "?"),
                was_rule=details.get("rule", "?"),
                was_version=details.get("policy_version"),
                now_effect=decision.effect.value,
                now_rule=decision.rule,
                now_reason=decision.reason,
                now_reason_code=decision.reason_code,
                now_params=dict(decision.params),
            )
        )
    return Simulation(replayed=replayed, unchanged=unchanged, skipped=skipped, changes=changes)
