"""Request and response bodies of the runbook routes.

The draft body is deliberately shallow: sizes and JSON types only. What makes a runbook valid
(platforms, interpreter, each parameter declaration, the time limit) is decided by the one
``Runbook`` model in ``service.check_draft``, which answers 422 ``runbook.invalid`` with the
``field`` that is wrong (``parameters.0.choices``), for the API and the CLI alike.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from auxilio.crypto.runbooks import MAX_SCRIPT_BYTES, Runbook, RunbookParameter, runbook_digest
from auxilio.protocol.types import SignedDocument
from auxilio.server.runbooks.models import RunbookState, RunbookVersion
from auxilio.server.validation import INT32_MAX

RunbookSlug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class RunbookDraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runbook_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: Annotated[str, StringConstraints(max_length=200)]
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    platforms: list[Annotated[str, StringConstraints(max_length=16)]] = Field(max_length=3)
    interpreter: Annotated[str, StringConstraints(max_length=16)]
    script: Annotated[str, StringConstraints(max_length=MAX_SCRIPT_BYTES)]
    # RunbookParameter declarations: name, type (string|integer|boolean|choice), description,
    # required, default, pattern, max_length, minimum, maximum, choices, pass_as (env|argument).
    parameters: list[dict[str, Any]] = Field(default=[], max_length=16)
    timeout_seconds: StrictInt = Field(ge=0, le=INT32_MAX)

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude={"runbook_id"})


class RunbookSummaryOut(BaseModel):
    runbook_id: str
    version: int
    state: RunbookState
    name: str
    platforms: list[str]
    interpreter: str
    timeout_seconds: int
    author_id: uuid.UUID
    author_name: str
    created_at: AwareDatetime
    approved_by_id: uuid.UUID | None
    approved_by_name: str | None
    approved_at: AwareDatetime | None
    retired_at: AwareDatetime | None
    # SHA-256 of the signed body: what a support session's grant pins (null for a draft).
    sha256: str | None


class RunbookOut(RunbookSummaryOut):
    description: str
    script: str
    parameters: list[RunbookParameter]
    # The document as signed at approval; the fields above are read from it, not from the
    # database columns, whenever it exists.
    signed: SignedDocument | None


class RunbookPage(BaseModel):
    items: list[RunbookSummaryOut]
    total: int
    limit: int
    offset: int


def _common(row: RunbookVersion) -> dict[str, Any]:
    return {
        "state": RunbookState(row.state),
        "created_at": row.created_at,
        "retired_at": row.retired_at,
    }


def runbook_out(row: RunbookVersion, document: Runbook | None) -> RunbookOut:
    """``row`` as served: a signed version's content comes from ``document`` (what was signed
    and verified), a draft's from the columns."""
    if document is None:
        return RunbookOut(
            **_common(row), runbook_id=row.runbook_id, version=row.version, name=row.name,
            platforms=list(row.platforms), interpreter=row.interpreter,
            timeout_seconds=row.timeout_seconds, author_id=row.author_id,
            author_name=row.author_name, approved_by_id=row.approver_id,
            approved_by_name=row.approver_name, approved_at=row.approved_at,
            description=row.description, script=row.script,
            parameters=[RunbookParameter.model_validate(p) for p in row.parameters], signed=None,
            sha256=None,
        )  # fmt: skip
    signed = SignedDocument(body=row.signed_body or "", signature=row.signature or "")
    return RunbookOut(
        **_common(row), runbook_id=document.runbook_id, version=document.version,
        name=document.name, platforms=list(document.platforms), interpreter=document.interpreter,
        timeout_seconds=document.timeout_seconds, author_id=uuid.UUID(document.author_id),
        author_name=document.author_name, approved_by_id=uuid.UUID(document.approved_by_id),
        approved_by_name=document.approved_by_name, approved_at=document.approved_at,
        description=document.description, script=document.script,
        parameters=list(document.parameters), signed=signed, sha256=runbook_digest(signed),
    )  # fmt: skip


def summary_out(row: RunbookVersion, document: Runbook | None) -> RunbookSummaryOut:
    full = runbook_out(row, document)
    return RunbookSummaryOut.model_validate(
        full.model_dump(include=set(RunbookSummaryOut.model_fields))
    )
