"""Password hashing at its cheapest: each world makes six people and argon2 is not tested here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.identity.helpers import cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with cheap_password_hashing(monkeypatch):
        yield
