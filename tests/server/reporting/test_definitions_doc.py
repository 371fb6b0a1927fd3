"""docs/kpis.md writes out every KPI definition, under the heading its results name."""

from __future__ import annotations

import re
from pathlib import Path

from auxilio.server.reporting.definitions import DEFINITIONS

DOC = Path(__file__).resolve().parents[3] / "docs" / "kpis.md"
HEADING = re.compile(r"^## (?P<id>[a-z_]+) \(v(?P<version>\d+)\)$")


def headings() -> list[str]:
    return [line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("## ")]


def test_every_definition_has_its_section_in_the_doc() -> None:
    found = {m["id"]: int(m["version"]) for line in headings() if (m := HEADING.match(line))}
    assert found == {d.id: d.version for d in DEFINITIONS.values()}


def test_every_versioned_heading_is_a_definition() -> None:
    """A heading that looks like a definition (names a version) is one, spelled exactly."""
    versioned = [line for line in headings() if "(v" in line]
    assert versioned, "docs/kpis.md has no definition headings"
    for line in versioned:
        m = HEADING.match(line)
        assert m is not None, f"malformed definition heading: {line!r}"
        assert m["id"] in DEFINITIONS, f"not a definition: {line!r}"
        assert DEFINITIONS[m["id"]].version == int(m["version"]), line
    assert len(versioned) == len(set(versioned)), "a definition is written out twice"
