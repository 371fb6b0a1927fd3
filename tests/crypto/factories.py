"""Values shared by the crypto tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from auxilio.crypto.grants import Grant, SignedGrant

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)

# make_grant(**overrides) -> (signed grant, the verified Grant model)
GrantFactory = Callable[..., tuple[SignedGrant, Grant]]
