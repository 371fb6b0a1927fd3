"""First-start work, run before serving and before every CLI command that opens the database.

Kept apart from ``app`` so that a CLI command (``auxilio admin create-user`` and the like) loads
the data layer only, not the web application's routes and pages (1.8 s of imports).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.server.db.migrate import migrate
from auxilio.server.keys import load_or_create_signing_key
from auxilio.server.settings import Settings


@dataclass(frozen=True, slots=True)
class Prepared:
    signing_key: Ed25519PrivateKey
    first_start: bool


def prepare(settings: Settings) -> Prepared:
    """The data directory, migrations, the signing key (made on first start)."""
    first = not settings.signing_key_path.exists()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    key = load_or_create_signing_key(settings.signing_key_path)
    return Prepared(signing_key=key, first_start=first)
