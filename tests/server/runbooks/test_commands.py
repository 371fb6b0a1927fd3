"""``auxilio admin runbooks``: the examples imported as drafts, approval with the API's checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from auxilio.cli import app as cli
from auxilio.crypto.runbooks import read_runbook
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.keys import load_or_create_signing_key
from auxilio.server.runbooks import service
from auxilio.server.runbooks.models import RunbookVersion
from auxilio.server.settings import load_settings

runner = CliRunner()
PASSWORD = "a long enough password for tests"


def invoke(data: Path, *args: str, stdin: str | None = None) -> object:
    return runner.invoke(cli, [*args, "--data-dir", str(data)], input=stdin)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for email, role in [("sam@acme.test", "senior_technician"), ("sue@acme.test", "supervisor")]:
        result = invoke(
            data,
            "admin",
            "create-user",
            email,
            "--role",
            role,
            "--org",
            "acme",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return data


async def _state(data: Path) -> tuple[list[RunbookVersion], list[str]]:
    engine = create_engine(load_settings(data_dir=data))
    try:
        async with create_sessionmaker(engine)() as db:
            rows = list(
                (
                    await db.execute(select(RunbookVersion).order_by(RunbookVersion.runbook_id))
                ).scalars()
            )
            actions = [
                a
                for (a,) in await db.execute(
                    select(AuditEvent.action)
                    .where(AuditEvent.action.like("runbook:%"))
                    .order_by(AuditEvent.seq)
                )
            ]
    finally:
        await engine.dispose()
    return rows, actions


def state(data: Path) -> tuple[list[RunbookVersion], list[str]]:
    return asyncio.run(_state(data))


def test_import_examples_writes_three_drafts_once(data_dir: Path) -> None:
    first = invoke(
        data_dir,
        "admin",
        "runbooks",
        "import-examples",
        "--org",
        "acme",
        "--author",
        "sam@acme.test",
    )
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    rows, actions = state(data_dir)
    assert [(r.runbook_id, r.version, r.state) for r in rows] == [
        ("clear-print-queue", 1, "draft"),
        ("collect-logs", 1, "draft"),
        ("flush-dns", 1, "draft"),
    ]
    assert actions == ["runbook:runbook:created"] * 3
    again = invoke(
        data_dir,
        "admin",
        "runbooks",
        "import-examples",
        "--org",
        "acme",
        "--author",
        "sam@acme.test",
    )
    assert again.exit_code == 0
    assert "already in the catalogue" in again.output  # type: ignore[attr-defined]
    assert len(state(data_dir)[0]) == 3


def test_approve_signs_with_the_server_key_under_the_policy(data_dir: Path) -> None:
    invoke(
        data_dir,
        "admin",
        "runbooks",
        "import-examples",
        "--org",
        "acme",
        "--author",
        "sam@acme.test",
    )
    refused = invoke(
        data_dir,
        "admin",
        "runbooks",
        "approve",
        "--org",
        "acme",
        "--id",
        "collect-logs",
        "--approver",
        "sam@acme.test",
    )
    assert refused.exit_code == 1
    assert "runbook.approver_role" in refused.output  # type: ignore[attr-defined]

    approved = invoke(
        data_dir,
        "admin",
        "runbooks",
        "approve",
        "--org",
        "acme",
        "--id",
        "collect-logs",
        "--approver",
        "sue@acme.test",
    )
    assert approved.exit_code == 0, approved.output  # type: ignore[attr-defined]
    rows, actions = state(data_dir)
    row = next(r for r in rows if r.runbook_id == "collect-logs")
    assert row.state == "approved"
    signed = service.signed_document_of(row)
    assert signed is not None
    key = load_or_create_signing_key(load_settings(data_dir=data_dir).signing_key_path)
    assert read_runbook(key.public_key(), signed).approved_by_name == "sue@acme.test"
    assert row.digest is not None and row.digest in approved.output  # type: ignore[attr-defined]
    assert actions[-2:] == ["runbook:approval:refused", "runbook:runbook:approved"]

    listed = invoke(data_dir, "admin", "runbooks", "list", "--org", "acme")
    assert f"collect-logs\tv1\tapproved\t{row.digest}" in listed.output  # type: ignore[attr-defined]


def test_approve_names_an_unknown_approver(data_dir: Path) -> None:
    result = invoke(
        data_dir,
        "admin",
        "runbooks",
        "approve",
        "--org",
        "acme",
        "--id",
        "collect-logs",
        "--approver",
        "nobody@acme.test",
    )
    assert result.exit_code == 1
    assert "user_not_found" in result.output  # type: ignore[attr-defined]
