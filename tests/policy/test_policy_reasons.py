"""Every reason the engine gives carries a registered code and exactly its parameters."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from policy_factories import BASE, NOW, ctx, make_policy, start
from test_policy_properties import contexts, policies, requests

from auxilio.policy import (
    AccessFile,
    DeclareEmergency,
    ExtendSession,
    UseCapability,
    authorize,
    evaluate,
    explain,
)
from auxilio.policy.compiled import compile_policy
from auxilio.policy.engine import _decide
from auxilio.policy.reasons import REASONS, SITUATION, params_complete

POLICY_SOURCES = Path(__file__).parents[2] / "src" / "auxilio" / "policy"

# Where each builder of a reason takes its code, counted from zero among positional arguments.
CODE_ARGUMENT = {"_out": 3, "_pass": 2, "RuleOutcome": 4, "Decision": 5, "HoursCheck": 4}


def _calls() -> list[tuple[str, int, str, ast.expr | None]]:
    found = []
    for source in sorted(POLICY_SOURCES.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            index = CODE_ARGUMENT.get(node.func.id)
            if index is None:
                continue
            keyword = next(
                (k.value for k in node.keywords if k.arg in ("code", "reason_code")), None
            )
            code = node.args[index] if len(node.args) > index else keyword
            found.append((source.name, node.lineno, node.func.id, code))
    return found


def test_every_reason_built_in_the_engine_names_its_code() -> None:
    calls = _calls()
    assert len(calls) > 60  # the scan sees the rules, not an empty directory
    missing = [f"{name}:{line} {func}" for name, line, func, code in calls if code is None]
    assert missing == []
    literal = {c.value for _n, _l, _f, c in calls if isinstance(c, ast.Constant)}
    assert literal - set(REASONS) == set()


def test_every_registered_code_is_emitted_somewhere_in_the_engine() -> None:
    written: set[str] = set()
    for source in POLICY_SOURCES.glob("*.py"):
        if source.name == "reasons.py":
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                written.add(node.value)
    assert set(REASONS) - written == set()


def test_a_clause_names_a_situation_that_is_itself_a_reason() -> None:
    for code, params in REASONS.items():
        if SITUATION in params:
            assert params == (SITUATION,), code


def _check(outcomes: Any) -> list[str]:
    bad = []
    for o in outcomes:
        if not params_complete(o.reason_code, o.params):
            bad.append(f"{o.rule}: {o.reason_code!r} {dict(o.params)}")
        for value in o.params.values():
            assert isinstance(value, str | int)
    return bad


@settings(max_examples=300, deadline=None)
@given(policies(), requests, contexts)
def test_generated_decisions_carry_complete_reason_codes(
    generated: Any, request_: Any, context: Any
) -> None:
    policy, _listed = generated
    explanation = explain(policy, request_, context)
    assert _check([explanation.decision, *explanation.trail]) == []


SCENARIOS: list[tuple[str, dict[str, Any], Any, Any, dict[str, Any]]] = [
    ("sessions.granted", {}, start(), ctx(consented=frozenset({"session"})), {"minutes": 60}),
    ("staff.mfa_required.unverified", {}, start(mfa_verified=False), ctx(), {}),
    ("staff.training.missing", {}, start(trainings={}), ctx(), {"training": "privacy"}),
    (
        "staff.training.expired",
        {},
        start(trainings={"privacy": NOW - timedelta(days=400)}),
        ctx(),
        {"training": "privacy", "expired_on": "2025-09-02"},
    ),
    (
        "support_hours.holiday",
        {},
        start(),
        ctx(now=NOW.replace(month=12, day=25)),
        {"date": "2025-12-25", "holiday": "Navidad"},
    ),
    (
        "support_hours.outside",
        {},
        start(),
        ctx(now=NOW.replace(hour=20)),
        {"day": "Tue", "time": "22:00", "zone": "CEST"},
    ),
    ("consent.session.required", {}, start(), ctx(), {}),
    (
        "capabilities.role_denied",
        {},
        UseCapability(capability="terminal", technician_role="technician", terminal_shell="bash"),
        ctx(),
        {"role": "technician", "capability": "terminal"},
    ),
    (
        "capabilities.too_large",
        {},
        UseCapability(
            capability="file_transfer",
            technician_role="technician",
            direction="download",
            size=20_000_000,
        ),
        ctx(),
        {"size": 20_000_000, "max": 10_000_000},
    ),
    (
        "capabilities.not_in_catalogue",
        {},
        UseCapability(capability="keylogger", technician_role="technician"),
        ctx(),
        {"capability": "keylogger"},
    ),
    (
        "personal_data_zones.not_absolute",
        {},
        AccessFile(platform="linux", path="notes.txt"),
        ctx(),
        {"path": "notes.txt"},
    ),
    (
        "sessions.extension.approval_required",
        {},
        ExtendSession(requested=timedelta(minutes=10), current_end_at=NOW, reason="x"),
        ctx(),
        {"approver": "supervisor"},
    ),
    (
        "sessions.extension.approver_too_junior",
        {},
        ExtendSession(
            requested=timedelta(minutes=10),
            current_end_at=NOW,
            reason="x",
            approver_role="technician",
        ),
        ctx(),
        {"role": "technician", "approver": "supervisor"},
    ),
    (
        "emergency.declare.denied",
        {},
        DeclareEmergency(role="technician"),
        ctx(),
        {"role": "technician"},
    ),
]


@pytest.mark.parametrize(
    ("code", "overrides", "request_", "context", "params"),
    SCENARIOS,
    ids=[s[0] for s in SCENARIOS],
)
def test_the_deciding_reason_has_its_code_and_parameters(
    code: str, overrides: dict[str, Any], request_: Any, context: Any, params: dict[str, Any]
) -> None:
    decision = evaluate(make_policy(**overrides), request_, context)
    assert (decision.reason_code, dict(decision.params)) == (code, params)
    assert decision.as_dict()["reason_code"] == code
    assert decision.as_dict()["params"] == params


def test_a_closed_hours_clause_carries_why_support_is_closed() -> None:
    hours = {**BASE["support_hours"], "outside_hours": "require_approval"}
    decision = evaluate(make_policy(support_hours=hours), start(), ctx(now=NOW.replace(hour=20)))
    assert decision.reason_code == "support_hours.closed.approval_required"
    assert dict(decision.params) == {
        SITUATION: "support_hours.outside", "day": "Tue", "time": "22:00", "zone": "CEST",
    }  # fmt: skip
    assert decision.reason.endswith("; support outside hours needs an approval")


def test_the_trail_of_an_explanation_names_every_step_by_code() -> None:
    trail = explain(make_policy(), start(), ctx()).as_dict()["trail"]
    assert [step["reason_code"] for step in trail] == [
        "staff.training.current",
        "support_hours.inside",
        "consent.session.required",
        "sessions.granted",
    ]
    assert trail[1]["params"] == {"day": "Tue", "time": "10:00"}


def test_a_permission_check_names_its_role_and_permission() -> None:
    held = authorize("admin", "audit:read")
    assert (held.reason_code, dict(held.params)) == (
        "roles.permission_held", {"role": "admin", "permission": "audit:read"},
    )  # fmt: skip
    assert authorize("nobody", "audit:read").reason_code == "roles.unknown"
    assert authorize("end_user", "audit:read").reason_code == "roles.permission_missing"


def test_a_decision_nothing_grants_is_the_default_code() -> None:
    # No rule set of today's engine ends without a grant or a deny; the default still has a code.
    decision = _decide(compile_policy(make_policy()), iter(()), None)
    assert (decision.rule, decision.reason_code) == ("default", "default.no_rule_allows")
    trail = explain(make_policy(), DeclareEmergency(role="supervisor"), ctx()).trail
    assert [o.reason_code for o in trail] == ["emergency.declare.allowed"]


def test_params_complete_refuses_unknown_codes_and_wrong_parameters() -> None:
    assert not params_complete("no.such.code", {})
    assert not params_complete("sessions.granted", {})
    assert not params_complete("sessions.granted", {"minutes": 60, "extra": 1})
    assert not params_complete("support_hours.closed.emergency_only", {SITUATION: "nope"})
    assert not params_complete(
        "support_hours.closed.emergency_only", {SITUATION: "support_hours.closed.emergency_only"}
    )
    assert params_complete("sessions.granted", {"minutes": 60})


def test_docs_list_every_reason_code_with_its_parameters() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", docs, flags=re.MULTILINE))
    for code, params in REASONS.items():
        assert code in rows, code
        assert rows[code].strip() == (", ".join(f"`{p}`" for p in params) or "-"), code
