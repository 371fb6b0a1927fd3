"""Example runbooks that ship with Auxilio (``examples/*.yaml``, one runbook per file).

Each file holds the fields of a runbook draft (``auxilio.crypto.runbooks.Runbook`` without the
organisation, id, version, author and approval, which the catalogue sets); the file's name is
the runbook id. ``auxilio admin runbooks import-examples`` writes them into an organisation's
catalogue as drafts, for an approver to read and sign like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class ExampleRunbook:
    runbook_id: str
    fields: dict[str, Any]


def example_ids() -> list[str]:
    folder = resources.files(__package__).joinpath("examples")
    return sorted(
        entry.name.removesuffix(".yaml") for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )  # fmt: skip


def load_example(runbook_id: str) -> ExampleRunbook:
    """One example's draft fields, as written in its file (validated by the catalogue)."""
    if runbook_id not in example_ids():
        raise KeyError(f"no example runbook {runbook_id!r}; there are {', '.join(example_ids())}")
    text = (
        resources.files(__package__)
        .joinpath("examples", f"{runbook_id}.yaml")
        .read_text(encoding="utf-8")
    )
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"example runbook {runbook_id!r} is not a mapping")
    return ExampleRunbook(runbook_id=runbook_id, fields=data)


def load_examples() -> list[ExampleRunbook]:
    return [load_example(name) for name in example_ids()]
