"""The runbook catalogue: drafts, approval under the active policy, retirement, and what support
sessions pin.

A draft is validated with the same ``Runbook`` model the agent reads, so a draft that would not
make a valid signed document is refused at once with the field that is wrong. Approval is the
only way a runbook gets signed: the approver's role must be among the active policy's
``capabilities.runbooks.approver_roles``, with ``two_person`` the author cannot approve, and the
time limit must fit ``max_timeout``. The signed document then replaces the columns as the truth:
``signed_runbook`` and ``pins_for`` read the signed body only, so a script edited in the
database afterwards is never what an agent receives (and its signature would not verify).

Every change writes its audit event in the same transaction; the script text never enters the
audit log, only its SHA-256 and, once signed, the digest a grant pins.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.runbooks import (
    ParameterInvalid,
    Runbook,
    RunbookError,
    read_runbook,
    runbook_digest,
    sign_runbook,
)
from auxilio.policy.schema import RunbooksRule
from auxilio.protocol.types import RunbookPin, SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import (
    AlreadyExists,
    DomainError,
    Forbidden,
    PolicyDenied,
    RunbookAlreadyRetired,
    RunbookApproverRefused,
    RunbookInvalid,
    RunbookNotDraft,
    RunbookNotFound,
    RunbookNotInCatalogue,
    RunbookSamePerson,
    RunbookSignatureInvalid,
    RunbooksNotAllowed,
    RunbookTimeoutTooLong,
)
from auxilio.server.policies.service import get_active_policy
from auxilio.server.runbooks.models import RunbookState, RunbookVersion
from auxilio.server.validation import forbidden_character

__all__ = [
    "RunbookNotInCatalogue",
    "approve_runbook",
    "check_approval",
    "check_draft",
    "create_draft",
    "document_of",
    "get_approved",
    "get_runbook_or_raise",
    "get_version",
    "is_policy_refusal",
    "list_runbooks",
    "pins_for",
    "record_refusal",
    "retire_runbook",
    "signed_document_of",
    "signed_runbook",
]

# A catalogue id: what policies list in capabilities.runbooks.approved (a subset of the
# protocol's Identifier, so every slug is a valid RunbookPin id).
RUNBOOK_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DRAFT_FIELDS = frozenset(
    {"name", "description", "platforms", "interpreter", "script", "parameters", "timeout_seconds"}
)
_MULTILINE = frozenset({"script", "description"})
RULE = "capabilities.runbooks"


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None:
        raise Forbidden("Runbooks belong to an organisation.")
    return actor.organisation_id


# ---- validation ------------------------------------------------------------------------------


def _bad_text(value: str, *, multiline: bool) -> str | None:
    """Why ``value`` cannot be stored or shown as it is, or ``None``. NUL cannot be stored on
    PostgreSQL; other control characters and bidirectional overrides let a script read
    differently to the approver than to the interpreter (the "Trojan Source" trick)."""
    found = forbidden_character(value, multiline=multiline)
    return None if found is None else found[1]


def _text_problems(value: Any, path: tuple[str | int, ...]) -> list[dict[str, str]]:
    if isinstance(value, str):
        why = _bad_text(value, multiline=len(path) == 1 and path[0] in _MULTILINE)
        return [] if why is None else [{"field": _dotted(path), "message": why}]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _text_problems(v, (*path, str(k)))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _text_problems(v, (*path, i))]
    return []


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def _invalid(problems: list[dict[str, str]]) -> RunbookInvalid:
    first = problems[0]
    return RunbookInvalid(
        f"{first['field']}: {first['message']}", field=first["field"], problems=problems
    )


def check_draft(
    fields: Mapping[str, Any], *, organisation_id: uuid.UUID, runbook_id: str, author: Actor
) -> Runbook:
    """The draft as the ``Runbook`` it would be once approved (approval fields provisional);
    raises ``RunbookInvalid`` naming the first wrong field and listing every problem."""
    if not RUNBOOK_SLUG.fullmatch(runbook_id):
        raise _invalid([{"field": "runbook_id",
                         "message": "lowercase letters, digits, '.', '_' or '-' (at most 64), "
                                    "starting with a letter or digit"}])  # fmt: skip
    unknown = sorted(set(fields) - DRAFT_FIELDS)
    if unknown:
        raise _invalid([{"field": name, "message": "is not a field of a runbook draft"}
                        for name in unknown])  # fmt: skip
    problems = _text_problems(dict(fields), ())
    if problems:
        raise _invalid(problems)
    provisional = {
        "organisation_id": str(organisation_id),
        "runbook_id": runbook_id,
        "version": 1,
        "author_id": str(author.id),
        "author_name": author.display_name,
        "approved_by_id": str(author.id),
        "approved_by_name": author.display_name,
        "approved_at": utcnow(),
    }
    try:
        return Runbook.model_validate({**fields, **provisional})
    except ValidationError as exc:
        raise _invalid(
            [{"field": _dotted(e["loc"]) or "runbook", "message": e["msg"]} for e in exc.errors()]
        ) from exc
    except ParameterInvalid as exc:
        # A default that fails its own declaration escapes pydantic as ParameterInvalid
        # (crypto.runbooks checks it with check_value inside the model validator).
        raise _invalid([{"field": _parameter_field(fields, exc.name, "default"),
                         "message": str(exc)}]) from exc  # fmt: skip


def _parameter_field(fields: Mapping[str, Any], name: str, attribute: str) -> str:
    declared = fields.get("parameters") or []
    for index, spec in enumerate(declared):
        if isinstance(spec, Mapping) and spec.get("name") == name:
            return f"parameters.{index}.{attribute}"
    return "parameters"


# ---- drafts ----------------------------------------------------------------------------------


async def _next_version(db: AsyncSession, organisation_id: uuid.UUID, runbook_id: str) -> int:
    query = select(func.coalesce(func.max(RunbookVersion.version), 0)).where(
        RunbookVersion.organisation_id == organisation_id, RunbookVersion.runbook_id == runbook_id
    )
    return int((await db.execute(query)).scalar_one()) + 1


def _script_sha256(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


async def create_draft(
    db: AsyncSession,
    *,
    runbook_id: str,
    fields: Mapping[str, Any],
    actor: Actor,
    now: datetime | None = None,
) -> RunbookVersion:
    """A new version of ``runbook_id`` (1 for a new id), as a draft written by ``actor``."""
    org = _org(actor)
    if actor.id is None:
        raise Forbidden("A runbook's author is a person.")
    checked = check_draft(fields, organisation_id=org, runbook_id=runbook_id, author=actor)
    row = RunbookVersion(
        organisation_id=org, runbook_id=runbook_id,
        version=await _next_version(db, org, runbook_id), name=checked.name,
        description=checked.description, platforms=list(checked.platforms),
        interpreter=checked.interpreter, script=checked.script,
        parameters=[p.model_dump(mode="json") for p in checked.parameters],
        timeout_seconds=checked.timeout_seconds, state=RunbookState.DRAFT.value,
        author_id=actor.id, author_name=actor.display_name, created_at=now or utcnow(),
    )  # fmt: skip
    try:
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError as exc:
        # Two drafts of one id at once on PostgreSQL: the second took the same number.
        raise AlreadyExists("Another version of this runbook was written at the same time; "
                            "try again.", runbook_id=runbook_id) from exc  # fmt: skip
    await record(db, action=AuditAction.RUNBOOK_CREATED, actor=actor, organisation_id=org,
                 target_type="runbook", target_id=row.id,
                 details={"runbook_id": runbook_id, "version": row.version,
                          "author_id": str(actor.id), "author": actor.display_name,
                          "script_sha256": _script_sha256(row.script),
                          "timeout_seconds": row.timeout_seconds})  # fmt: skip
    return row


# ---- reading ---------------------------------------------------------------------------------


async def list_runbooks(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    state: RunbookState | None = None,
    runbook_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[RunbookVersion], int]:
    """One page of versions, by id then newest version first, and the total matching."""
    query = select(RunbookVersion).where(RunbookVersion.organisation_id == organisation_id)
    if state is not None:
        query = query.where(RunbookVersion.state == state.value)
    if runbook_id is not None:
        query = query.where(RunbookVersion.runbook_id == runbook_id)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(
        query.order_by(RunbookVersion.runbook_id, RunbookVersion.version.desc())
        .limit(limit).offset(offset)
    )  # fmt: skip
    return list(rows.scalars()), int(total)


async def get_version(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    runbook_id: str,
    version: int,
    lock: bool = False,
) -> RunbookVersion | None:
    query = select(RunbookVersion).where(
        RunbookVersion.organisation_id == organisation_id,
        RunbookVersion.runbook_id == runbook_id,
        RunbookVersion.version == version,
    )
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def get_approved(
    db: AsyncSession, *, organisation_id: uuid.UUID, runbook_id: str, lock: bool = False
) -> RunbookVersion | None:
    """The current approved version of ``runbook_id`` (approval retires the one before)."""
    query = (
        select(RunbookVersion)
        .where(
            RunbookVersion.organisation_id == organisation_id,
            RunbookVersion.runbook_id == runbook_id,
            RunbookVersion.state == RunbookState.APPROVED.value,
        )
        .order_by(RunbookVersion.version.desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def get_runbook_or_raise(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    runbook_id: str,
    version: int | None = None,
    lock: bool = False,
) -> RunbookVersion:
    """``version`` of ``runbook_id``; without one, its approved version."""
    if version is None:
        row = await get_approved(db, organisation_id=organisation_id, runbook_id=runbook_id,
                                 lock=lock)  # fmt: skip
        if row is None:
            raise RunbookNotFound("This runbook has no approved version; ask for a ?version=.",
                                  runbook_id=runbook_id)  # fmt: skip
        return row
    row = await get_version(db, organisation_id=organisation_id, runbook_id=runbook_id,
                            version=version, lock=lock)  # fmt: skip
    if row is None:
        raise RunbookNotFound(runbook_id=runbook_id, version=version)
    return row


def signed_document_of(row: RunbookVersion) -> SignedDocument | None:
    """The document signed at approval (``None`` for a draft)."""
    if row.signed_body is None or row.signature is None:
        return None
    return SignedDocument(body=row.signed_body, signature=row.signature)


def document_of(row: RunbookVersion, server_public_key: Ed25519PublicKey) -> Runbook | None:
    """What was signed, verified with the server's key: the fields to show for a signed
    version, whatever its columns say now. ``RunbookSignatureInvalid`` if it does not verify."""
    signed = signed_document_of(row)
    if signed is None:
        return None
    try:
        document = read_runbook(server_public_key, signed)
    except RunbookError as exc:
        raise RunbookSignatureInvalid(runbook_id=row.runbook_id, version=row.version) from exc
    if (document.organisation_id, document.runbook_id, document.version) != (
        str(row.organisation_id),
        row.runbook_id,
        row.version,
    ):
        # A signed body copied onto another row: signed, but not this version's.
        raise RunbookSignatureInvalid(runbook_id=row.runbook_id, version=row.version)
    return document


# ---- approval --------------------------------------------------------------------------------


def check_approval(rule: RunbooksRule | None, *, row: RunbookVersion, approver: Actor) -> None:
    """The active policy's answer to "may ``approver`` sign ``row``"; raises the refusal, each
    naming its rule path."""
    if rule is None:
        raise RunbooksNotAllowed(rule=RULE)
    if approver.role is None or approver.role not in rule.approver_roles:
        raise RunbookApproverRefused(
            rule=f"{RULE}.approver_roles", role=str(approver.role) if approver.role else None,
            approver_roles=[str(r) for r in rule.approver_roles],
        )  # fmt: skip
    if rule.two_person and approver.id == row.author_id:
        raise RunbookSamePerson(rule=f"{RULE}.two_person")
    limit = int(rule.max_timeout.total_seconds())
    if row.timeout_seconds > limit:
        raise RunbookTimeoutTooLong(
            f"The runbook's time limit ({row.timeout_seconds} s) is above the policy's "
            f"max_timeout ({limit} s).",
            rule=f"{RULE}.max_timeout", timeout_seconds=row.timeout_seconds, max_timeout=limit,
        )  # fmt: skip


def _runbook_of(row: RunbookVersion, approver: Actor, now: datetime) -> Runbook:
    """The document to sign, from the draft's columns (validated when the draft was written,
    and again here: a column edited since then fails before anything is signed)."""
    return Runbook.model_validate({
        "organisation_id": str(row.organisation_id), "runbook_id": row.runbook_id,
        "version": row.version, "name": row.name, "description": row.description,
        "platforms": row.platforms, "interpreter": row.interpreter, "script": row.script,
        "parameters": row.parameters, "timeout_seconds": row.timeout_seconds,
        "author_id": str(row.author_id), "author_name": row.author_name,
        "approved_by_id": str(approver.id), "approved_by_name": approver.display_name,
        "approved_at": now,
    })  # fmt: skip


async def _lock_approved(db: AsyncSession, row: RunbookVersion) -> RunbookVersion | None:
    """Lock every version of ``row``'s id and return the approved one: two approvals of one
    id at once then queue, and the id never ends up with two approved versions."""
    rows = await db.execute(
        select(RunbookVersion)
        .where(
            RunbookVersion.organisation_id == row.organisation_id,
            RunbookVersion.runbook_id == row.runbook_id,
        )
        .with_for_update()
    )
    approved = [r for r in rows.scalars() if r.state == RunbookState.APPROVED.value]
    return max(approved, key=lambda r: r.version) if approved else None


async def approve_runbook(
    db: AsyncSession,
    *,
    row: RunbookVersion,
    actor: Actor,
    server_key: Ed25519PrivateKey,
    now: datetime | None = None,
) -> RunbookVersion:
    """Sign the draft ``row`` with the server key and make it the approved version of its id
    (the approved version before it is retired). ``row`` should be locked by the caller."""
    if row.state != RunbookState.DRAFT.value:
        raise RunbookNotDraft(runbook_id=row.runbook_id, version=row.version, state=row.state)
    active = await get_active_policy(db, organisation_id=row.organisation_id)
    check_approval(active.policy.capabilities.runbooks, row=row, approver=actor)
    now = now or utcnow()
    signed = sign_runbook(server_key, _runbook_of(row, actor, now))
    previous = await _lock_approved(db, row)
    if previous is not None:
        previous.state = RunbookState.RETIRED.value
        previous.retired_at = now
        # Its own event: a pin checks the audit for a version's retirement (_check_audited).
        await record(db, action=AuditAction.RUNBOOK_RETIRED, actor=actor,
                     organisation_id=row.organisation_id, target_type="runbook",
                     target_id=previous.id,
                     details={"runbook_id": previous.runbook_id, "version": previous.version,
                              "was": RunbookState.APPROVED.value, "digest": previous.digest,
                              "replaced_by": row.version})  # fmt: skip
    row.state = RunbookState.APPROVED.value
    row.approver_id, row.approver_name, row.approved_at = actor.id, actor.display_name, now
    row.signed_body, row.signature = signed.body, signed.signature
    row.digest = runbook_digest(signed)
    await db.flush()
    await record(db, action=AuditAction.RUNBOOK_APPROVED, actor=actor,
                 organisation_id=row.organisation_id, target_type="runbook", target_id=row.id,
                 details={"runbook_id": row.runbook_id, "version": row.version,
                          "digest": row.digest, "author_id": str(row.author_id),
                          "author": row.author_name, "approver_id": str(actor.id),
                          "approver": actor.display_name, "policy": active.version_label,
                          "retired_version": previous.version if previous else None})  # fmt: skip
    return row


async def record_refusal(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    runbook_id: str,
    version: int,
    error: DomainError,
    actor: Actor,
) -> None:
    """A refused approval is evidence too; callers record it after rolling back the request."""
    await record(db, action=AuditAction.RUNBOOK_APPROVAL_REFUSED, actor=actor,
                 organisation_id=organisation_id, target_type="runbook",
                 details={"runbook_id": runbook_id, "version": version, "code": error.code,
                          "rule": error.details.get("rule")})  # fmt: skip


def is_policy_refusal(error: DomainError) -> bool:
    return isinstance(error, PolicyDenied) and str(error.details.get("rule", "")).startswith(RULE)


async def retire_runbook(
    db: AsyncSession, *, row: RunbookVersion, actor: Actor, now: datetime | None = None
) -> RunbookVersion:
    """Take a draft or approved version out of use: it is no longer served nor pinned."""
    if row.state == RunbookState.RETIRED.value:
        raise RunbookAlreadyRetired(runbook_id=row.runbook_id, version=row.version)
    was = row.state
    row.state = RunbookState.RETIRED.value
    row.retired_at = now or utcnow()
    await db.flush()
    await record(db, action=AuditAction.RUNBOOK_RETIRED, actor=actor,
                 organisation_id=row.organisation_id, target_type="runbook", target_id=row.id,
                 details={"runbook_id": row.runbook_id, "version": row.version, "was": was,
                          "digest": row.digest})  # fmt: skip
    return row


# ---- what support sessions use ---------------------------------------------------------------


async def _approved_rows(
    db: AsyncSession, organisation_id: uuid.UUID, runbook_ids: Collection[str]
) -> dict[str, RunbookVersion]:
    rows = await db.execute(
        select(RunbookVersion).where(
            RunbookVersion.organisation_id == organisation_id,
            RunbookVersion.runbook_id.in_(list(runbook_ids)),
            RunbookVersion.state == RunbookState.APPROVED.value,
        )
    )
    found: dict[str, RunbookVersion] = {}
    for row in rows.scalars():
        if row.runbook_id not in found or row.version > found[row.runbook_id].version:
            found[row.runbook_id] = row
    return found


def _signed_or_missing(row: RunbookVersion) -> SignedDocument:
    signed = signed_document_of(row)
    if signed is None:  # an approved row always has one; a row edited by hand may not
        raise RunbookNotInCatalogue(ids=[row.runbook_id])
    return signed


def _pin(row: RunbookVersion, *, consent: bool) -> RunbookPin:
    # The digest of the signed body itself, not the stored column: the agent checks the body.
    digest = runbook_digest(_signed_or_missing(row))
    return RunbookPin(id=row.runbook_id, version=row.version, sha256=digest, consent=consent)


async def pins_for(
    db: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    runbook_ids: Sequence[str],
    pre_authorised: Collection[str],
) -> list[RunbookPin]:
    """The grant's pins for ``runbook_ids`` (in that order, once each): each id's approved
    version and the digest of its signed body; ``consent`` unless the policy pre-authorises it.
    ``RunbookNotInCatalogue`` names every id with no approved version."""
    wanted = list(dict.fromkeys(runbook_ids))
    if not wanted:
        return []
    found = await _approved_rows(db, organisation_id, wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise RunbookNotInCatalogue(
            f"No approved version in the catalogue: {', '.join(missing)}.", ids=missing
        )
    for runbook_id in wanted:
        await _check_audited(db, found[runbook_id])
    return [_pin(found[i], consent=i not in pre_authorised) for i in wanted]


async def _check_audited(db: AsyncSession, row: RunbookVersion) -> None:
    """The row is what its approval recorded in the audit chain (tamper-evident, unlike the
    table): the signed body's digest is the approved one, and no retirement followed. A body
    edited in the database, or a retired version set back to approved, is refused by name."""
    events = (await db.execute(
        select(AuditEvent.action, AuditEvent.details).where(
            AuditEvent.organisation_id == row.organisation_id,
            AuditEvent.target_type == "runbook", AuditEvent.target_id == row.id.hex,
            AuditEvent.action.in_([str(AuditAction.RUNBOOK_APPROVED),
                                   str(AuditAction.RUNBOOK_RETIRED)]),
        )
    )).all()  # fmt: skip
    digest = runbook_digest(_signed_or_missing(row))
    approved = [d for a, d in events if a == str(AuditAction.RUNBOOK_APPROVED)]
    retired = [d for a, d in events if a == str(AuditAction.RUNBOOK_RETIRED)]
    if retired or not any(d.get("digest") == digest for d in approved):
        raise RunbookSignatureInvalid(runbook_id=row.runbook_id, version=row.version)


async def signed_runbook(
    db: AsyncSession, *, organisation_id: uuid.UUID, runbook_id: str
) -> SignedDocument:
    """The signed document of ``runbook_id``'s approved version, exactly as signed."""
    found = await _approved_rows(db, organisation_id, [runbook_id])
    if runbook_id not in found:
        raise RunbookNotInCatalogue(
            f"No approved version in the catalogue: {runbook_id}.", ids=[runbook_id]
        )
    await _check_audited(db, found[runbook_id])
    return _signed_or_missing(found[runbook_id])
