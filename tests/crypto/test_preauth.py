"""The owner's pre-authorisation: its window arithmetic, its signature, its refusals."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from auxilio.crypto.errors import SignatureInvalid
from auxilio.crypto.preauth import (
    AccessWindow,
    PreAuthorisation,
    PreAuthorisationRevocation,
    sign_pre_authorisation,
    sign_revocation,
    verify_pre_authorisation,
    verify_revocation,
)
from auxilio.protocol.types import Capability

UTC = dt.UTC
# Monday 2026-11-30 to Sunday 2026-12-06, working hours in Mexico City (UTC-6, no DST).
WEEK = AccessWindow(
    not_before=dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC),
    not_after=dt.datetime(2026, 12, 7, 0, 0, tzinfo=UTC),
    weekdays=(0, 1, 2, 3, 4),
    daily_start=dt.time(9, 0),
    daily_end=dt.time(17, 0),
    timezone="America/Mexico_City",
)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_working_hours_are_local_hours() -> None:
    # 09:00 in Mexico City is 15:00 UTC; 17:00 is 23:00 UTC.
    assert not WEEK.covers(at(2, 14, 59))
    assert WEEK.covers(at(2, 15, 0))
    assert WEEK.open_until(at(2, 16)) == at(2, 23)
    assert not WEEK.covers(at(2, 23, 0))  # the end is exclusive


def test_weekend_and_outside_the_dates_are_shut() -> None:
    assert not WEEK.covers(at(5, 16))  # Saturday
    assert not WEEK.covers(dt.datetime(2026, 12, 7, 16, tzinfo=UTC))  # the next Monday
    assert WEEK.next_opening(at(4, 23, 30)) is None  # Friday evening: nothing left this week
    assert WEEK.next_opening(at(2, 23, 30)) == at(3, 15)


def test_a_span_must_fit_inside_one_opening() -> None:
    assert WEEK.covers_span(at(2, 15), at(2, 23))
    assert not WEEK.covers_span(at(2, 22), at(3, 16))  # crosses the night


def test_whole_days_join_across_midnight() -> None:
    days = AccessWindow(not_before=at(1, 0), not_after=at(4, 0))
    assert days.open_until(at(1, 12)) == at(4, 0)


@pytest.mark.parametrize(
    "fields",
    [
        {"not_after": dt.datetime(2026, 11, 29, tzinfo=UTC)},  # ends before it starts
        {"not_after": dt.datetime(2028, 1, 1, tzinfo=UTC)},  # longer than a year
        {"daily_start": dt.time(22, 0), "daily_end": dt.time(6, 0)},  # across midnight
        {"daily_start": dt.time(9, 0), "daily_end": None},
        {"weekdays": (0, 0)},
        {"weekdays": (7,)},
        {"timezone": "Mars/Olympus_Mons"},
    ],
)
def test_bad_windows_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AccessWindow.model_validate({**WEEK.model_dump(), **fields})


def _document(**fields: object) -> PreAuthorisation:
    base: dict[str, object] = {
        "id": "5b0c4d3e-8c1b-4f7a-9d55-0f5a2b6f3c11", "device_id": "dev-1",
        "organisation_id": "org-1", "server_fingerprint": "SHA256:abcdefgh",
        "owner_name": "Ana", "scope": (Capability.CHAT, Capability.TERMINAL),
        "window": WEEK, "created_at": at(1, 10),
    }
    return PreAuthorisation.model_validate({**base, **fields})


def test_signed_by_the_device_and_nobody_else() -> None:
    device, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = _document()
    signed = sign_pre_authorisation(device, document)
    assert verify_pre_authorisation(device.public_key(), signed) == document
    with pytest.raises(SignatureInvalid):
        verify_pre_authorisation(other.public_key(), signed)
    revocation = PreAuthorisationRevocation(pre_authorisation_id=document.id, device_id="dev-1",
                                            revoked_at=at(2, 16))
    signed_revocation = sign_revocation(device, revocation)
    assert verify_revocation(device.public_key(), signed_revocation) == revocation
    # One kind is never taken for the other.
    with pytest.raises(SignatureInvalid):
        verify_pre_authorisation(device.public_key(), signed_revocation)


def test_scope_and_automated_runs() -> None:
    document = _document()
    assert document.allows({Capability.CHAT})
    assert not document.allows({Capability.CHAT, Capability.SCREEN})
    with pytest.raises(ValidationError, match="automated runs need"):
        _document(automated_runs=True)
    assert _document(automated_runs=True, scope=(Capability.RUNBOOKS,)).automated_runs
    with pytest.raises(ValidationError, match="twice"):
        _document(scope=(Capability.CHAT, Capability.CHAT))
