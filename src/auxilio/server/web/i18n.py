"""The web pages' languages: Babel catalogues, the person's locale and time zone, and filters.

Every ``locale/<lang>/LC_MESSAGES/*.po`` is read at start and merged into one catalogue per
language (each page area keeps its own file, so helpers never edit the same one). msgids are
the English texts, so English needs no catalogue: a missing translation shows the English.
"""

from __future__ import annotations

import datetime as dt
import gettext
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, dates, numbers
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES: tuple[str, ...] = ("en", "es")
DEFAULT_LANGUAGE = "en"
# The names shown in the language switch, each in its own language.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "es": "Español"}


def merged_catalogue(lang: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    """All of ``lang``'s .po files as one catalogue (a msgid in two files: the last wins)."""
    merged = Catalog(locale=lang)
    for path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            part = read_po(handle, locale=lang)
        for message in part:
            if message.id and message.string:
                merged.add(message.id, message.string)
    return merged


class _Translations(gettext.GNUTranslations):
    """GNUTranslations over a Babel catalogue compiled in memory (no .mo files to keep)."""

    def __init__(self, catalogue: Catalog) -> None:
        import io

        buffer = io.BytesIO()
        write_mo(buffer, catalogue)
        buffer.seek(0)
        super().__init__(buffer)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of ``lang``, built once per process."""
    if lang == DEFAULT_LANGUAGE or lang not in LANGUAGES:
        return gettext.NullTranslations()
    return _Translations(merged_catalogue(lang))


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The person's language: the switch's cookie, else the browser's Accept-Language."""
    if cookie in LANGUAGES:
        return str(cookie)
    for tag in _accepted(accept_language or ""):
        base = tag.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def _accepted(header: str) -> Iterable[str]:
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def zone(name: str | None) -> ZoneInfo:
    """A valid IANA zone, or UTC: the time zone cookie comes from the browser and may be junk."""
    if name and len(name) < 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Formatters:
    """Babel formatting in one person's locale and time zone (the templates' filters)."""

    lang: str
    tz: ZoneInfo

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    def datetime(self, value: dt.datetime | None, style: str = "medium") -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return dates.format_datetime(value, format=style, tzinfo=self.tz, locale=self.locale)

    def date(self, value: dt.date | dt.datetime | None, style: str = "medium") -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)
            value = aware.astimezone(self.tz).date()
        return dates.format_date(value, format=style, locale=self.locale)

    def number(self, value: float | int | None, decimals: int | None = None) -> str:
        if value is None:
            return ""
        if decimals is None:
            return numbers.format_decimal(value, locale=self.locale)
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return numbers.format_decimal(value, format=pattern, locale=self.locale)

    def timeago(self, value: dt.datetime | None, now: dt.datetime | None = None) -> str:
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta: dt.timedelta = value - (now or dt.datetime.now(UTC))
        return dates.format_timedelta(delta, add_direction=True, threshold=1.0, locale=self.locale)
