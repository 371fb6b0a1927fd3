"""The policy editor says the engine's errors in the person's language, from their codes.

The codes come from the engine twice over: its registry (``ERROR_CODES``) and a scan of its
source for every ``"policy.<code>"`` literal, so a code added without a registry entry (or without
a wording here) fails a test rather than reaching a Spanish page as English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from auxilio.policy import ERROR_CODES, PolicyInvalid, load_template, parse_policy
from auxilio.server.web import i18n, policy_messages
from auxilio.server.web.admin_policy import locate
from auxilio.server.web.pages import environment
from tests.web.conftest import Person

POLICY_SRC = Path(policy_messages.__file__).resolve().parents[2] / "policy"
# The exception's own code (the whole document is invalid), never the code of one error.
NOT_AN_ERROR_CODE = {"policy.invalid"}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")

HEAD = "version: 1\nname: t\ncapabilities:\n  chat: {roles: [technician]}\nsessions:\n"
# (document, code, the Spanish message the page must show for it)
BAD = [
    (HEAD + "  max_duration: 90x\n", "policy.invalid_duration",
     "«90x» no es una duración mayor que cero, como 45s, 90m, 2h o 30d."),
    (HEAD + "  max_duration: 1h\n  max_duraton: 2h\n", "policy.unknown_field",
     "Campo desconocido «max_duraton»: el esquema no tiene ningún campo con ese nombre"),
    (HEAD + "  max_duration: 1h\nsupport_hours:\n  timezone: Mars/Olympus\n"
     "  weekly: {mon: ['08:00-18:00']}\n", "policy.invalid_timezone",
     "«Mars/Olympus» no es el nombre de una zona horaria IANA"),
    ("version: 1\ncapabilities: {}\nsessions: {max_duration: 1h}\n", "policy.missing_field",
     "El campo «name» es obligatorio."),
    (HEAD + "  max_duration: 1h\n  warn_before: 2h\n", "policy.inconsistent",
     "«warn_before» contradice otro campo de la política."),
    (HEAD + "  max_duration: 1h\n  recording: [required\n", "policy.yaml_syntax",
     "El texto no es YAML bien formado."),
    ("- just\n- a list\n", "policy.not_a_mapping",
     "La política debe ser un conjunto de secciones (nombre: valor)."),
    (HEAD.replace("version: 1", "version: 2") + "  max_duration: 1h\n",
     "policy.unsupported_version", "Este motor no entiende la versión «2» del esquema."),
    ("name: " + "x" * (64 * 1024), "policy.too_large",
     "El documento es más grande de lo que puede ser una política (64 KiB)."),
    ("name: t\nx: " + "[" * 20 + "]" * 20 + "\n", "policy.too_deep",
     "anidadas a más profundidad de la que admite una política (16 niveles)."),
]  # fmt: skip


def scanned_codes() -> set[str]:
    """Every ``"policy.<code>"`` string literal in the engine's source."""
    found: set[str] = set()
    for path in POLICY_SRC.rglob("*.py"):
        found |= set(re.findall(r"[\"'](policy\.[a-z_]+)[\"']", path.read_text(encoding="utf-8")))
    return found - NOT_AN_ERROR_CODE


def wordings() -> list[str]:
    texts = [t for w in policy_messages.MESSAGES.values() for t in (w.document, w.field, w.value)]
    return [t for t in texts if t] + [*policy_messages.EFFECTS.values(), policy_messages.UNKNOWN]


def test_the_scan_finds_codes_of_each_part_of_the_engine() -> None:
    codes = scanned_codes()
    # yamlsource.py, loader.py, types.py, schema.py, hours.py: the scan reads them all.
    assert {"policy.yaml_alias", "policy.unknown_field", "policy.invalid_duration",
            "policy.pre_authorised_not_approved", "policy.invalid_ical"} <= codes  # fmt: skip


def test_every_code_the_engine_can_emit_is_in_its_registry() -> None:
    assert scanned_codes() - set(ERROR_CODES) == set()


def test_every_code_the_engine_can_emit_has_a_wording() -> None:
    missing = (scanned_codes() | set(ERROR_CODES)) - set(policy_messages.MESSAGES)
    assert not missing, f"codes without a wording in policy_messages.py: {sorted(missing)}"


def test_every_wording_has_a_spanish_text_with_the_same_placeholders() -> None:
    spanish = i18n.merged_catalogue("es")
    problems = []
    for msgid in wordings():
        message = spanish.get(msgid)
        if message is None or not message.string:
            problems.append(f"untranslated: {msgid!r}")
        elif set(PLACEHOLDER.findall(msgid)) != set(PLACEHOLDER.findall(str(message.string))):
            problems.append(f"placeholders differ: {msgid!r} -> {message.string!r}")
    assert not problems, "\n".join(problems)


def test_a_wording_uses_the_value_when_the_document_holds_one() -> None:
    data = {"sessions": {"max_duration": "90x"}, "roles": ["a", "b"]}
    message = policy_messages.message_for("policy.invalid_duration", "sessions.max_duration", data)
    assert message.params == {"field": "max_duration", "value": "90x"}
    # A list is no value to quote: the field's wording is used.
    listed = policy_messages.message_for("policy.invalid_value", "roles", data)
    assert listed.params == {"field": "roles"}
    # No path: the whole document's wording, without parameters.
    whole = policy_messages.message_for("policy.yaml_syntax", "", None)
    assert whole == policy_messages.Message("The text is not well-formed YAML.", {})


def test_a_code_this_catalogue_does_not_know_gets_the_general_wording() -> None:
    message = policy_messages.message_for("policy.from_a_newer_engine", "sessions", {})
    assert message.msgid == policy_messages.UNKNOWN


@pytest.mark.parametrize(("document", "code", "spanish"), BAD, ids=[b[1] for b in BAD])
def test_each_engine_error_reads_in_spanish_at_its_line(
    document: str, code: str, spanish: str
) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document)
    raw = [{"path": e.path, "line": e.line, "code": e.code, "message": e.message}
           for e in caught.value.errors]  # fmt: skip
    located = [e for e in locate(document, raw) if e.code == code]
    assert located, [e.code for e in locate(document, raw)]
    html = (
        environment("es")
        .get_template("web/admin/_policy_validation.html")
        .render(errors=located, summary={}, locale="es")
    )
    assert spanish in html, html
    assert code in html
    where = "Línea" if located[0].line else i18n.translations("es").gettext("The whole document")
    assert where in html


def test_an_effect_reads_in_spanish() -> None:
    trans = i18n.translations("es")
    assert [trans.gettext(policy_messages.EFFECTS[e]) for e in ("allow", "require_consent")] == [
        "permitido",
        "requiere consentimiento",
    ]


@pytest.mark.e2e
def test_a_bad_policy_gives_the_spanish_message_with_its_line_in_a_spanish_browser(
    new_page: Callable[..., Page],
    create_person: Callable[..., Person],
    screenshot: Callable[[Page, str], Any],
) -> None:
    admin = create_person("policy-es@web-admin.example", "admin", name="Ana", org="web-admin")
    page = new_page(locale="es-ES", timezone_id="Europe/Madrid")
    page.goto("/login")
    page.locator("#email").fill(admin.email)
    page.locator("#password").fill(admin.password)
    page.locator("#code").fill(admin.next_code())
    page.locator("main button.primary").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto("/admin/policy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Editor de la política")
    bad = load_template("software-company").replace("max_duration: ", "max_duration: 90x # ", 1)
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "90x" in text)
    page.locator("#policy-document").fill(bad)
    page.get_by_role("button", name="Validar").click()
    error = page.locator("li.policy-error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text(f"Línea {line}")
    expect(error.locator("p.message")).to_contain_text(
        "«90x» no es una duración mayor que cero, como 45s, 90m, 2h o 30d."
    )
    expect(error.locator("p.message")).to_contain_text("policy.invalid_duration")
    # The engine's English sentence is only a labelled detail, not the message.
    expect(error.locator("p.message")).not_to_contain_text("is not a duration")
    expect(error.locator("details p[lang=en]")).to_have_count(1)
    screenshot(page, "web-admin-policy-error-es")


def test_the_engines_own_words_stay_beside_the_message_as_a_labelled_english_detail() -> None:
    document = HEAD + "  max_duration: 1h\n  max_duraton: 2h\n"
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document)
    raw = [{"path": e.path, "line": e.line, "code": e.code, "message": e.message}
           for e in caught.value.errors]  # fmt: skip
    for lang in ("en", "es"):
        html = (
            environment(lang)
            .get_template("web/admin/_policy_validation.html")
            .render(errors=locate(document, raw), summary={}, locale=lang)
        )
        # The engine's hint (a close field name) is kept, marked as English for screen readers.
        assert '<p lang="en">unknown field &#34;max_duraton&#34; (did you mean' in html, html
