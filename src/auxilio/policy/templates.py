"""Ready-made policy documents shipped with the package (``templates/*.yaml``)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def _folder() -> Traversable:
    return resources.files("auxilio.policy").joinpath("templates")


def list_templates() -> list[str]:
    """Template names, sorted: ``["managed-servers", "school", ...]``."""
    names = (entry.name for entry in _folder().iterdir())
    return sorted(name.removesuffix(".yaml") for name in names if name.endswith(".yaml"))


def load_template(name: str) -> str:
    """The YAML text of a template; ``KeyError`` names the known ones when ``name`` is not."""
    known = list_templates()
    if name not in known:
        raise KeyError(f"no policy template {name!r}; known: {', '.join(known)}")
    return _folder().joinpath(f"{name}.yaml").read_text("utf-8")
