"""Identity tests hash many passwords and recovery codes: use cheap argon2id parameters.

The algorithm, the encoding and every code path stay the real ones; only the cost drops, so
a login with ten recovery codes to check takes milliseconds instead of seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.identity.helpers import cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with cheap_password_hashing(monkeypatch):
        yield
