"""Regenerate migration 0001 from the models (allowed only before the first release).

Usage: .venv/bin/python scripts/regen_initial_migration.py
After the first release, add new revisions with `alembic revision --autogenerate` instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from auxilio.server.db.migrate import MIGRATIONS_DIR, alembic_config

target = MIGRATIONS_DIR / "versions" / "0001_initial.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    config = alembic_config(f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}")
    command.revision(config, message="initial", autogenerate=True, rev_id="0001")
generated = next((MIGRATIONS_DIR / "versions").glob("0001_*.py"))
generated.rename(target)
print(f"wrote {target}")
