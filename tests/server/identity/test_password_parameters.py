"""The real cost of password hashing, and recovery codes kept as keyed digests.

The tests of this process hash with argon2id at its cheapest (tests/conftest.py); a fresh
interpreter shows what a server really uses. Recovery codes are random, so they are kept as a
keyed SHA-256 (ADR 0016); those stored as argon2 hashes by earlier versions still spend.
"""

from __future__ import annotations

import subprocess
import sys

import argon2
import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.identity import secrets as sec
from auxilio.server.identity.models import RecoveryCode
from tests.factories import make_org, make_user
from tests.server.identity.helpers import error_code, login
from tests.server.identity.test_login import _enrol_over_http


def test_a_server_hashes_passwords_with_argon2id_at_the_recommended_cost() -> None:
    printed = subprocess.run(
        [sys.executable, "-c",
         "from auxilio.server.identity import secrets; print(secrets.hash_password('pw'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    parameters = argon2.extract_parameters(printed)
    assert parameters.type is argon2.Type.ID
    assert parameters.time_cost >= 3
    assert parameters.memory_cost >= 64 * 1024  # KiB
    assert parameters.parallelism >= 1


async def _codes_of(app: FastAPI, user_id: object) -> list[RecoveryCode]:
    async with app.state.sessionmaker() as db:
        return list((await db.execute(
            select(RecoveryCode).where(RecoveryCode.user_id == user_id)
        )).scalars())


async def test_recovery_codes_are_stored_as_digests_that_name_neither_the_code_nor_another_person(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    ana = await make_user(app, org, Role.TECHNICIAN, enrol_totp=False)
    ben = await make_user(app, org, Role.TECHNICIAN, enrol_totp=False)
    _, codes = await _enrol_over_http(client, ana.user.email)

    stored = await _codes_of(app, ana.user.id)
    assert len(stored) == len(codes) == sec.RECOVERY_CODE_COUNT
    assert all(row.code_hash.startswith("sha256$") for row in stored)
    assert not any(code in row.code_hash for row in stored for code in codes)
    # The digest is keyed by the person: Ana's code, checked as Ben's, does not match.
    assert not any(
        sec.recovery_code_matches(row.code_hash, user_id=str(ben.user.id),
                                  code=sec.normalise_recovery_code(code))
        for row in stored for code in codes
    )
    assert sum(
        sec.recovery_code_matches(row.code_hash, user_id=str(ana.user.id),
                                  code=sec.normalise_recovery_code(code))
        for row in stored for code in codes
    ) == len(codes)


async def test_a_recovery_code_stored_as_argon2_by_an_earlier_version_still_spends_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.TECHNICIAN, enrol_totp=False)
    await _enrol_over_http(client, person.user.email)
    old_code = "abcde-fghjk"
    async with app.state.sessionmaker() as db:
        db.add(RecoveryCode(user_id=person.user.id, code_hash=sec.hash_password(old_code)))
        await db.commit()

    first = await login(client, person.user.email, recovery_code=old_code.upper())
    again = await login(client, person.user.email, recovery_code=old_code)

    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert error_code(again) == "invalid_totp"
