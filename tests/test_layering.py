"""The import rules of STYLE.md, checked on the source: a rule that is not checked drifts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "auxilio"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


RULES = [
    # (package, what it may import from auxilio)
    ("protocol", ("auxilio.protocol",)),
    ("policy", ("auxilio.policy",)),
    ("crypto", ("auxilio.crypto", "auxilio.protocol")),
    ("agent", ("auxilio.agent", "auxilio.crypto", "auxilio.protocol", "auxilio.policy")),
    ("client", ("auxilio.client", "auxilio.crypto", "auxilio.protocol", "auxilio.policy")),
]


@pytest.mark.parametrize(("package", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_a_package_imports_only_what_its_layer_allows(
    package: str, allowed: tuple[str, ...]
) -> None:
    if not (SRC / package).exists():
        pytest.skip(f"auxilio.{package} does not exist yet")
    offenders = {
        f"{path.relative_to(SRC)}: {name}"
        for path in modules(package)
        for name in imports_of(path)
        if name.startswith("auxilio") and name != "auxilio" and not name.startswith(allowed)
    }
    assert not offenders


def test_service_modules_never_import_the_web_framework() -> None:
    services = sorted((SRC / "server").rglob("service.py"))
    assert services, "no service modules found: the walk is wrong"
    offenders = {
        f"{path.relative_to(SRC)}: {name}"
        for path in services
        for name in imports_of(path)
        if name.split(".")[0] in {"fastapi", "starlette"}
    }
    assert not offenders


def test_the_policy_engine_does_no_io() -> None:
    forbidden = {"sqlalchemy", "httpx", "websockets", "socket", "asyncio", "fastapi", "os"}
    offenders = {
        f"{path.relative_to(SRC)}: {name}"
        for path in modules("policy")
        if path.name != "cli.py"  # the CLI edge reads files by design
        for name in imports_of(path)
        if name.split(".")[0] in forbidden
    }
    assert not offenders
