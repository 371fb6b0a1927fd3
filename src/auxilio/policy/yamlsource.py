"""YAML text -> plain data plus a map from each dotted path to its line.

PyYAML's ``safe_load`` throws the node marks away, so the document is composed into nodes and
walked here: the walk records the line of every key and list item, rejects duplicate keys (which
``safe_load`` silently resolves to the last one, hiding typos) and keeps YAML 1.1 surprises out of
the data (``off`` is not ``False`` for ``recording: off``; ``18:00`` is not the base-60 int 1080).

The parse is bounded by construction, so that a document from anyone who may call
``/policies/validate`` costs CPU and memory in proportion to its size, a fraction of a second
at most: the text is capped (``MAX_DOCUMENT_BYTES``), control characters are refused before the
scanner sees them, and the composer refuses every anchor and alias *as the event arrives*, before
any node is shared, so a "billion laughs" document never expands; collections nested deeper than
``MAX_DEPTH`` are refused before the composer recurses into them. A policy needs none of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, Event, NodeEvent, ScalarEvent
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from auxilio.policy.errors import PolicyError

Path = tuple[str | int, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"

# The shipped templates are 2-3 KB; a policy with a long holiday list stays well under this.
MAX_DOCUMENT_BYTES = 64 * 1024
# The deepest field of a policy (personal_data_zones.zones.0.windows.0) is five levels down.
MAX_DEPTH = 16
# Integers a policy may hold: what a signed 64-bit column or JSON number keeps exactly.
_INT64 = range(-(2**63), 2**63)
# What the YAML reader itself refuses (C0/C1 controls other than tab and line breaks, DEL,
# surrogates, U+FFFE/U+FFFF), found here first so the error names its line and column.
_UNPRINTABLE = Reader.NON_PRINTABLE


class _Refused(Exception):
    """A construct the policy loader never accepts; carries its located error."""

    def __init__(self, error: PolicyError) -> None:
        super().__init__(error.message)
        self.error = error


class _BoundedComposer(Composer):
    """The composer, refusing anchors, aliases and deep nesting before it composes a node."""

    _depth = 0
    # Provided by the parser half of the loader (libyaml's or PyYAML's).
    peek_event: Callable[[], Event | None]

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if event is None:
            return super().compose_node(parent, index)
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, AliasEvent) or (
            isinstance(event, NodeEvent) and event.anchor is not None
        ):
            found = f"*{event.anchor}" if isinstance(event, AliasEvent) else f"&{event.anchor}"
            raise _Refused(
                PolicyError(
                    "",
                    line,
                    f"YAML anchors and aliases ({found}) are not allowed in a policy; "
                    "write the value out where it is needed",
                    "policy.yaml_alias",
                )
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.tag is not None:
            # Only an explicit tag sets it: !!binary, !!timestamp, !!set, !!python/... A policy
            # is plain values, and each constructor is a parser of its own to get wrong.
            raise _Refused(
                PolicyError(
                    "",
                    line,
                    f"YAML tags ({_short_tag(event.tag)}) are not allowed in a policy; "
                    "write the plain value",
                    "policy.yaml_tag",
                )
            )
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(
                PolicyError(
                    "",
                    line,
                    f"the document nests deeper than {MAX_DEPTH} levels",
                    "policy.too_deep",
                )
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _PythonLoader(_BoundedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):
    """PyYAML's own safe loader with the bounded composer."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


class _NodeLoader(Protocol):
    """What ``load_yaml`` uses of a loader."""

    def get_single_node(self) -> yaml.Node | None: ...
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any: ...
    def dispose(self) -> None: ...


# Fastest first; ``_Loader`` is the one load_yaml uses.
LOADERS: list[Callable[[str], _NodeLoader]] = [_PythonLoader]

# libyaml's event parser is about five times faster than PyYAML's pure-Python one; the composer
# above stays in Python with both, so the refusals are the same (tests run both).
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _LibyamlLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    LOADERS.insert(0, _LibyamlLoader)

_Loader = LOADERS[0]


class _Walker:
    def __init__(self, loader: _NodeLoader) -> None:
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
        return self._scalar(node, path)

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

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        value = node.value
        if node.tag == _BOOL_TAG and str(value).lower() not in ("true", "false"):
            return value  # yes/no/on/off stay words; pydantic still reads them for bool fields
        if node.tag in (_INT_TAG, _FLOAT_TAG) and ":" in str(value):
            return value  # YAML 1.1 base-60 numbers: "18:00" is a time, never 1080
        line = node.start_mark.line + 1
        try:
            result = self.loader.construct_object(node, deep=True)
        except ValueError:
            # A plain value that looks like a number or a date but is not one (2025-13-45, an
            # integer of thousands of digits): PyYAML's constructors raise plain ValueErrors.
            kind = "date" if node.tag == _TIMESTAMP_TAG else "number"
            self.errors.append(
                PolicyError(
                    _dotted(path),
                    line,
                    f'"{_shown(value)}" is not a {kind} a policy can hold',
                    "policy.invalid_value",
                )
            )
            return value
        if isinstance(result, int) and not isinstance(result, bool) and result not in _INT64:
            # Every number a policy holds ends up in a 64-bit column or signed JSON.
            self.errors.append(
                PolicyError(
                    _dotted(path), line, f'"{_shown(value)}" is out of range', "policy.out_of_range"
                )
            )
        return result


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _shown(value: object) -> str:
    """``value`` as an error message quotes it: long text is cut, never echoed whole."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def dotted(path: Path) -> str:
    """``("capabilities", "terminal", "roles", 0)`` -> ``"capabilities.terminal.roles.0"``."""
    return _dotted(path)


def _precheck(text: str) -> PolicyError | None:
    """Size and characters, checked before the YAML reader sees the text."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        return PolicyError(
            "",
            None,
            f"the document is {size} bytes; a policy may be at most {MAX_DOCUMENT_BYTES}",
            "policy.too_large",
        )
    bad = _UNPRINTABLE.search(text)
    if bad is None:
        return None
    before = text[: bad.start()]
    line = before.count("\n") + 1
    column = bad.start() - (before.rfind("\n") + 1) + 1
    return PolicyError(
        "",
        line,
        f"control character U+{ord(bad.group()):04X} at column {column} is not allowed",
        "policy.control_character",
    )


def load_yaml(text: str) -> tuple[Any, dict[Path, int], list[PolicyError]]:
    """Parse ``text``; returns (data, lines, errors).  Every refusal comes back located."""
    refused = _precheck(text)
    if refused is not None:
        return None, {}, [refused]
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader's own checks, should the precheck ever miss one
        return None, {}, [PolicyError("", None, str(exc), "policy.yaml_syntax")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        walker = _Walker(loader)
        walker.lines[()] = node.start_mark.line + 1
        data = walker.walk(node, ())
        return data, walker.lines, walker.errors
    except _Refused as exc:
        return None, {}, [exc.error]
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
