"""Both languages complete: every msgid of the web pages has a Spanish translation.

The msgids are extracted the way ``pybabel extract`` would: Babel's Python extractor over
``src/auxilio/server/web/*.py`` and Jinja2's Babel extractor over ``templates/web/**``; the
translations are the merged catalogues the server loads at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file

from auxilio.server.web import i18n

WEB = Path(__file__).resolve().parents[2] / "src" / "auxilio" / "server" / "web"
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trimmed": "false", "newstyle_gettext": "true"}


def msgids() -> Iterator[tuple[str, str]]:
    """(msgid, where) for every translatable text in the web pages' source."""
    sources: list[tuple[str, Path, dict[str, str]]] = [
        ("python", path, {}) for path in sorted(WEB.glob("*.py"))
    ]
    sources += [
        ("jinja2.ext:babel_extract", path, JINJA_OPTIONS)
        for path in sorted((WEB / "templates" / "web").rglob("*.html"))
    ]
    for method, path, options in sources:
        for line, message, _comments, _context in extract_from_file(
            method, str(path), options=options, strip_comment_tags=True
        ):
            # A plural message is catalogued under its singular msgid.
            text = message[0] if isinstance(message, tuple) else message
            if text:
                yield text, f"{path.relative_to(WEB)}:{line}"


def translated(catalogue: Catalog, msgid: str) -> bool:
    """Whether ``msgid`` has a Spanish text (every plural form, for a plural message)."""
    message = catalogue.get(msgid)
    if message is None:
        return False
    if isinstance(message.string, tuple | list):
        return len(message.string) == catalogue.num_plurals and all(message.string)
    return bool(message.string)


def test_the_extraction_finds_the_login_page() -> None:
    found = {text for text, _ in msgids()}
    assert "Log in" in found
    assert "Skip to main content" in found
    assert "You have logged out." in found  # from Python (login.py)
    assert "Portal" in found  # marked with N_() in pages.py


def test_every_web_msgid_has_a_spanish_translation() -> None:
    spanish = i18n.merged_catalogue("es")
    missing = sorted(
        {f"{where}: {text!r}" for text, where in msgids() if not translated(spanish, text)}
    )
    assert not missing, "untranslated in locale/es/LC_MESSAGES/*.po:\n" + "\n".join(missing)


def test_spanish_translations_keep_their_placeholders() -> None:
    import re

    spanish = i18n.merged_catalogue("es")
    placeholder = re.compile(r"%\((\w+)\)[sd]")
    wrong = []
    for message in spanish:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(placeholder.findall(ids[-1]))
        wrong += [f"{ids[0]!r}: {t!r}" for t in texts if set(placeholder.findall(t)) != wanted]
    assert not wrong, "\n".join(wrong)


def test_a_plural_in_the_catalogue_is_translated_in_every_form() -> None:
    catalogue = Catalog(locale="es")
    catalogue.add(("%(num)d day", "%(num)d days"), ("%(num)d día", "%(num)d días", ""))
    catalogue.add("Log in", "Iniciar sesión")
    assert not translated(catalogue, "%(num)d day")
    assert translated(catalogue, "Log in")
    assert not translated(catalogue, "Log out")


def test_the_server_translates_with_the_merged_catalogue() -> None:
    spanish = i18n.translations("es")
    assert spanish.gettext("Log in") == "Iniciar sesión"
    assert i18n.translations("en").gettext("Log in") == "Log in"
