"""Lockout with exponential backoff, per account and per client address."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.db.base import utcnow
from auxilio.server.errors import AccountLocked, DomainError, InvalidCredentials
from auxilio.server.identity import auth
from auxilio.server.settings import Settings
from tests.factories import PASSWORD, make_org, make_user
from tests.server.identity.helpers import audit_count, audit_details, error_code, login, throttle

ADDR = "198.51.100.20"
WRONG = "not the password at all"


@pytest.fixture
def lockout(settings: Settings) -> Settings:
    return settings.model_copy(update={"lockout_threshold": 3, "lockout_base_seconds": 30.0,
                                       "lockout_max_seconds": 3600.0})


async def _attempt(
    app: FastAPI, settings: Settings, email: str, password: str, now: datetime,
    addr: str = ADDR,
) -> auth.LoginResult | DomainError:
    # As the route does: the outcome's writes are committed whether it succeeded or not.
    async with app.state.sessionmaker() as db, db.begin():
        return await auth.login(db, email=email, password=password, totp_code=None,
                                recovery_code=None, client_addr=addr, settings=settings, now=now)


def _retry_after(outcome: auth.LoginResult | DomainError) -> int:
    assert isinstance(outcome, AccountLocked), outcome
    retry: int = outcome.details["retry_after_seconds"]
    return retry


async def test_it_locks_an_account_even_against_the_right_password(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    for _ in range(settings.lockout_threshold):
        failed = await login(client, person.user.email, WRONG)
        assert error_code(failed) == "invalid_credentials"

    response = await login(client, person.user.email, PASSWORD)

    assert response.status_code == 429
    assert error_code(response) == "account_locked"
    assert response.headers["retry-after"] == str(int(settings.lockout_base_seconds))
    assert await audit_count(app, AuditAction.LOGIN_LOCKED, target_id=person.user.id) == 1
    assert await audit_count(app, AuditAction.LOGIN_FAILED,
                             target_id=person.user.id) == settings.lockout_threshold
    assert await audit_count(app, AuditAction.LOGIN_SUCCEEDED) == 0


async def test_it_does_not_lock_before_the_threshold(
    app: FastAPI, lockout: Settings
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    now = utcnow()
    for _ in range(lockout.lockout_threshold - 1):
        assert isinstance(await _attempt(app, lockout, person.user.email, WRONG, now),
                          InvalidCredentials)

    outcome = await _attempt(app, lockout, person.user.email, PASSWORD, now)

    assert isinstance(outcome, auth.LoginResult)


async def test_it_doubles_the_wait_with_each_further_failure(
    app: FastAPI, lockout: Settings
) -> None:
    email = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    now = utcnow()
    for _ in range(lockout.lockout_threshold):
        await _attempt(app, lockout, email, WRONG, now)
    waits = [_retry_after(await _attempt(app, lockout, email, PASSWORD, now))]
    for _ in range(3):
        # Wait out the lock, fail once more, and look at the new lock straight away.
        now += timedelta(seconds=waits[-1] + 1)
        assert isinstance(await _attempt(app, lockout, email, WRONG, now), InvalidCredentials)
        waits.append(_retry_after(await _attempt(app, lockout, email, PASSWORD, now)))

    assert waits == [30, 60, 120, 240]
    assert [d["retry_after_seconds"] for d in await audit_details(app, AuditAction.LOGIN_LOCKED)
            ] == waits


async def test_it_counts_down_the_remaining_wait(app: FastAPI, lockout: Settings) -> None:
    email = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    now = utcnow()
    for _ in range(lockout.lockout_threshold):
        await _attempt(app, lockout, email, WRONG, now)

    assert _retry_after(await _attempt(app, lockout, email, PASSWORD,
                                       now + timedelta(seconds=20))) == 10
    assert isinstance(await _attempt(app, lockout, email, PASSWORD, now + timedelta(seconds=30)),
                      auth.LoginResult)


async def test_it_does_not_count_attempts_made_while_locked(
    app: FastAPI, lockout: Settings
) -> None:
    email = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    now = utcnow()
    for _ in range(lockout.lockout_threshold):
        await _attempt(app, lockout, email, WRONG, now)
    for _ in range(5):
        assert isinstance(await _attempt(app, lockout, email, WRONG, now), AccountLocked)

    now += timedelta(seconds=31)
    await _attempt(app, lockout, email, WRONG, now)

    # The threshold-plus-one failure: twice the base, however often the lock was knocked on.
    assert _retry_after(await _attempt(app, lockout, email, PASSWORD, now)) == 60


async def test_it_caps_the_wait(app: FastAPI, lockout: Settings) -> None:
    capped = lockout.model_copy(update={"lockout_max_seconds": 100.0})
    email = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    now = utcnow()
    for _ in range(capped.lockout_threshold):
        await _attempt(app, capped, email, WRONG, now)
    waits = []
    for _ in range(3):
        now += timedelta(seconds=101)
        await _attempt(app, capped, email, WRONG, now)
        waits.append(_retry_after(await _attempt(app, capped, email, PASSWORD, now)))

    assert waits == [60, 100, 100]


async def test_it_resets_the_account_counter_after_a_success(
    app: FastAPI, lockout: Settings
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    email = person.user.email
    now = utcnow()
    for _ in range(lockout.lockout_threshold):
        await _attempt(app, lockout, email, WRONG, now)
    now += timedelta(seconds=31)
    assert isinstance(await _attempt(app, lockout, email, PASSWORD, now), auth.LoginResult)

    account = await throttle(app, auth.email_throttle_key(person.user.email))
    assert account is not None and account.failures == 0 and account.locked_until is None
    # As many failures as the threshold allows, less one, and the account is still open.
    for _ in range(lockout.lockout_threshold - 1):
        await _attempt(app, lockout, email, WRONG, now, addr="198.51.100.21")
    assert isinstance(await _attempt(app, lockout, email, PASSWORD, now), auth.LoginResult)


async def test_it_locks_an_address_that_fails_on_many_accounts(
    app: FastAPI, lockout: Settings
) -> None:
    org = await make_org(app)
    limit = 4 * lockout.lockout_threshold
    # Each account stays below its own threshold; only the address adds up.
    per_account = lockout.lockout_threshold - 1
    victims = [(await make_user(app, org, Role.END_USER)).user.email
               for _ in range(-(-limit // per_account))]
    bystander = (await make_user(app, org, Role.END_USER)).user.email
    now = utcnow()
    failures = 0
    for email in victims:
        for _ in range(per_account):
            if failures == limit - 1:
                break
            assert isinstance(await _attempt(app, lockout, email, WRONG, now), InvalidCredentials)
            failures += 1
    # One short of four times the threshold: the address is still open.
    assert isinstance(await _attempt(app, lockout, bystander, PASSWORD, now), auth.LoginResult)

    await _attempt(app, lockout, "nobody@example.test", WRONG, now)

    assert _retry_after(await _attempt(app, lockout, bystander, PASSWORD, now)) == 30
    # The same account from another address is not affected.
    assert isinstance(await _attempt(app, lockout, bystander, PASSWORD, now, addr="192.0.2.9"),
                      auth.LoginResult)
    address = await throttle(app, f"addr:{ADDR}")
    assert address is not None and address.failures == limit


async def test_it_counts_unknown_emails_against_the_address(
    app: FastAPI, lockout: Settings
) -> None:
    now = utcnow()
    for n in range(4 * lockout.lockout_threshold):
        assert isinstance(await _attempt(app, lockout, f"ghost{n}@example.test", WRONG, now),
                          InvalidCredentials)

    assert isinstance(await _attempt(app, lockout, "ghost@example.test", WRONG, now),
                      AccountLocked)
    assert await audit_count(app, AuditAction.LOGIN_LOCKED) == 1


async def test_an_unknown_email_locks_out_like_an_existing_one(
    app: FastAPI, lockout: Settings
) -> None:
    known = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    unknown = "nobody-here@example.test"
    now = utcnow()
    answers = {}
    for email in (known, unknown):
        for _ in range(lockout.lockout_threshold):
            await _attempt(app, lockout, email, WRONG, now, addr=f"192.0.2.{len(answers) + 1}")
        answers[email] = await _attempt(app, lockout, email, WRONG, now, addr="192.0.2.99")
    # Same type and same wait: the lockout does not tell which emails have accounts.
    assert _retry_after(answers[known]) == _retry_after(answers[unknown])


async def test_a_quiet_counter_is_forgotten(app: FastAPI, lockout: Settings) -> None:
    email = (await make_user(app, await make_org(app), Role.END_USER)).user.email
    now = utcnow()
    for _ in range(lockout.lockout_threshold - 1):
        await _attempt(app, lockout, email, WRONG, now)
    later = now + timedelta(seconds=lockout.lockout_forget_seconds + 1)
    await _attempt(app, lockout, email, WRONG, later)
    # One failure after a long quiet spell counts as the first, not the threshold-th.
    row = await throttle(app, auth.email_throttle_key(email))
    assert row is not None and row.failures == 1 and row.locked_until is None
