"""Whoever opens a database session has every domain's tables: a foreign-key column takes its type
from the table it refers to, and a CLI command that had loaded one domain only read UUIDs back as
text (the recording export then looked for the file under the wrong name)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
from auxilio.server.db.engine import create_sessionmaker
from auxilio.server.recordings.models import Recording
from sqlalchemy.types import NullType
from auxilio.server.db.base import Base
untyped = [f"{t.name}.{c.name}" for t in Base.metadata.tables.values() for c in t.columns
           if isinstance(c.type, NullType)]
print(len(Base.metadata.tables), untyped)
"""


def test_a_fresh_process_that_opens_the_database_has_every_column_typed() -> None:
    printed = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split(" ", 1)
    from auxilio.server.db.models import Base

    assert int(printed[0]) == len(Base.metadata.tables)
    assert printed[1].strip() == "[]"
