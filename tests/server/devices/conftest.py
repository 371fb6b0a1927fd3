"""Password hashing at its cheapest: argon2 is not what these tests test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.identity.helpers import cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with cheap_password_hashing(monkeypatch):
        yield
