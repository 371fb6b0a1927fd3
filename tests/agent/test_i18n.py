"""The consent prompt in plain words, in the person's language (English or Spanish)."""

from __future__ import annotations

import string
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.capabilities.diagnostics_sections import default_sections
from auxilio.agent.capabilities.zones_local import LINKED_FILE
from auxilio.agent.consent import ask_consent, render_prompt, short_fingerprint
from auxilio.agent.i18n import CATALOGUE, EN, ES, language_from_environment, texts_for
from auxilio.crypto.grants import Grant
from auxilio.policy.zones import DEFAULT_ZONES
from auxilio.protocol.types import Capability, ConsentDecision
from tests.agent.factories import LEGAL_TEXT, make_grant
from tests.agent.sessionkit import FakeLines

PRIVACY = "Auxilio Escuela processes the session record for 90 days; ask privacy@example.test."


def grant(**overrides: object) -> Grant:
    _, made = make_grant(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate().public_key(),
                         X25519PrivateKey.generate(), **overrides)  # type: ignore[arg-type]  # fmt: skip
    return made


def prompt(made: Grant, texts: object = EN) -> str:
    return render_prompt(made, deadline=made.issued_at + timedelta(seconds=60), texts=texts)  # type: ignore[arg-type]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def pairs(english: object, spanish: object, path: str = "") -> list[tuple[str, str, str]]:
    """Every text of the catalogue as (where, English, Spanish): the handlers' own catalogues
    (``files``, ``diagnostics``, ``runbooks``) and the names in mappings included."""
    if isinstance(english, str):
        assert isinstance(spanish, str), path
        return [(path, english, spanish)]
    if isinstance(english, Mapping):
        assert isinstance(spanish, Mapping) and set(english) == set(spanish), path
        return [t for key in english for t in pairs(english[key], spanish[key], f"{path}[{key}]")]
    assert is_dataclass(english) and type(spanish) is type(english), path
    found: list[tuple[str, str, str]] = []
    for field in fields(english):
        where = f"{path}.{field.name}".lstrip(".")
        found += pairs(getattr(english, field.name), getattr(spanish, field.name), where)
    return found


def test_every_text_exists_in_both_languages_with_the_same_placeholders() -> None:
    texts = pairs(EN, ES)
    assert {"files.zone_title", "diagnostics.title", "runbooks.title"} <= {w for w, _, _ in texts}
    for where, english, spanish in texts:
        if where == "lang":
            continue
        assert english and spanish, where
        assert placeholders(english) == placeholders(spanish), where
    for texts_of in CATALOGUE.values():
        assert set(texts_of.capability_names) == set(Capability)
        assert set(texts_of.capability_plain) == set(Capability)


def test_every_built_in_zone_and_report_section_has_a_name_in_both_languages() -> None:
    for texts in CATALOGUE.values():
        assert set(texts.files.zone_names) == set(DEFAULT_ZONES) | {LINKED_FILE}
        assert list(texts.diagnostics.section_names) == list(default_sections(None))


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({"LANG": "es_MX.UTF-8"}, "es"),
        ({"LANG": "es_ES.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),  # LC_ALL decides first
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "es_AR"}, "es"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),  # a language we do not have: English
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_language_comes_from_the_device_locale(environ: dict[str, str], lang: str) -> None:
    assert language_from_environment(environ) == lang


def test_an_unknown_language_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'; choose one of en, es"):
        texts_for("fr")
    state = tmp_path / "agent-state"
    run = subprocess.run(
        [sys.executable, "-m", "auxilio", "agent", "join", "ABC-DEF-GHJ", "--server",
         "http://127.0.0.1:9", "--state-dir", str(state), "--lang", "fr"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--lang" in run.stderr and "'fr' is not one of" in run.stderr
    assert not state.exists()  # refused before anything was made or sent


def test_the_prompt_says_in_plain_words_what_each_capability_allows() -> None:
    made = grant(timeout_seconds=120)
    text = prompt(made)
    plain, details = text.split("\nDetails (for your IT department)\n")
    assert "Terminal: run commands as you: they can read every file your account can read" in plain
    assert "No answer:  within 2 minutes means refused" in plain
    assert "Technician: Ana López (Escuela Primaria Benito Juárez)" in plain  # aligned labels
    # The jargon is in the details only.
    for jargon in ("school-2025.1", "shell /bin/sh", "SHA256:"):
        assert jargon not in plain and jargon in details
    # A short, grouped key above (its first and last groups), the full one in the details.
    full = made.technician_key_fingerprint
    groups = full.removeprefix("SHA256:").split()
    assert f"Their key:  {short_fingerprint(full)}" in plain
    assert short_fingerprint(full) == " ".join(groups[:3]) + " … " + " ".join(groups[-3:])
    assert full in details


def test_the_privacy_notice_is_shown_as_given_and_nothing_when_the_policy_has_none() -> None:
    base = grant()
    with_notice = grant(terms=base.terms.model_copy(update={"privacy_notice": PRIVACY}))
    assert PRIVACY in prompt(with_notice)
    assert PRIVACY in prompt(with_notice, ES)  # the policy's words, never translated
    assert "privacy" not in prompt(base).lower()


def test_times_are_the_device_local_time_with_the_zone_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/Mexico_City")
    time.tzset()
    try:
        made = grant()
        local = made.not_after.astimezone()
        assert f"{local:%Y-%m-%d %H:%M:%S} (CST, America/Mexico_City)" in prompt(made)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_spanish_prompt_translates_only_the_agent_s_own_words() -> None:
    made = grant()
    text = prompt(made, ES)
    assert text.startswith("Solicitud de asistencia remota\n")
    assert "Terminal: ejecutar órdenes como usted: puede leer todos los archivos" in text
    assert "Si no responde:    en 1 minuto significa rechazado" in text
    # What the server signed stays as signed: names, purposes, ticket, legal text.
    for signed in ("Ana López", "to fix terminal", "T-2025-0042", LEGAL_TEXT):
        assert signed in text
    assert prompt(made, ES) != prompt(made, EN)


async def test_the_terminal_asks_in_spanish_and_takes_s_for_yes() -> None:
    made = grant()
    console = Console(record=True, width=200)
    lines = FakeLines()
    for answer in ("s", "n"):
        lines.queue.put_nowait(answer)
    result = await ask_consent(console, lines, made, texts=ES)  # type: ignore[arg-type]
    shown = console.export_text()
    assert "¿Permitir chat? [s/n]" in shown and "¿Permitir terminal? [s/n]" in shown
    assert result.decisions == {
        Capability.CHAT: ConsentDecision.GRANTED,
        Capability.TERMINAL: ConsentDecision.REFUSED,
    }
    assert result.prompt_text.startswith("Solicitud de asistencia remota")


def test_a_capability_with_its_own_shorter_limit_says_so() -> None:
    # Observed: the terminal's own 30 minutes were never shown to the person.
    made = grant(minutes=60)
    terminal_end = made.issued_at + timedelta(minutes=30)
    made = made.model_copy(update={"capabilities": tuple(
        item.model_copy(update={"expires_at": terminal_end})
        if item.capability is Capability.TERMINAL else item for item in made.capabilities
    )})  # fmt: skip
    text = prompt(made)
    terminal_block = text.split("2. ")[1]
    assert "only for 30 minutes, until" in terminal_block
    assert "only for" not in text.split("2. ")[0]  # chat runs to the session's end
    assert "solo durante 30 minutos, hasta las" in prompt(made, ES)
