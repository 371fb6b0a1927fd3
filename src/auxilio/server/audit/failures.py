"""Unauthenticated failures (bad join codes, bogus tokens) audited at a bounded rate.

Anyone can send them, as fast as they like: with one audit row each, one client wrote 6,130 rows
in 20 s. Instead, per (action, reason, organisation, client address, minute), the reason being
the caller's stable code (``join_code.invalid``, ``join_code.expired``, a token's ``revoked``):

- the first failure is recorded at once, as the ordinary event of its action;
- the rest are counted in memory, and once the minute is over one ``audit:failures:summarised``
  event per key carries their count and reasons.

Two caps keep many addresses from flooding the log either: at most ``first_per_minute``
first-failure events a minute in all, and at most ``keys_per_minute`` addresses counted apart a
minute. Beyond them failures are counted under the address ``"*"``, whose summary also says how
many addresses it holds. A node therefore writes at most ``first_per_minute + keys_per_minute``
rows a minute (plus one ``"*"`` summary per action and organisation), however many failures
arrive, and nothing is dropped: each failure is its own event or inside a summary's count.

The counts live in memory, per node. With several nodes, each node bounds its own rows; a crash
loses the counts not yet summarised (at most the last minute or two), never a first failure,
which is already in the chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor, RequestInfo, current_request, set_request
from auxilio.server.db.base import utcnow

log = logging.getLogger("auxilio.audit.failures")

# The key of the aggregator in the sessionmaker's info (beside "audit_signer").
AUDIT_FAILURES = "audit_failures"
ANY_ADDRESS = "*"
# More distinct reasons than this in one summary are counted as "other": reasons come from the
# callers' stable codes, but a summary row must stay small whatever arrives.
_MAX_REASONS = 20
# The "*" summary counts distinct addresses up to this many, then says "at least".
_MAX_ADDRESSES = 10_000

_Key = tuple[str, uuid.UUID | None, str, str]  # (action, organisation, client address, reason)


@dataclass(slots=True)
class _Tally:
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    addresses: set[str] = field(default_factory=set)

    def add(self, reason: str, address: str | None, times: int = 1) -> None:
        self.count += times
        if reason in self.reasons or len(self.reasons) < _MAX_REASONS:
            self.reasons[reason] += times
        else:
            self.reasons["other"] += times
        if address is not None and len(self.addresses) < _MAX_ADDRESSES:
            self.addresses.add(address)


@dataclass(slots=True)
class _Minute:
    first_written: int = 0
    # Every key seen this minute; its tally counts the failures after the first.
    keys: dict[_Key, _Tally] = field(default_factory=dict)
    overflow: dict[_Key, _Tally] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Summary:
    """One summary event to write: the failures of ``key`` in ``minute`` after the first."""

    minute: int
    action: str
    organisation_id: uuid.UUID | None
    client_addr: str
    reason: str  # "" for the "*" summary, which counts every reason
    tally: _Tally

    def details(self) -> dict[str, Any]:
        start = datetime.fromtimestamp(self.minute * 60, tz=UTC)
        details: dict[str, Any] = {
            "action": self.action,
            "client_addr": self.client_addr,
            "minute": start.strftime("%Y-%m-%dT%H:%MZ"),
            "count": self.tally.count,
            "reasons": dict(sorted(self.tally.reasons.items())),
        }
        if self.client_addr == ANY_ADDRESS:
            details["addresses"] = len(self.tally.addresses)
            details["addresses_capped"] = len(self.tally.addresses) >= _MAX_ADDRESSES
        return details


class FailureAggregator:
    """Decides which failures are written at once and counts the rest (see the module doc)."""

    def __init__(self, *, first_per_minute: int = 60, keys_per_minute: int = 500) -> None:
        self.first_per_minute = first_per_minute
        self.keys_per_minute = keys_per_minute
        self._minutes: dict[int, _Minute] = {}

    def admit(
        self,
        action: AuditAction,
        *,
        reason: str,
        client_addr: str | None,
        organisation_id: uuid.UUID | None = None,
        now: datetime | None = None,
    ) -> bool:
        """True: record this failure now, as its own event. False: it is counted for the
        minute's summary."""
        minute = int((now or utcnow()).timestamp() // 60)
        bucket = self._minutes.setdefault(minute, _Minute())
        address = client_addr or "unknown"
        key = (str(action), organisation_id, address, reason)
        tally = bucket.keys.get(key)
        if tally is not None:
            tally.add(reason, None)
            return False
        if len(bucket.keys) < self.keys_per_minute:
            bucket.keys[key] = tally = _Tally()
            if bucket.first_written < self.first_per_minute:
                bucket.first_written += 1
                return True
            tally.add(reason, None)
            return False
        spill = (str(action), organisation_id, ANY_ADDRESS, "")
        bucket.overflow.setdefault(spill, _Tally()).add(reason, address)
        return False

    def take(self, *, now: datetime | None = None, everything: bool = False) -> list[Summary]:
        """The summaries of every minute that is over (or of all, at shutdown), removed from
        memory; ``give_back`` them if they could not be written."""
        current = int((now or utcnow()).timestamp() // 60)
        done = [m for m in self._minutes if everything or m < current]
        summaries = []
        for minute in sorted(done):
            bucket = self._minutes.pop(minute)
            for tallies in (bucket.keys, bucket.overflow):
                for (action, org, address, reason), tally in tallies.items():
                    if tally.count:
                        summaries.append(Summary(minute, action, org, address, reason, tally))
        return summaries

    def give_back(self, summaries: list[Summary]) -> None:
        for summary in summaries:
            bucket = self._minutes.setdefault(summary.minute, _Minute())
            key = (summary.action, summary.organisation_id, summary.client_addr, summary.reason)
            tallies = bucket.overflow if summary.client_addr == ANY_ADDRESS else bucket.keys
            tally = tallies.setdefault(key, _Tally())
            for reason, times in summary.tally.reasons.items():
                tally.add(reason, None, times)
            tally.addresses |= summary.tally.addresses

    @property
    def pending(self) -> int:
        """Failures counted and not yet written in a summary."""
        return sum(
            t.count
            for bucket in self._minutes.values()
            for tallies in (bucket.keys, bucket.overflow)
            for t in tallies.values()
        )


def _aggregator(db: AsyncSession) -> FailureAggregator | None:
    found: FailureAggregator | None = db.info.get(AUDIT_FAILURES)
    return found


def admit_failure(
    db: AsyncSession,
    action: AuditAction,
    *,
    reason: str,
    organisation_id: uuid.UUID | None = None,
) -> bool:
    """Whether this unauthenticated failure, from the current request's address, is to be
    recorded now (True) or was counted for its minute's summary (False). For callers that
    record it elsewhere (in a transaction of its own); others call ``record_failure``.

    Without an aggregator in the sessionmaker (the CLI) every failure is recorded.
    """
    aggregator = _aggregator(db)
    if aggregator is None:
        return True
    return aggregator.admit(
        action,
        reason=reason,
        client_addr=current_request().client_addr,
        organisation_id=organisation_id,
    )


async def record_failure(
    db: AsyncSession,
    *,
    action: AuditAction,
    actor: Actor,
    reason: str,
    organisation_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """``record`` for unauthenticated failures: the first of its (action, address, minute) is
    recorded in ``db``'s transaction, the rest are counted. True when it was recorded."""
    org = organisation_id if organisation_id is not None else actor.organisation_id
    if not admit_failure(db, action, reason=reason, organisation_id=org):
        return False
    await record(
        db,
        action=action,
        actor=actor,
        organisation_id=org,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )
    return True


async def write_summaries(db: AsyncSession, summaries: list[Summary]) -> None:
    previous = current_request()
    try:
        for summary in summaries:
            # The summary's event carries the failures' address, as each event would have.
            address = None if summary.client_addr == ANY_ADDRESS else summary.client_addr
            set_request(RequestInfo(request_id="failure-summary", client_addr=address))
            await record(
                db,
                action=AuditAction.AUDIT_FAILURES_SUMMARISED,
                actor=Actor(id=None, display_name="anonymous", organisation_id=None),
                organisation_id=summary.organisation_id,
                details=summary.details(),
            )
    finally:
        set_request(previous)


async def flush_failures(
    maker: async_sessionmaker[AsyncSession],
    aggregator: FailureAggregator,
    *,
    now: datetime | None = None,
    everything: bool = False,
) -> int:
    """Write the summaries of the minutes that are over (all, with ``everything``) in one
    transaction; kept in memory for the next round if that fails. Returns how many."""
    summaries = aggregator.take(now=now, everything=everything)
    if not summaries:
        return 0
    try:
        async with maker() as db, db.begin():
            await write_summaries(db, summaries)
    except BaseException:
        aggregator.give_back(summaries)
        raise
    return len(summaries)


class FailureFlusher:
    """Summarises finished minutes every ``every`` seconds; ``stop`` summarises the rest."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        aggregator: FailureAggregator,
        *,
        every: float = 10.0,
    ) -> None:
        self._maker, self._aggregator, self._every = maker, aggregator, every
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await flush_failures(self._maker, self._aggregator)
            except Exception:  # the counts were given back; the next round retries them
                log.exception("audit failure summaries could not be written")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await flush_failures(self._maker, self._aggregator, everything=True)
