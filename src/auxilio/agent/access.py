"""The owner's pre-authorisations kept on the device (docs/unattended.md).

    <state_dir>/access/<id>.json   0600, {"document": {body, signature},
                                          "revocation": {body, signature} | null,
                                          "published": bool, "revocation_published": bool}

The signed documents are the truth: every read verifies them again with the device key, so a
file edited by hand (a wider scope, a longer window, a revocation removed) is not taken: an entry
whose document does not verify is left out (``problems()`` names it), and a revocation that does
not verify makes the entry count as revoked (the owner meant to revoke something). ``published``
and ``revocation_published`` are only the server's acknowledgements (``preauth.ack``); the agent
refuses a revoked pre-authorisation from the moment it signs the revocation, acknowledged or not.

The service (``auxilio agent run``) and ``auxilio agent access`` both write these files; each
read-modify-write holds an exclusive lock on ``access/.lock`` (POSIX), so an acknowledgement
written by the service never loses a revocation written at the same moment by the command.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from auxilio.agent.errors import AgentError
from auxilio.agent.state import AgentState
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import write_private_file
from auxilio.crypto.preauth import (
    MAX_WINDOW,
    WEEKDAYS,
    AccessWindow,
    PreAuthorisation,
    PreAuthorisationRevocation,
    sign_pre_authorisation,
    sign_revocation,
    verify_pre_authorisation,
    verify_revocation,
)
from auxilio.protocol.types import Capability, SignedDocument

try:  # POSIX; elsewhere the files are still written atomically, only not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    document: PreAuthorisation
    signed: SignedDocument
    revocation: PreAuthorisationRevocation | None
    revocation_signed: SignedDocument | None
    published: bool
    revocation_published: bool
    revocation_problem: str | None = None  # a revocation is on file but does not verify

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def revoked(self) -> bool:
        return self.revocation_signed is not None or self.revocation_problem is not None

    @property
    def revoked_at(self) -> datetime | None:
        return self.revocation.revoked_at if self.revocation is not None else None

    def expired(self, now: datetime) -> bool:
        return now >= self.document.window.not_after

    def is_live(self, now: datetime) -> bool:
        """Not revoked and not over (its window may still be shut at ``now``: hours, days)."""
        return not self.revoked and not self.expired(now)

    def state(self, now: datetime) -> str:
        """``revoked``, ``expired``, ``open`` (the window covers now) or ``waiting``."""
        if self.revoked:
            return "revoked"
        if self.expired(now):
            return "expired"
        return "open" if self.document.window.covers(now) else "waiting"


class AccessStore:
    def __init__(self, state: AgentState | Path) -> None:
        self.state = state if isinstance(state, AgentState) else AgentState(state)
        self.root = self.state.root / "access"
        self.root.mkdir(exist_ok=True, mode=0o700)
        self._problems: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------------------

    def _path(self, pre_authorisation_id: str) -> Path:
        if "/" in pre_authorisation_id or pre_authorisation_id.startswith("."):
            raise AgentError("access.unknown", f"no pre-authorisation {pre_authorisation_id!r}")
        return self.root / f"{pre_authorisation_id}.json"

    def _load(self, path: Path) -> AccessEntry | None:
        try:
            record = json.loads(path.read_text())
            signed = SignedDocument.model_validate(record["document"])
            document = verify_pre_authorisation(self.state.device_public_key, signed)
        except CryptoError as exc:
            self._problems[path.name] = exc.code
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self._problems[path.name] = f"unreadable: {type(exc).__name__}"
            return None
        if f"{document.id}.json" != path.name:
            self._problems[path.name] = "access.misfiled"
            return None
        revocation: PreAuthorisationRevocation | None = None
        revocation_signed: SignedDocument | None = None
        problem: str | None = None
        if record.get("revocation") is not None:
            try:
                revocation_signed = SignedDocument.model_validate(record["revocation"])
                revocation = verify_revocation(self.state.device_public_key, revocation_signed)
                if revocation.pre_authorisation_id != document.id:
                    raise AgentError("access.revocation_mismatch", "names another document")
            except (CryptoError, AgentError, ValueError) as exc:
                problem = getattr(exc, "code", None) or f"unreadable: {type(exc).__name__}"
                revocation = None
                revocation_signed = None
        return AccessEntry(
            document=document,
            signed=signed,
            revocation=revocation,
            revocation_signed=revocation_signed,
            published=bool(record.get("published", False)),
            revocation_published=bool(record.get("revocation_published", False)),
            revocation_problem=problem,
        )

    def all(self) -> list[AccessEntry]:
        """Every pre-authorisation that verifies, oldest first."""
        self._problems = {}
        entries = [e for p in self.root.glob("*.json") if (e := self._load(p)) is not None]
        return sorted(entries, key=lambda e: (e.document.created_at, e.id))

    def problems(self) -> dict[str, str]:
        """Files the last ``all()`` left out, with why."""
        return dict(self._problems)

    def get(self, pre_authorisation_id: str) -> AccessEntry | None:
        try:
            path = self._path(pre_authorisation_id)
        except AgentError:
            return None
        return self._load(path) if path.exists() else None

    def live(self, now: datetime | None = None) -> list[AccessEntry]:
        moment = now or datetime.now(UTC)
        return [e for e in self.all() if e.is_live(moment)]

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Cheap change detector for a poller: names, sizes and mtimes of the files."""
        found = []
        for path in self.root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                found.append((path.name, info.st_size, info.st_mtime_ns))
        return tuple(sorted(found))

    # -- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        lock = self.root / ".lock"
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, entry_id: str, record: dict[str, Any]) -> None:
        write_private_file(self._path(entry_id), json.dumps(record, indent=2).encode())

    def _record(self, entry_id: str) -> dict[str, Any]:
        path = self._path(entry_id)
        if not path.exists():
            raise AgentError("access.unknown", f"no pre-authorisation {entry_id!r} on this device")
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise AgentError("state.corrupt", f"{path} is not a JSON object")
        return data

    def grant(
        self,
        *,
        device_id: str,
        organisation_id: str,
        server_fingerprint: str,
        owner_name: str,
        scope: Iterable[Capability],
        window: AccessWindow,
        automated_runs: bool = False,
        note: str = "",
        now: datetime | None = None,
    ) -> AccessEntry:
        """Build, sign (device key) and store a new pre-authorisation; unpublished."""
        document = PreAuthorisation(
            id=str(uuid.uuid4()),
            device_id=device_id,
            organisation_id=organisation_id,
            server_fingerprint=server_fingerprint,
            owner_name=owner_name,
            scope=tuple(scope),
            automated_runs=automated_runs,
            window=window,
            note=note,
            created_at=now or datetime.now(UTC),
        )
        signed = sign_pre_authorisation(self.state.device_key, document)
        record = {"document": signed.model_dump(mode="json"), "revocation": None,
                  "published": False, "revocation_published": False}  # fmt: skip
        with self._locked():
            self._write(document.id, record)
        entry = self.get(document.id)
        assert entry is not None  # noqa: S101 - written just above
        return entry

    def revoke(
        self, pre_authorisation_id: str, reason: str = "", *, now: datetime | None = None
    ) -> AccessEntry:
        """Sign and store the revocation (once: a second call returns the entry as it is)."""
        with self._locked():
            entry = self.get(pre_authorisation_id)
            if entry is None:
                raise AgentError("access.unknown", f"no pre-authorisation {pre_authorisation_id!r}")
            if entry.revocation_signed is not None:
                return entry  # (a revocation that does not verify is signed again)
            revocation = PreAuthorisationRevocation(
                pre_authorisation_id=entry.id,
                device_id=entry.document.device_id,
                revoked_at=now or datetime.now(UTC),
                reason=reason,
            )
            signed = sign_revocation(self.state.device_key, revocation)
            record = self._record(entry.id)
            record["revocation"] = signed.model_dump(mode="json")
            record["revocation_published"] = False
            self._write(entry.id, record)
        updated = self.get(entry.id)
        assert updated is not None  # noqa: S101
        return updated

    def mark_published(self, pre_authorisation_id: str, state: str) -> None:
        """The server acknowledged (``preauth.ack``): ``stored`` or ``revoked``."""
        with self._locked():
            try:
                record = self._record(pre_authorisation_id)
            except AgentError:
                return
            record["published"] = True
            if state == "revoked":
                record["revocation_published"] = record.get("revocation") is not None
            self._write(pre_authorisation_id, record)


# -- what the owner types (auxilio agent access grant) ----------------------------------------
#
# Defaults: "this week, working hours": Monday to Friday, 09:00-17:00 in the device's time
# zone, from now for 7 days. Each bad value has its own code (access.*).

_DAY_NAMES = {name: number for number, name in enumerate(WEEKDAYS)}
_ALL_WORDS = {"all", "any", "every", "everyday", "daily", "*"}
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _refuse(code: str, message: str) -> AgentError:
    return AgentError(code, message)


def parse_scope(text: str) -> tuple[Capability, ...]:
    """``chat,terminal`` -> the capabilities, in the order given, once each."""
    found: list[Capability] = []
    for word in (part.strip().lower() for part in text.split(",")):
        if not word:
            continue
        try:
            capability = Capability(word)
        except ValueError:
            known = ", ".join(c.value for c in Capability)
            raise _refuse("access.scope_unknown",
                          f"unknown capability {word!r} (known: {known})") from None  # fmt: skip
        if capability not in found:
            found.append(capability)
    if not found:
        raise _refuse("access.scope_empty", "name at least one capability, e.g. --scope chat")
    return tuple(found)


def _day(word: str) -> int:
    number = _DAY_NAMES.get(word[:3].lower()) if len(word) >= 3 else None
    if number is None or not WEEKDAYS[number].startswith(word[:3].lower()):
        raise _refuse("access.bad_days", f"{word!r} is not a weekday (mon, tue, ... sun)")
    return number


def parse_days(text: str) -> tuple[int, ...]:
    """``mon-fri``, ``sat,sun``, ``mon,wed-fri``, ``fri-mon`` (wraps), ``all``."""
    text = text.strip().lower()
    if text in _ALL_WORDS:
        return tuple(range(7))
    days: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise _refuse("access.bad_days", f"{text!r}: an empty day in the list")
        if "-" in part:
            first, _, last = part.partition("-")
            start, end = _day(first.strip()), _day(last.strip())
            span = [(start + i) % 7 for i in range((end - start) % 7 + 1)]
        else:
            span = [_day(part)]
        days += [d for d in span if d not in days]
    return tuple(sorted(days))


def _clock(text: str) -> dt.time:
    hour, _, minute = text.strip().partition(":")
    try:
        moment = dt.time(int(hour), int(minute or 0))
    except ValueError:
        raise _refuse("access.bad_hours", f"{text!r} is not a time of day (HH:MM)") from None
    return moment


def parse_hours(text: str) -> tuple[dt.time, dt.time] | None:
    """``09:00-17:00`` (or ``9-17``); ``all`` for the whole day (None)."""
    text = text.strip().lower()
    if text in _ALL_WORDS or text in {"all-day", "allday"}:
        return None
    first, sep, last = text.partition("-")
    if not sep:
        raise _refuse("access.bad_hours", f"{text!r}: give a span, e.g. 09:00-17:00")
    start = _clock(first)
    end = dt.time(0, 0) if last.strip() in {"24", "24:00"} else _clock(last)
    if end == dt.time(0, 0) and start != end:
        raise _refuse("access.bad_hours", f"{text!r}: end the day at 23:59, or use --hours all")
    if end <= start:
        raise _refuse("access.bad_hours", f"{text!r}: the end must be after the start on the "
                      "same day; for a night, grant two pre-authorisations")  # fmt: skip
    return start, end


def parse_duration(text: str) -> dt.timedelta:
    """``7d``, ``12h``, ``2w``, ``90m``; at most the longest window (366 days)."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise _refuse("access.bad_duration", f"{text!r}: a number and a unit: 90m, 12h, 7d, 2w")
    length = dt.timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    if length <= dt.timedelta(0):
        raise _refuse("access.bad_duration", f"{text!r}: the length must be positive")
    if length > MAX_WINDOW:
        raise _refuse("access.window_too_long", f"{text!r}: a pre-authorisation lasts at most "
                      f"{MAX_WINDOW.days} days; grant a new one later")  # fmt: skip
    return length


def parse_until(text: str, zone: ZoneInfo) -> dt.datetime:
    """``2026-12-31`` (to the end of that day) or ``2026-12-31T18:00``, in ``zone``."""
    try:
        if "t" in text.lower() or " " in text.strip():
            moment = dt.datetime.fromisoformat(text.strip())
        else:
            day = dt.date.fromisoformat(text.strip())
            moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0))
    except ValueError:
        message = f"{text!r}: give a date (2026-12-31) or a time (2026-12-31T18:00)"
        raise _refuse("access.bad_until", message) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def check_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r} (e.g. Europe/Madrid, America/Mexico_City)"
        raise _refuse("access.timezone_unknown", message) from None


def build_window(
    *,
    days: str = "mon-fri",
    hours: str = "09:00-17:00",
    for_: str | None = None,
    until: str | None = None,
    timezone: str = "UTC",
    now: dt.datetime,
) -> AccessWindow:
    """The window the owner typed; ``for_`` and ``until`` exclude each other (neither: 7d)."""
    zone = check_zone(timezone)
    if for_ is not None and until is not None:
        raise _refuse("access.for_and_until", "give --for or --until, not both")
    weekdays = parse_days(days)
    daily = parse_hours(hours)
    if until is not None:
        end = parse_until(until, zone).astimezone(UTC)
        if end <= now:
            raise _refuse("access.bad_until", f"{until!r} is in the past")
        if end - now > MAX_WINDOW:
            message = f"{until!r}: a pre-authorisation lasts at most {MAX_WINDOW.days} days"
            raise _refuse("access.window_too_long", message)
    else:
        end = now + parse_duration(for_ or "7d")
    window = AccessWindow(
        not_before=now, not_after=end, weekdays=weekdays, timezone=timezone,
        daily_start=daily[0] if daily else None, daily_end=daily[1] if daily else None,
    )  # fmt: skip
    if window.next_opening(now) is None:
        raise _refuse("access.never_open", "those days and hours never come before the end; "
                      "widen --days, --hours or --for")  # fmt: skip
    return window
