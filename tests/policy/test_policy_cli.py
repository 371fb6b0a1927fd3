"""The ``auxilio policy`` sub-commands, run through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from auxilio.policy import load_template
from auxilio.policy.cli import app

runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "policy.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def test_check_accepts_a_valid_policy(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(_write(tmp_path, load_template("school")))])
    assert result.exit_code == 0
    assert "ok" in result.output
    assert "School" in result.output


def test_check_prints_each_located_error(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: t\ncapabilities: {}\nsessions:\n  max_duration: 90x\n  recordin: off\n"
    )
    result = runner.invoke(app, ["check", str(_write(tmp_path, text))])
    assert result.exit_code == 1
    assert 'sessions.max_duration: "90x" is not a duration' in result.output
    assert "(line 5)" in result.output
    assert "policy.unknown_field" in result.output


def test_explain_prints_the_trail_as_json(tmp_path: Path) -> None:
    request = {
        "kind": "capability.use",
        "capability": "terminal",
        "technician_role": "end_user",
        "context": {"now": "2025-10-07T08:00:00Z"},
    }
    file = _write(tmp_path, load_template("software-company"))
    result = runner.invoke(app, ["explain", str(file), "--request", json.dumps(request), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decision"]["effect"] == "deny"
    assert data["decision"]["rule"] == "capabilities.terminal.roles"
    assert data["trail"][0]["rule"] == "capabilities.terminal.roles"


def test_explain_reads_a_request_file_and_prints_a_table(tmp_path: Path) -> None:
    file = _write(tmp_path, load_template("school"))
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"kind": "emergency.declare", "role": "supervisor"}))
    result = runner.invoke(app, ["explain", str(file), "--request", f"@{request_file}"])
    assert result.exit_code == 0, result.output
    assert "emergency.declare_roles" in result.output
    assert "allow" in result.output


def test_explain_rejects_a_malformed_request(tmp_path: Path) -> None:
    file = _write(tmp_path, load_template("school"))
    result = runner.invoke(app, ["explain", str(file), "--request", '{"kind": "teleport"}'])
    assert result.exit_code == 2


def test_templates_lists_and_prints() -> None:
    listing = runner.invoke(app, ["templates"])
    assert listing.output.split() == [
        "managed-servers",
        "school",
        "software-company",
        "strict-privacy",
    ]
    school = runner.invoke(app, ["templates", "school"])
    assert school.output == load_template("school")
    assert runner.invoke(app, ["templates", "hospital"]).exit_code == 1
