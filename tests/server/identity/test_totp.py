"""TOTP (RFC 6238): the Appendix B vectors, the acceptance window, replay and input checks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from auxilio.server.identity import secrets as sec

SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}

# RFC 6238 Appendix B: (time in seconds, digest, eight-digit code).
RFC_VECTORS = [
    (59, "sha1", "94287082"), (59, "sha256", "46119246"), (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"), (1111111109, "sha256", "68084774"),
    (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"), (1111111111, "sha256", "67062674"),
    (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"), (1234567890, "sha256", "91819424"),
    (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"), (2000000000, "sha256", "90698825"),
    (2000000000, "sha512", "38618901"),
    (20000000000, "sha1", "65353130"), (20000000000, "sha256", "77737706"),
    (20000000000, "sha512", "47863826"),
]

SECRET = base64.b32encode(SEEDS["sha1"]).decode()
NOW = datetime(2033, 5, 18, 3, 33, 20, tzinfo=UTC)
STEP = int(NOW.timestamp()) // sec.TOTP_PERIOD


def _code(offset: int) -> str:
    return sec.totp_code_at(SECRET, STEP + offset)


@pytest.mark.parametrize(("unix_time", "digest", "expected"), RFC_VECTORS)
def test_it_produces_the_rfc_6238_test_vectors(unix_time: int, digest: str, expected: str) -> None:
    secret = base64.b32encode(SEEDS[digest]).decode()
    step = unix_time // sec.TOTP_PERIOD
    assert sec.totp_code_at(secret, step, digits=8, digest=digest) == expected


def test_it_keeps_leading_zeros_of_a_code() -> None:
    # 1111111109 with SHA1 is the RFC's vector whose code starts with a zero.
    assert sec.totp_code_at(SECRET, 1111111109 // 30, digits=8) == "07081804"
    assert all(len(sec.totp_code_at(SECRET, s)) == sec.TOTP_DIGITS for s in range(200))


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_it_accepts_the_current_step_and_one_either_side(offset: int) -> None:
    assert sec.match_totp(SECRET, _code(offset), now=NOW, last_step=None) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2, -10, 10])
def test_it_refuses_a_code_two_or_more_steps_away(offset: int) -> None:
    assert sec.match_totp(SECRET, _code(offset), now=NOW, last_step=None) is None


def test_it_accepts_a_code_at_the_last_second_of_its_step() -> None:
    last_second = datetime.fromtimestamp((STEP + 1) * sec.TOTP_PERIOD - 1, tz=UTC)
    assert sec.match_totp(SECRET, _code(0), now=last_second, last_step=None) == STEP
    assert sec.match_totp(SECRET, _code(-2), now=last_second, last_step=None) is None


def test_it_rejects_a_replayed_totp_code() -> None:
    step = sec.match_totp(SECRET, _code(0), now=NOW, last_step=None)
    assert step == STEP
    assert sec.match_totp(SECRET, _code(0), now=NOW, last_step=step) is None


def test_it_rejects_a_code_older_than_the_last_accepted_step() -> None:
    assert sec.match_totp(SECRET, _code(-1), now=NOW, last_step=STEP) is None
    assert sec.match_totp(SECRET, _code(0), now=NOW, last_step=STEP) is None
    # The next step is still open.
    assert sec.match_totp(SECRET, _code(1), now=NOW, last_step=STEP) == STEP + 1


def test_it_accepts_a_later_code_after_the_clock_moved_on() -> None:
    later = NOW + timedelta(seconds=sec.TOTP_PERIOD)
    assert sec.match_totp(SECRET, _code(1), now=later, last_step=STEP) == STEP + 1


def test_it_tolerates_spaces_typed_inside_a_code() -> None:
    code = _code(0)
    assert sec.match_totp(SECRET, f" {code[:3]} {code[3:]} ", now=NOW, last_step=None) == STEP


@pytest.mark.parametrize(
    "code",
    [
        "", "12345", "1234567", "12345678", "abcdef", "12345a", "-12345", "+12345", "12.345",
        "１２３４５６",  # fullwidth digits
        "١٢٣٤٥٦",  # Arabic-Indic digits
        "¹²³⁴⁵⁶",  # superscripts: str.isdigit() is True for them
        "12345\x00", "123\n456",
    ],
)
def test_it_refuses_anything_but_six_ascii_digits(code: str) -> None:
    assert sec.match_totp(SECRET, code, now=NOW, last_step=None) is None


def test_it_refuses_a_code_of_another_secret() -> None:
    other = base64.b32encode(SEEDS["sha256"]).decode()
    assert sec.totp_code_at(other, STEP) != _code(0)
    assert sec.match_totp(SECRET, sec.totp_code_at(other, STEP), now=NOW, last_step=None) is None
