"""YAML text -> plain data plus a map from each dotted path to its line.

PyYAML's ``safe_load`` throws the node marks away, so the document is composed into nodes and
walked here: the walk records the line of every key and list item, rejects duplicate keys (which
``safe_load`` silently resolves to the last one, hiding typos) and keeps YAML 1.1 surprises out of
the data (``off`` is not ``False`` for ``recording: off``; ``18:00`` is not the base-60 int 1080).
"""

from __future__ import annotations

from typing import Any

import yaml

from auxilio.policy.errors import PolicyError

Path = tuple[str | int, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Walker:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.errors: list[PolicyError] = []

    def walk(self, node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.walk(item, (*path, index)))
            return items
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                self.errors.append(
                    PolicyError(
                        _dotted(path), line, "keys must be plain names", "policy.yaml_syntax"
                    )
                )
                continue
            # Keys are always text: "on:" or "1:" as a key means the word, not True or 1.
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first = self.lines.get(child)
                self.errors.append(
                    PolicyError(
                        _dotted(child),
                        line,
                        f'"{key}" is written twice (first on line {first})',
                        "policy.duplicate_key",
                    )
                )
                continue
            self.lines[child] = line
            result[key] = self.walk(value_node, child)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        value = node.value
        if node.tag == _BOOL_TAG and str(value).lower() not in ("true", "false"):
            return value  # yes/no/on/off stay words; pydantic still reads them for bool fields
        if node.tag in (_INT_TAG, _FLOAT_TAG) and ":" in str(value):
            return value  # YAML 1.1 base-60 numbers: "18:00" is a time, never 1080
        return self.loader.construct_object(node, deep=True)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def dotted(path: Path) -> str:
    """``("capabilities", "terminal", "roles", 0)`` -> ``"capabilities.terminal.roles.0"``."""
    return _dotted(path)


def load_yaml(text: str) -> tuple[Any, dict[Path, int], list[PolicyError]]:
    """Parse ``text``; returns (data, lines, errors).  Syntax errors come back located."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        walker = _Walker(loader)
        walker.lines[()] = node.start_mark.line + 1
        data = walker.walk(node, ())
        return data, walker.lines, walker.errors
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        return None, {}, [PolicyError("", line, message, "policy.yaml_syntax")]
    except yaml.YAMLError as exc:
        return None, {}, [PolicyError("", None, str(exc), "policy.yaml_syntax")]
    finally:
        loader.dispose()


def line_for(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one (for a missing field)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None
