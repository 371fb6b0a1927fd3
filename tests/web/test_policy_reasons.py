"""The reasons of the engine's decisions read in the person's language, from their codes.

The codes come from the engine's registry (``auxilio.policy.reasons.REASONS``), which the policy
tests hold to the engine's source; here every one of them must have an English wording whose
placeholders are exactly the code's parameters, and a Spanish text with the same placeholders.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from auxilio.policy import (
    DeclareEmergency,
    EvaluationContext,
    StartSupportSession,
    UseCapability,
    evaluate,
    explain,
    load_template,
    parse_policy,
)
from auxilio.policy.reasons import REASONS, SITUATION
from auxilio.server.policies.service import SimulatedChange, Simulation
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.service import _capability_entry
from auxilio.server.web import i18n, policy_messages
from auxilio.server.web.console_session import session_decisions
from auxilio.server.web.pages import environment
from tests.web.conftest import Person

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
# Tuesday 2025-10-07 at 22:00 in Madrid.
LATE = dt.datetime(2025, 10, 7, 20, 0, tzinfo=dt.UTC)


def test_every_reason_code_of_the_engine_has_a_wording_and_no_wording_is_stale() -> None:
    assert set(REASONS) - set(policy_messages.REASON_WORDS) == set()
    assert set(policy_messages.REASON_WORDS) - set(REASONS) == set()


def test_each_wording_names_exactly_the_parameters_of_its_code() -> None:
    wrong = []
    for code, msgid in policy_messages.REASON_WORDS.items():
        declared = set(REASONS[code]) - {SITUATION}
        if set(PLACEHOLDER.findall(msgid)) != declared:
            wrong.append(f"{code}: {msgid!r} (parameters {sorted(declared)})")
    assert not wrong, "\n".join(wrong)


def test_every_reason_wording_has_a_spanish_text_with_the_same_placeholders() -> None:
    spanish = i18n.merged_catalogue("es")
    words = [*policy_messages.REASON_WORDS.values()]
    words += [w for table in policy_messages.PARAM_WORDS.values() for w in table.values()]
    problems = []
    for msgid in words:
        message = spanish.get(msgid)
        if message is None or not message.string:
            problems.append(f"untranslated: {msgid!r}")
        elif set(PLACEHOLDER.findall(msgid)) != set(PLACEHOLDER.findall(str(message.string))):
            problems.append(f"placeholders differ: {msgid!r} -> {message.string!r}")
    assert not problems, "\n".join(problems)


def test_a_reason_reads_in_spanish_with_its_role_in_spanish() -> None:
    text = policy_messages.reason_text(
        "es",
        "sessions.extension.approver_too_junior",
        {"role": "senior_technician", "approver": "supervisor"},
    )
    assert text == "El rol «técnico sénior» no puede aprobarla; debe hacerlo el rol «supervisor»."


def test_a_clause_is_said_after_the_situation_it_adds_to() -> None:
    params = {SITUATION: "support_hours.outside", "day": "Tue", "time": "22:00", "zone": "CEST"}
    code = "support_hours.closed.approval_required"
    assert policy_messages.reason_text("es", code, params) == (
        "Martes 22:00 CEST está fuera del horario acordado. "
        "El soporte fuera de horario necesita una aprobación."
    )
    assert policy_messages.reason_text("en", code, params) == (
        "Tuesday 22:00 CEST is outside the agreed hours. Support outside hours needs an approval."
    )


def test_a_code_this_catalogue_does_not_know_has_no_wording() -> None:
    assert policy_messages.reason_text("es", "sessions.from_a_newer_engine", {}) is None
    # A clause over an unknown situation is as unknown as the situation.
    params = {SITUATION: "support_hours.from_a_newer_engine"}
    assert policy_messages.reason_text("es", "support_hours.closed.emergency_only", params) is None


def _render(template: str, lang: str, **context: Any) -> str:
    return (
        environment(lang)
        .get_template(template)
        .render(
            locale=lang,
            effects=policy_messages.EFFECTS,
            reason_text=policy_messages.reason_text,
            **context,
        )
    )


@pytest.mark.parametrize(
    ("request_", "spanish"),
    [
        (
            StartSupportSession(mode="attended", technician_role="technician"),
            "No consta que el técnico haya hecho la formación «privacy».",
        ),
        (
            UseCapability(capability="keylogger", technician_role="technician"),
            "«keylogger» no está en el catálogo de herramientas aprobadas.",
        ),
        (
            DeclareEmergency(role="technician"),
            "El rol «técnico» no puede declarar una emergencia.",
        ),
    ],
    ids=["start", "capability", "emergency"],
)
def test_a_dry_run_shows_every_reason_in_spanish(request_: Any, spanish: str) -> None:
    policy = parse_policy(load_template("software-company"))
    result = explain(policy, request_, EvaluationContext(now=LATE)).as_dict()
    html = _render("web/admin/_policy_explain.html", "es", result=result)
    assert spanish in html, html
    # No reason falls back to the engine's English sentence.
    assert 'lang="en"' not in html
    for step in result["trail"]:
        assert step["reason"] not in html


def test_a_reason_of_a_newer_engine_is_shown_in_english_marked_as_english() -> None:
    result = {
        "decision": {
            "effect": "deny", "rule": "x", "reason": "a newer reason", "obligations": {},
            "reason_code": "x.from_a_newer_engine", "params": {},
        },
        "trail": [],
    }  # fmt: skip
    html = _render("web/admin/_policy_explain.html", "es", result=result)
    assert '<span lang="en">a newer reason</span>' in html


def test_a_replayed_change_shows_its_new_reason_in_spanish() -> None:
    change = SimulatedChange(
        seq=1, occurred_at=LATE, request_kind="support_session.start", was_effect="allow",
        was_rule="sessions.max_duration", was_version="v1", now_effect="deny",
        now_rule="staff.mfa_required", now_reason="the technician has not verified a second factor",
        now_reason_code="staff.mfa_required.unverified", now_params={},
    )  # fmt: skip
    result = Simulation(replayed=1, unchanged=0, skipped=0, changes=[change])
    html = _render("web/admin/_policy_replay.html", "es", result=result, _formatters=_formatters())
    assert "El técnico no ha verificado un segundo factor." in html
    assert "the technician has not verified" not in html


def _formatters() -> i18n.Formatters:
    return i18n.Formatters("es", i18n.zone("Europe/Madrid"))


@pytest.mark.e2e
def test_the_editors_dry_run_gives_spanish_reasons_in_a_spanish_browser(
    new_page: Callable[..., Page],
    create_person: Callable[..., Person],
    screenshot: Callable[[Page, str], Any],
) -> None:
    admin = create_person("reasons-es@web-admin.example", "admin", name="Ana", org="web-admin")
    page = new_page(locale="es-ES", timezone_id="Europe/Madrid")
    page.goto("/login")
    page.locator("#email").fill(admin.email)
    page.locator("#password").fill(admin.password)
    page.locator("#code").fill(admin.next_code())
    page.locator("main button.primary").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto("/admin/policy")
    page.locator("#policy-document").fill(load_template("software-company"))
    page.locator("#request-json").fill(
        '{"kind": "capability.use", "capability": "keylogger", "technician_role": "technician"}'
    )
    page.get_by_role("button", name="Simular esta solicitud").click()
    decision = page.locator("#decision")
    expect(decision).to_contain_text(
        "«keylogger» no está en el catálogo de herramientas aprobadas."
    )
    expect(decision).to_contain_text("capabilities.not_in_catalogue")
    expect(decision).not_to_contain_text("is not in the catalogue")
    expect(page.locator("#policy-explain [lang=en]")).to_have_count(0)
    screenshot(page, "web-admin-policy-dry-run-es")


def test_the_consoles_decisions_word_each_capabilitys_reason_from_its_code() -> None:
    policy = parse_policy(load_template("software-company"))
    asked = UseCapability(capability="chat", technician_role="technician")
    decision = evaluate(policy, asked, EvaluationContext(now=LATE))
    row = SupportSession(
        state="denied",
        decision_rule="staff.mfa_required",
        decision_reason="the technician has not verified a second factor",
        capability_limits={"chat": _capability_entry([decision])},
    )
    decisions = session_decisions(row)
    assert decisions[1]["reason_code"] == decision.reason_code
    html = _render("web/console/_decisions.html", "es", decisions=decisions)
    spanish = policy_messages.reason_text("es", decision.reason_code, decision.params)
    assert spanish is not None
    assert spanish in html, html
    assert decision.reason not in html
    # The session's own decision keeps no code (its row has only the English): marked English.
    assert '<span lang="en">the technician has not verified a second factor</span>' in html


def test_a_denied_sessions_own_reason_is_worded_from_its_stored_code() -> None:
    policy = parse_policy(load_template("software-company"))
    asked = StartSupportSession(mode="attended", technician_role="technician")
    decision = evaluate(policy, asked, EvaluationContext(now=LATE))
    assert decision.reason_code, decision
    row = SupportSession(
        state="denied", decision_rule=decision.rule, decision_reason=decision.reason,
        decision_reason_code=decision.reason_code, decision_params=dict(decision.params),
        capability_limits={},
    )  # fmt: skip
    html = _render("web/console/_decisions.html", "es", decisions=session_decisions(row))
    spanish = policy_messages.reason_text("es", decision.reason_code, decision.params)
    assert spanish is not None and spanish in html, html
    assert decision.reason not in html and 'lang="en"' not in html


def test_a_parameter_from_the_request_is_escaped_in_the_page() -> None:
    policy = parse_policy(load_template("software-company"))
    asked = UseCapability(capability="<b>x</b>", technician_role="technician")
    result = explain(policy, asked, EvaluationContext(now=LATE)).as_dict()
    html = _render("web/admin/_policy_explain.html", "es", result=result)
    assert "«&lt;b&gt;x&lt;/b&gt;» no está en el catálogo" in html
    assert "<b>x</b>" not in html
