"""Generated support activity: an organisation's technicians, requesters, devices, two policy
versions with a pilot, and tickets with their time entries, support sessions and surveys.

This is generated data for demos (``auxilio admin generate-activity``), tests and the KPI
benchmark (bench/bench_kpis.py), never for a production database: rows are written straight
into the tables with bulk Core inserts, **no audit event is written** for any of them and no
domain service runs (no routing, no policy decision, no survey link is ever sent). That is also
why this module reads the domains' tables directly instead of going through their services:
the services create one audited row at a time, which a million tickets cannot afford.

Everything the generator decides comes from ``random.Random(seed)``: the same seed, start and
sizes give the same people, the same tickets (numbers, times, categories, outcomes), the same
sessions and surveys. Only the row ids (uuid4), the survey nonces and the people's password
hash differ between two runs, so that two generated organisations can live in one database.
The people share one argon2 hash of a random password nobody is told: none of them can log in
(``auxilio admin generate-activity`` creates a real admin for that).

All timestamps fall inside ``[start, start + days)``: a ticket whose resolution would come after
the end stays unresolved, a session or survey that would end after it is not made.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auxilio.policy import load_template
from auxilio.server.devices.models import Device
from auxilio.server.errors import AlreadyExists, NotFound, ValidationFailed
from auxilio.server.identity import secrets as identity_secrets
from auxilio.server.identity.models import Organisation, User
from auxilio.server.policies.models import PolicyPilot, PolicyVersion
from auxilio.server.policies.service import _label as policy_label
from auxilio.server.policies.service import validate_document
from auxilio.server.reporting.definitions import SURVEY_LINK_DAYS
from auxilio.server.reporting.schemas import KpiSettings
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.surveys.models import Survey
from auxilio.server.tickets.models import Ticket, TimeEntry

TEMPLATE = "software-company"
CHUNK_ROWS = 10_000
MAX_DAYS = 3660
MAX_TICKETS_PER_DAY = 100_000

TICKETS: Table = Ticket.__table__  # type: ignore[assignment]  # declarative tables are Tables
TIME_ENTRIES: Table = TimeEntry.__table__  # type: ignore[assignment]
SESSIONS: Table = SupportSession.__table__  # type: ignore[assignment]
SURVEYS: Table = Survey.__table__  # type: ignore[assignment]

# Who works here: (team, role, own hourly cost in cents or None for the role's rate).
TECHNICIANS: tuple[tuple[str, str, int | None], ...] = (
    ("service-desk", "supervisor", None),
    ("service-desk", "senior_technician", 6200),
    ("service-desk", "technician", None),
    ("service-desk", "technician", 3900),
    ("service-desk", "technician", None),
    ("workplace", "senior_technician", None),
    ("workplace", "technician", 4100),
    ("workplace", "technician", None),
    ("workplace", "technician", None),
    ("infrastructure", "senior_technician", 7000),
    ("infrastructure", "technician", None),
    ("infrastructure", "technician", 4600),
)
KPI_SETTINGS = KpiSettings.model_validate({
    "cost_per_hour_by_role": {
        "technician": 4200, "senior_technician": 5800, "supervisor": 7500,
    },
    "cost_per_session_cents": 250,
    "sla": {
        "critical": {"first_response_seconds": 30 * 60, "resolution_seconds": 8 * 3600},
        "high": {"first_response_seconds": 2 * 3600, "resolution_seconds": 24 * 3600},
        "normal": {"first_response_seconds": 8 * 3600, "resolution_seconds": 3 * 86400},
        "low": {"first_response_seconds": 24 * 3600, "resolution_seconds": 7 * 86400},
    },
})
# Which team takes which category (first choice, then the others).
TEAM_FOR_CATEGORY = {
    "account": "service-desk", "software": "service-desk", "other": "service-desk",
    "hardware": "workplace", "network": "infrastructure",
}
CATEGORIES = ("software", "account", "hardware", "network", "other")
CATEGORY_WEIGHTS = (35, 25, 15, 15, 10)
CHANNELS = ("web", "email", "phone", "chat")
CHANNEL_WEIGHTS = (40, 30, 20, 10)
PRIORITIES = ("low", "normal", "high", "critical")
PRIORITY_WEIGHTS = (20, 55, 20, 5)
# Median minutes to the first response and median hours of work after it, by priority.
FIRST_RESPONSE_MEDIAN_MINUTES = {"low": 240, "normal": 90, "high": 25, "critical": 8}
WORK_MEDIAN_HOURS = {"low": 40.0, "normal": 14.0, "high": 5.0, "critical": 1.5}
# The pilot's version lets technicians take remote control and a terminal: its tickets of the
# pilot group need less time, and the people are a little happier.
PILOT_WORK_FACTOR = 0.75
SCORE_WEIGHTS = {"v1": (5, 8, 17, 38, 32), "v2": (3, 5, 13, 39, 40)}
DEVICE_GROUPS = ("office-laptops", "field-laptops", "lab-workstations")
DEVICE_GROUP_WEIGHTS = (50, 30, 20)
PILOT_GROUP = "field-laptops"
PLATFORMS = ("windows", "macos", "linux")
PLATFORM_WEIGHTS = (60, 25, 15)
CAPABILITY_SETS = (
    ("chat", "screen_view"),
    ("chat", "screen_view", "remote_control"),
    ("chat", "diagnostics"),
    ("chat", "screen_view", "file_transfer"),
    ("chat", "terminal"),
)
TITLES = {
    "software": ("Application crashes on start", "Cannot install the update",
                 "Licence expired message", "Spreadsheet macros disabled"),
    "account": ("Password reset", "Locked out after holiday", "Need access to the shared drive",
                "Two-factor code not accepted"),
    "hardware": ("Laptop does not charge", "Second screen flickers", "Keyboard keys stuck",
                 "Printer jams every page"),
    "network": ("VPN drops every few minutes", "No Wi-Fi in meeting room", "Slow file share",
                "Cannot reach the intranet"),
    "other": ("Question about my equipment", "New starter set-up", "Move desk and devices",
              "Something else is wrong"),
}
FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dario", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas",
               "Kai", "Lucía", "Maya", "Nils", "Omar", "Priya", "Quentin", "Rosa", "Sami",
               "Tomás", "Uma", "Viktor", "Wen", "Yara", "Zoé")
LAST_NAMES = ("Almeida", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hansen",
              "Ivanova", "Jensen", "Kowalski", "López", "Martin", "Novak", "Okafor", "Petrov",
              "Quinn", "Rossi", "Silva", "Tanaka", "Urban", "Varga", "Weber", "Yilmaz")
_CATEGORY_CUM = list(itertools.accumulate(CATEGORY_WEIGHTS))
_CHANNEL_CUM = list(itertools.accumulate(CHANNEL_WEIGHTS))
_PRIORITY_CUM = list(itertools.accumulate(PRIORITY_WEIGHTS))
COMMENTS = ("Quick and friendly, thank you.", "Took a while but it works now.",
            "The technician explained everything.", "I had to ask twice.", "")


class DemoInvalid(ValidationFailed):
    code = "demo.invalid"
    default_message = "The activity to generate is not valid."


class DemoOrganisationExists(AlreadyExists):
    code = "demo.organisation_exists"
    default_message = "An organisation with the generated activity's slug already exists."


class DemoOrganisationNotFound(NotFound):
    code = "demo.organisation_not_found"
    default_message = "No organisation with that id."


@dataclass
class ActivitySummary:
    organisation_id: uuid.UUID
    start: datetime
    end: datetime
    tickets: int
    sessions: int
    surveys: int
    time_entries: int
    policy_versions: list[str]
    pilot_group: str | None
    slug: str = ""
    technicians: int = 0
    requesters: int = 0


def demo_slug(start: datetime, seed: int) -> str:
    """The slug of the organisation a run creates: one per start day and seed."""
    return f"demo-{start:%Y-%m-%d}-seed{seed}"


async def generate_activity(
    engine: AsyncEngine,
    *,
    organisation_id: uuid.UUID | None = None,
    start: datetime,
    days: int,
    tickets_per_day: int,
    seed: int = 1,
    slug: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ActivitySummary:
    """Write ``days * tickets_per_day`` tickets opened from ``start`` on, with their time entries,
    sessions and surveys, into a new organisation (``slug``, by default ``demo_slug``) or into
    ``organisation_id``'s. See the module's note: no audit, not for production."""
    _check(start=start, days=days, tickets_per_day=tickets_per_day, chunk_rows=chunk_rows)
    rng = random.Random(seed)  # noqa: S311 -- generated demo data, reproducible by design
    end = start + timedelta(days=days)
    setup = await _set_up(
        engine, rng, organisation_id=organisation_id, start=start, end=end, seed=seed,
        slug=slug or demo_slug(start, seed), total_tickets=days * tickets_per_day,
    )
    writer = _Writer(engine, chunk_rows, _Codec(engine.dialect.name))
    maker = _TicketMaker(rng, setup, end, writer)
    for day in range(days):
        day_start = start + timedelta(days=day)
        offsets = sorted(_second_of_day(rng) for _ in range(tickets_per_day))
        for offset in offsets:
            maker.make(day_start + timedelta(seconds=offset))
            if writer.pending_tickets >= chunk_rows:
                await writer.flush()
    await writer.flush()
    return ActivitySummary(
        organisation_id=setup.organisation_id, start=start, end=end,
        tickets=writer.counts["tickets"], sessions=writer.counts["sessions"],
        surveys=writer.counts["surveys"], time_entries=writer.counts["time_entries"],
        policy_versions=[setup.v1_label, setup.v2_label], pilot_group=PILOT_GROUP,
        slug=setup.slug, technicians=len(setup.technicians), requesters=len(setup.requesters),
    )


def _check(*, start: datetime, days: int, tickets_per_day: int, chunk_rows: int) -> None:
    if start.tzinfo is None or start.utcoffset() != timedelta(0):
        raise DemoInvalid("start must be an aware UTC datetime.", field="start")
    if not 1 <= days <= MAX_DAYS:
        raise DemoInvalid(f"days must be between 1 and {MAX_DAYS}.", field="days")
    if not 1 <= tickets_per_day <= MAX_TICKETS_PER_DAY:
        raise DemoInvalid(
            f"tickets_per_day must be between 1 and {MAX_TICKETS_PER_DAY}.",
            field="tickets_per_day",
        )
    if chunk_rows < 1:
        raise DemoInvalid("chunk_rows must be at least 1.", field="chunk_rows")


# Tickets arrive mostly in office hours (UTC here: the demo organisation works in UTC).
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 13, 10, 13, 15, 14, 12, 8, 5, 3, 2, 2, 1, 1)
_HOUR_CUMULATIVE = list(itertools.accumulate(_HOUR_WEIGHTS))


def _second_of_day(rng: random.Random) -> int:
    hour = rng.choices(range(24), cum_weights=_HOUR_CUMULATIVE)[0]
    return hour * 3600 + rng.randrange(3600)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


# ---- the organisation, its people and devices, the policy versions -----------------------------


@dataclass
class _Person:
    id: uuid.UUID
    team: str | None
    device_id: uuid.UUID | None = None
    device_group: str | None = None


@dataclass
class _Setup:
    organisation_id: uuid.UUID
    slug: str
    first_number: int
    technicians: list[_Person]
    by_team: dict[str, list[_Person]]
    requesters: list[_Person]
    v1_label: str
    v2_label: str
    pilot_start: datetime


async def _set_up(
    engine: AsyncEngine, rng: random.Random, *, organisation_id: uuid.UUID | None,
    start: datetime, end: datetime, seed: int, slug: str, total_tickets: int,
) -> _Setup:
    async with engine.begin() as conn:
        if organisation_id is None:
            organisation_id, first_number = await _insert_organisation(
                conn, slug=slug, start=start, total_tickets=total_tickets
            )
            tag = ""
        else:
            slug, first_number = await _reserve_numbers(
                conn, organisation_id=organisation_id, total_tickets=total_tickets
            )
            # Another run into the same organisation needs other addresses.
            tag = f".{seed}-{start:%Y%m%d}"
        password_hash = identity_secrets.hash_password(secrets.token_urlsafe(32))
        technicians, by_team = await _insert_technicians(
            conn, rng, organisation_id=organisation_id, slug=slug, tag=tag,
            password_hash=password_hash, start=start,
        )
        requesters = await _insert_requesters(
            conn, rng, organisation_id=organisation_id, slug=slug, tag=tag,
            password_hash=password_hash, start=start,
            count=max(200, min(20_000, total_tickets // 50)),
        )
        pilot_start = start + (end - start) / 2
        v1_label, v2_label = await _insert_policies(
            conn, organisation_id=organisation_id, start=start, pilot_start=pilot_start,
            pilot_creator=technicians[0].id, activate=tag == "",
        )
    return _Setup(
        organisation_id=organisation_id, slug=slug, first_number=first_number,
        technicians=technicians, by_team=by_team, requesters=requesters,
        v1_label=v1_label, v2_label=v2_label, pilot_start=pilot_start,
    )


async def _insert_organisation(
    conn: AsyncConnection, *, slug: str, start: datetime, total_tickets: int
) -> tuple[uuid.UUID, int]:
    found = await conn.execute(select(Organisation.id).where(Organisation.slug == slug))
    if found.first() is not None:
        raise DemoOrganisationExists(
            f"The organisation {slug} already exists: its activity was generated before. "
            "Choose another seed or month.", slug=slug,
        )
    organisation_id = uuid.uuid4()
    await conn.execute(insert(Organisation), [{
        "id": organisation_id, "slug": slug, "name": f"Demo activity ({slug})",
        "created_at": start - timedelta(days=30), "mfa_required_for_staff": True,
        "ticket_counter": total_tickets, "kpi_settings": KPI_SETTINGS.model_dump(mode="json"),
    }])
    return organisation_id, 1


async def _reserve_numbers(
    conn: AsyncConnection, *, organisation_id: uuid.UUID, total_tickets: int
) -> tuple[str, int]:
    row = (await conn.execute(
        select(Organisation.slug, Organisation.ticket_counter)
        .where(Organisation.id == organisation_id).with_for_update()
    )).first()
    if row is None:
        raise DemoOrganisationNotFound(organisation_id=str(organisation_id))
    slug, counter = row
    await conn.execute(
        update(Organisation)
        .where(Organisation.id == organisation_id)
        .values(ticket_counter=counter + total_tickets)
    )
    return str(slug), int(counter) + 1


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


async def _insert_technicians(
    conn: AsyncConnection, rng: random.Random, *, organisation_id: uuid.UUID, slug: str,
    tag: str, password_hash: str, start: datetime,
) -> tuple[list[_Person], dict[str, list[_Person]]]:
    rows, people = [], []
    by_team: dict[str, list[_Person]] = {}
    for i, (team, role, hourly) in enumerate(TECHNICIANS, start=1):
        person = _Person(id=uuid.uuid4(), team=team)
        people.append(person)
        by_team.setdefault(team, []).append(person)
        rows.append({
            "id": person.id, "organisation_id": organisation_id,
            "email": f"tech{i:02d}{tag}@{slug}.example", "display_name": _name(rng),
            "role": role, "password_hash": password_hash, "is_active": True,
            "created_at": start - timedelta(days=30), "timezone": "UTC",
            "languages": ["en"],
            "skills": sorted(c for c, t in TEAM_FOR_CATEGORY.items() if t == team),
            "working_hours": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "team": team, "hourly_cost_cents": hourly,
        })
    await conn.execute(insert(User), rows)
    return people, by_team


async def _insert_requesters(
    conn: AsyncConnection, rng: random.Random, *, organisation_id: uuid.UUID, slug: str,
    tag: str, password_hash: str, start: datetime, count: int,
) -> list[_Person]:
    users, devices, people = [], [], []
    for i in range(1, count + 1):
        person = _Person(id=uuid.uuid4(), team=None)
        users.append({
            "id": person.id, "organisation_id": organisation_id,
            "email": f"person{i:05d}{tag}@{slug}.example", "display_name": _name(rng),
            "role": "end_user", "password_hash": password_hash, "is_active": True,
            "created_at": start - timedelta(days=30), "timezone": "UTC", "languages": [],
            "skills": [], "working_hours": {},
        })
        if rng.random() < 0.9:
            person.device_id = uuid.uuid4()
            person.device_group = rng.choices(DEVICE_GROUPS, DEVICE_GROUP_WEIGHTS)[0]
            platform = rng.choices(PLATFORMS, PLATFORM_WEIGHTS)[0]
            devices.append({
                "id": person.device_id, "organisation_id": organisation_id,
                "owner_id": person.id, "name": f"{platform}-{i:05d}", "platform": platform,
                "device_group": person.device_group, "created_at": start - timedelta(days=30),
                "enrolled_at": start - timedelta(days=29) if rng.random() < 0.5 else None,
            })
        people.append(person)
    for offset in range(0, len(users), CHUNK_ROWS):
        await conn.execute(insert(User), users[offset : offset + CHUNK_ROWS])
    for offset in range(0, len(devices), CHUNK_ROWS):
        await conn.execute(insert(Device), devices[offset : offset + CHUNK_ROWS])
    return people


def pilot_document() -> str:
    """Version 2: the shipped template, with remote control and a terminal for technicians."""
    v1 = load_template(TEMPLATE)
    v2 = v1.replace(
        "  remote_control:\n    roles: [senior_technician, supervisor]",
        "  remote_control:\n    roles: [technician, senior_technician, supervisor]",
    ).replace(
        "  terminal:\n    roles: [senior_technician, supervisor]",
        "  terminal:\n    roles: [technician, senior_technician, supervisor]",
    )
    if v2 == v1:
        raise RuntimeError(f"the {TEMPLATE} template changed: the pilot's edit no longer applies")
    return v2


async def _insert_policies(
    conn: AsyncConnection, *, organisation_id: uuid.UUID, start: datetime,
    pilot_start: datetime, pilot_creator: uuid.UUID, activate: bool,
) -> tuple[str, str]:
    last = (await conn.execute(
        select(func.coalesce(func.max(PolicyVersion.number), 0))
        .where(PolicyVersion.organisation_id == organisation_id)
    )).scalar_one()
    documents = (load_template(TEMPLATE), pilot_document())
    rows, labels = [], []
    for offset, (document, created, comment) in enumerate((
        (documents[0], start - timedelta(days=7), "The software-company template."),
        (documents[1], pilot_start - timedelta(days=1),
         "Remote control and terminal for technicians (pilot)."),
    )):
        number = int(last) + 1 + offset
        sha = hashlib.sha256(document.encode()).hexdigest()
        label = policy_label(number, sha)
        validate_document(document, version_label=label)
        labels.append(label)
        rows.append({
            "id": uuid.uuid4(), "organisation_id": organisation_id, "number": number,
            "document": document, "sha256": sha, "comment": comment, "author_id": None,
            "author_name": "generated activity", "created_at": created,
            # An organisation of its own runs on version 1; one given keeps its active policy.
            "is_active": activate and offset == 0,
            "activated_at": created if activate and offset == 0 else None,
        })
    await conn.execute(insert(PolicyVersion), rows)
    await conn.execute(insert(PolicyPilot), [{
        "id": uuid.uuid4(), "organisation_id": organisation_id,
        "policy_version_id": rows[1]["id"], "device_group": PILOT_GROUP,
        "starts_at": pilot_start, "ends_at": None, "created_by": pilot_creator,
        "created_at": pilot_start - timedelta(hours=1), "stopped_at": None,
    }])
    return labels[0], labels[1]


# ---- tickets and what hangs off them -------------------------------------------------------------


class _Codec:
    """Values as the database driver takes them. The bulk rows bypass SQLAlchemy's per-value
    type processing (which cost more than the inserts themselves), so this does its work: the
    same column forms as ``UTCDateTime``, ``Uuid`` and ``JSON`` write (naive UTC; on SQLite,
    32 hex digits and SQLAlchemy's text timestamps)."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.paramstyle = ":{}" if self.sqlite else "%({})s"

    def uid(self, value: uuid.UUID | None) -> Any:
        if value is None:
            return None
        return value.hex if self.sqlite else value

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds") if self.sqlite else naive

    @staticmethod
    def json(value: Any) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def insert_sql(self, table: Table, columns: Sequence[str]) -> str:
        names = ", ".join(columns)
        values = ", ".join(self.paramstyle.format(c) for c in columns)
        return f"INSERT INTO {table.name} ({names}) VALUES ({values})"  # noqa: S608 -- column names of our own tables


@dataclass
class _Writer:
    """Buffers rows and writes them in one transaction per chunk of tickets, parents first."""

    engine: AsyncEngine
    chunk_rows: int
    codec: _Codec
    buffers: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"tickets": [], "sessions": [], "surveys": [], "time_entries": []}
    )
    counts: dict[str, int] = field(
        default_factory=lambda: {"tickets": 0, "sessions": 0, "surveys": 0, "time_entries": 0}
    )

    @property
    def pending_tickets(self) -> int:
        return len(self.buffers["tickets"])

    async def flush(self) -> None:
        if not self.buffers["tickets"]:
            return
        tables = (("tickets", TICKETS), ("sessions", SESSIONS), ("surveys", SURVEYS),
                  ("time_entries", TIME_ENTRIES))
        async with self.engine.begin() as conn:
            for name, table in tables:
                rows = self.buffers[name]
                if not rows:
                    continue
                statement = self.codec.insert_sql(table, list(rows[0]))
                for offset in range(0, len(rows), self.chunk_rows):
                    await conn.exec_driver_sql(statement, rows[offset : offset + self.chunk_rows])
        for name, _table in tables:
            self.counts[name] += len(self.buffers[name])
            self.buffers[name] = []


class _TicketMaker:
    def __init__(self, rng: random.Random, setup: _Setup, end: datetime, writer: _Writer) -> None:
        self.rng = rng
        self.setup = setup
        self.end = end
        self.writer = writer
        self.codec = writer.codec
        self.number = setup.first_number
        self.org = self.codec.uid(setup.organisation_id)

    def make(self, created: datetime) -> None:
        rng, setup = self.rng, self.setup
        category = rng.choices(CATEGORIES, cum_weights=_CATEGORY_CUM)[0]
        channel = rng.choices(CHANNELS, cum_weights=_CHANNEL_CUM)[0]
        priority = rng.choices(PRIORITIES, cum_weights=_PRIORITY_CUM)[0]
        # A few people ask most often: repeats happen, as they do.
        requester = setup.requesters[int(len(setup.requesters) * rng.random() ** 2)]
        device_id = requester.device_id if rng.random() < 0.85 else None
        piloted = (
            device_id is not None and requester.device_group == PILOT_GROUP
            and created >= setup.pilot_start
        )
        label = setup.v2_label if piloted else setup.v1_label
        team = TEAM_FOR_CATEGORY[category] if rng.random() < 0.85 else rng.choice(
            sorted(setup.by_team)
        )
        assignee = rng.choice(setup.by_team[team])
        number, self.number = self.number, self.number + 1
        title = rng.choice(TITLES[category])

        responded = created + timedelta(
            minutes=_lognormal(rng, FIRST_RESPONSE_MEDIAN_MINUTES[priority], 0.9)
        )
        first_response = None if rng.random() < 0.03 or responded >= self.end else responded
        resolved = None
        if first_response is not None and rng.random() < 0.93:
            work = _lognormal(rng, WORK_MEDIAN_HOURS[priority], 1.0)
            if piloted:
                work *= PILOT_WORK_FACTOR
            candidate = first_response + timedelta(hours=work)
            resolved = candidate if candidate < self.end else None
        reopened = 0
        if resolved is not None:
            draw = rng.random()
            reopened = 2 if draw < 0.02 else 1 if draw < 0.09 else 0
        contacts = 1 if first_response is None else rng.choices(
            (1, 2, 3, 4, 5), (30, 33, 20, 11, 6)
        )[0]
        closed = resolved + timedelta(days=3) if resolved is not None else None
        if closed is not None and closed >= self.end:
            closed = None
        if resolved is not None:
            status = "closed" if closed is not None else "resolved"
        elif first_response is None:
            status = "new"
        else:
            status = "pending" if rng.random() < 0.3 else "open"
        last_touch = closed or resolved or first_response or created
        ticket_id = uuid.uuid4()
        busy_until = resolved or self.end - timedelta(seconds=1)
        spent = self._time_entries(ticket_id, assignee, team, created, first_response, busy_until)
        sessions = 0
        if first_response is not None and rng.random() < 0.4:
            sessions = self._sessions(
                ticket_id, number, title, requester, device_id, assignee, label, piloted,
                first_response, busy_until,
            )
        uid, time = self.codec.uid, self.codec.time
        self.writer.buffers["tickets"].append({
            "id": uid(ticket_id), "organisation_id": self.org, "number": number,
            "title": title, "description": "", "category": category, "priority": priority,
            "status": status, "channel": channel, "requester_id": uid(requester.id),
            "created_by_id": uid(assignee.id if channel == "phone" else requester.id),
            "assignee_id": uid(assignee.id) if first_response is not None else None,
            "device_id": uid(device_id),
            "assigned_at": time(
                max(created, first_response - timedelta(minutes=1)) if first_response else None
            ),
            "created_at": time(created), "updated_at": time(last_touch),
            "first_response_at": time(first_response), "resolved_at": time(resolved),
            "closed_at": time(closed), "reopen_count": reopened,
            "contact_count": max(contacts, min(5, sessions + 1)), "time_spent_seconds": spent,
            "policy_version": label,
        })

    def _time_entries(
        self, ticket_id: uuid.UUID, assignee: _Person, team: str, created: datetime,
        first_response: datetime | None, busy_until: datetime,
    ) -> int:
        """1 to 3 entries between the first response and the resolution (or the end)."""
        if first_response is None:
            return 0
        rng = self.rng
        span = max(1.0, (busy_until - first_response).total_seconds())
        total = 0
        for _ in range(rng.choices((1, 2, 3), (50, 35, 15))[0]):
            who = assignee if rng.random() < 0.8 else rng.choice(self.setup.by_team[team])
            seconds = max(60, int(_lognormal(rng, 900, 0.8)))
            total += seconds
            self.writer.buffers["time_entries"].append({
                "id": self.codec.uid(uuid.uuid4()), "organisation_id": self.org,
                "ticket_id": self.codec.uid(ticket_id), "technician_id": self.codec.uid(who.id),
                "seconds": seconds, "note": "",
                "created_at": self.codec.time(
                    first_response + timedelta(seconds=rng.random() * span)
                ),
            })
        return total

    def _sessions(
        self, ticket_id: uuid.UUID, number: int, title: str, requester: _Person,
        device_id: uuid.UUID | None, technician: _Person, label: str, piloted: bool,
        first_response: datetime, busy_until: datetime,
    ) -> int:
        rng = self.rng
        made = 0
        for _ in range(2 if rng.random() < 0.1 else 1):
            span = (busy_until - first_response).total_seconds()
            created = first_response + timedelta(seconds=rng.random() * max(0.0, span) * 0.5)
            offered = created + timedelta(seconds=rng.randint(2, 20))
            activated = offered + timedelta(seconds=rng.randint(10, 110))
            duration = min(3600.0, max(60.0, _lognormal(rng, 1200, 0.7)))
            ended = activated + timedelta(seconds=duration)
            if ended >= busy_until:
                continue
            session_id = uuid.uuid4()
            capabilities = self.codec.json(list(rng.choice(CAPABILITY_SETS)))
            uid, time = self.codec.uid, self.codec.time
            self.writer.buffers["sessions"].append({
                "id": uid(session_id), "organisation_id": self.org, "ticket_id": uid(ticket_id),
                "requester_id": uid(requester.id), "ticket_ref": f"#{number} {title}"[:200],
                "technician_id": uid(technician.id), "device_id": uid(device_id),
                "device_public_key": None, "mode": "attended", "pre_authorisation_id": None,
                "state": "ended", "requested_capabilities": capabilities,
                "granted_capabilities": capabilities, "revoked_capabilities": None,
                "capability_limits": "{}", "policy_version": label,
                "decision_rule": "capabilities", "decision_reason": "allowed by the policy",
                "decision_reason_code": None, "decision_params": None,
                "max_duration_seconds": 3600, "warn_before_seconds": 600,
                "idle_timeout_seconds": 900, "consent_timeout_seconds": 120,
                "consent_timeout_default": "refused",
                # Generated sessions have no recording files, so none claims to be recorded.
                "recorded": False, "not_after": time(activated + timedelta(hours=1)),
                "warned_at": None, "created_at": time(created), "offered_at": time(offered),
                "activated_at": time(activated), "ended_at": time(ended),
                "ended_by": "technician",
                "end_reason": "technician_ended", "end_detail": None,
                "summary": "Looked at the problem together and fixed it.",
                "summary_at": time(ended + timedelta(seconds=30)), "node_id": "generated",
                "technician_e2e_key": base64.urlsafe_b64encode(rng.randbytes(32))
                .decode().rstrip("="),
                "grant_nonce": None, "grant_body": None, "grant_signature": None,
                "offer_prompt": None,
            })
            made += 1
            if rng.random() < 0.7:
                self._survey(session_id, ticket_id, requester, technician, label, piloted, ended)
        return made

    def _survey(
        self, session_id: uuid.UUID, ticket_id: uuid.UUID, requester: _Person,
        technician: _Person, label: str, piloted: bool, ended: datetime,
    ) -> None:
        rng = self.rng
        sent = ended + timedelta(minutes=10)
        if sent >= self.end:
            return
        expires = sent + timedelta(days=SURVEY_LINK_DAYS)
        draw = rng.random()
        answered: datetime = sent + timedelta(minutes=_lognormal(rng, 90, 1.2))
        answered_at: datetime | None = answered
        state, score, via, comment = "sent", None, None, ""
        if answered >= min(expires, self.end):
            answered_at = None
        elif draw < (0.72 if piloted else 0.66):
            state, via = "answered", rng.choices(("link", "portal", "agent"), (60, 25, 15))[0]
            score = rng.choices((1, 2, 3, 4, 5), SCORE_WEIGHTS["v2" if piloted else "v1"])[0]
            comment = rng.choice(COMMENTS) if rng.random() < 0.3 else ""
        elif draw < 0.8:
            state, via = "declined", rng.choice(("link", "portal"))
        else:
            answered_at = None
        if state == "sent" and expires < self.end:
            state = "expired"
        uid, time = self.codec.uid, self.codec.time
        self.writer.buffers["surveys"].append({
            "id": uid(uuid.uuid4()), "organisation_id": self.org,
            "subject": f"session:{session_id}", "ticket_id": uid(ticket_id),
            "support_session_id": uid(session_id), "requester_id": uid(requester.id),
            "technician_id": uid(technician.id), "policy_version": label,
            "scale_min": 1, "scale_max": 5, "state": state, "created_at": time(ended),
            "send_after": time(sent), "sent_at": time(sent), "expires_at": time(expires),
            "answered_at": time(answered_at) if state in ("answered", "declined") else None,
            "score": score, "comment": comment, "answered_via": via,
            "nonce": secrets.token_hex(16),
        })


def utc_month_start(text: str) -> datetime:
    """``2026-11`` -> 2026-11-01T00:00Z, with the clear error the CLI shows."""
    try:
        parsed = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DemoInvalid("The month must look like 2026-11.", field="month") from exc
    return parsed


def days_in_month(start: datetime) -> int:
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (following - start).days
