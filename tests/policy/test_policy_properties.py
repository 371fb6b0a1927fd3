"""Properties of the engine that must hold for every input, checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_factories import BASE, NOW

from auxilio.policy import (
    Effect,
    EvaluationContext,
    Role,
    StartSupportSession,
    UseCapability,
    evaluate,
    explain,
    parse_policy,
)
from auxilio.policy.schema import BUILTIN_CAPABILITIES, EXTERNAL_TOOLS, SessionMode

ROLES = [r.value for r in Role]
MODES = [m.value for m in SessionMode]
ALL_CAPABILITIES = [*BUILTIN_CAPABILITIES, *(f"external_tools.{t}" for t in EXTERNAL_TOOLS)]
EXTRA: dict[str, dict[str, Any]] = {
    "terminal": {"shells": ["bash"]},
    "file_transfer": {"direction": "both"},
    "runbooks": {"approved": ["r1"]},
}
MODE_OK = {
    "chat": ["attended", "chat_only", "unattended"],
    "diagnostics": ["attended", "automated", "unattended"],
    "runbooks": ["attended", "automated", "unattended"],
}

times = st.datetimes(
    # hypothesis wants naive bounds; the values it draws get their zone from timezones=
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001 - naive bound required by hypothesis
    max_value=datetime(2026, 12, 31),  # noqa: DTZ001 - naive bound required by hypothesis
    timezones=st.just(UTC),
)


@st.composite
def policies(draw: st.DrawFn) -> Any:
    caps: dict[str, Any] = {"external_tools": {}}
    for name in draw(st.lists(st.sampled_from(ALL_CAPABILITIES), unique=True, max_size=6)):
        entry: dict[str, Any] = {
            "roles": draw(st.lists(st.sampled_from(ROLES), min_size=1, unique=True)),
            "modes": draw(
                st.lists(
                    st.sampled_from(MODE_OK.get(name, ["attended", "unattended"])),
                    min_size=1,
                    unique=True,
                )
            ),
            "consent": draw(st.sampled_from(["inherit", "required", "not_required"])),
            **EXTRA.get(name, {}),
        }
        if name.startswith("external_tools."):
            caps["external_tools"][name.split(".")[1]] = entry
        else:
            caps[name] = entry
    doc = {
        "version": 1,
        "name": "generated",
        "capabilities": caps,
        "sessions": {"max_duration": "1h"},
        "consent": {
            "required": draw(st.booleans()),
            "scope": draw(st.sampled_from(["per_capability", "per_session"])),
        },
        "staff": {"mfa_required": draw(st.booleans())},
    }
    if draw(st.booleans()):
        doc["support_hours"] = BASE["support_hours"]
    if draw(st.booleans()):
        doc["unattended"] = {
            "allowed_device_groups": ["g"],
            "approval_required": draw(st.booleans()),
        }
    return parse_policy(yaml.safe_dump(doc)), set(caps) - {"external_tools"} | {
        f"external_tools.{t}" for t in caps["external_tools"]
    }


contexts = st.builds(
    EvaluationContext,
    now=times,
    consented=st.frozensets(st.sampled_from(["session", *ALL_CAPABILITIES]), max_size=4),
    emergency_active=st.booleans(),
)
capability_requests = st.builds(
    UseCapability,
    capability=st.sampled_from([*ALL_CAPABILITIES, "keylogger"]),
    technician_role=st.sampled_from(ROLES),
    mode=st.sampled_from(MODES),
    terminal_shell=st.sampled_from(["bash", "cmd", None]),
    runbook_id=st.sampled_from(["r1", "r2", None]),
    direction=st.sampled_from(["upload", "download", None]),
    ticket_id=st.sampled_from(["T-1", None]),
)
start_requests = st.builds(
    StartSupportSession,
    mode=st.sampled_from(MODES),
    technician_role=st.sampled_from(ROLES),
    mfa_verified=st.booleans(),
    approval_present=st.booleans(),
    emergency=st.booleans(),
    device_group=st.sampled_from(["g", None]),
    ticket_id=st.sampled_from(["T-1", None]),
)
requests = st.one_of(capability_requests, start_requests)


@settings(max_examples=150, deadline=None)
@given(policies(), requests, contexts)
def test_any_deny_in_the_trail_makes_the_decision_deny(
    generated: Any, request_: Any, context: Any
) -> None:
    policy, _ = generated
    explanation = explain(policy, request_, context)
    if any(o.effect is Effect.DENY for o in explanation.trail):
        assert explanation.decision.effect is Effect.DENY
    assert evaluate(policy, request_, context) == explanation.decision


@settings(max_examples=150, deadline=None)
@given(policies(), requests, contexts)
def test_nothing_is_allowed_unless_some_rule_grants(
    generated: Any, request_: Any, context: Any
) -> None:
    policy, _ = generated
    explanation = explain(policy, request_, context)
    if explanation.decision.effect is not Effect.DENY:
        assert any(o.effect is Effect.ALLOW for o in explanation.trail)


@settings(max_examples=200, deadline=None)
@given(policies(), capability_requests, contexts)
def test_a_capability_the_policy_does_not_list_is_never_allowed(
    generated: Any, request_: Any, context: Any
) -> None:
    policy, listed = generated
    decision = evaluate(policy, request_, context)
    if request_.capability not in listed:
        assert decision.effect is Effect.DENY
    if decision.effect is not Effect.DENY:
        assert request_.capability in listed


@settings(max_examples=100, deadline=None)
@given(policies(), start_requests, contexts)
def test_a_missing_second_factor_overrides_everything_else(
    generated: Any, request_: Any, context: Any
) -> None:
    policy, _ = generated
    if policy.staff.mfa_required:
        no_mfa = request_.model_copy(update={"mfa_verified": False})
        assert evaluate(policy, no_mfa, context).effect is Effect.DENY


@settings(max_examples=50, deadline=None)
@given(policies(), start_requests)
def test_the_same_question_gets_the_same_answer(generated: Any, request_: Any) -> None:
    policy, _ = generated
    context = EvaluationContext(now=NOW + timedelta(minutes=1))
    assert evaluate(policy, request_, context) == evaluate(policy, request_, context)
