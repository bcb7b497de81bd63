"""Safe, strict, bounded reading of the YAML data files (search spaces, device profiles, latency models).

Every reader reports problems as ``<file>: <field>: <what is wrong>``; files are read as data only
(PyYAML's safe loader: no tags that build Python objects), never executed. Resources are bounded
before and while parsing: the file size is checked before reading, nesting depth and the number of
nodes are counted while composing, and the tree *as aliases expand it* is measured before any
Python object is built — a "billion laughs" alias bomb is a few hundred bytes that every later
walk (validation, ``repr`` in an error message, storing the space) would expand into gigabytes.
"""
from __future__ import annotations

import math
import reprlib
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import check_file_size, one_line, size_text

MAX_YAML_BYTES = 1 << 20  # the shipped spaces and profiles are under 2 KB
MAX_YAML_DEPTH = 64  # nesting levels, counted after alias expansion
MAX_YAML_NODES = 50_000  # scalars + collections, counted after alias expansion


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that stops at :data:`MAX_YAML_DEPTH` levels and :data:`MAX_YAML_NODES` nodes.

    PyYAML composes nested collections recursively: 20,000 levels end in ``RecursionError``, so
    the depth is counted on the way down and refused long before Python's own limit.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        self._depth += 1
        self._nodes += 1
        if self._depth > MAX_YAML_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels (the limit)",
                                self.peek_event().start_mark)
        if self._nodes > MAX_YAML_NODES:
            raise ComposerError(None, None, f"more than {MAX_YAML_NODES:,} nodes (the limit)",
                                self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_object(self, node, deep=False):
        """Values the safe constructors choke on (``2021-02-30``, a 5,000-digit integer) become YAML errors."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read value {_show(node.value, 60)} ({one_line(exc, 120)})"
                                   if isinstance(node, yaml.ScalarNode) else f"cannot read value ({one_line(exc, 120)})",
                                   node.start_mark) from None


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expansion(root) -> None:
    """Size and depth of the tree with every alias expanded, without expanding it (memoised, iterative).

    An alias that contains itself is refused too: it is an infinite tree.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise ComposerError(None, None, f"aliases expand it to more than {MAX_YAML_NODES:,} nodes "
                                    f"(the limit; an alias bomb?)", node.start_mark)
            if depth[key] > MAX_YAML_DEPTH:
                raise ComposerError(None, None, f"aliases nest it deeper than {MAX_YAML_DEPTH} levels (the limit)",
                                    node.start_mark)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ComposerError(None, None, "an alias refers to a node that contains it (an infinite tree)",
                                node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def read_yaml_text(path: Path) -> str:
    """The text of a YAML data file: a regular file, at most :data:`MAX_YAML_BYTES`, UTF-8."""
    if not path.is_file():
        raise WorkbenchError("file not found", where=str(path))
    check_file_size(path, MAX_YAML_BYTES, "a YAML file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)  # the file may grow between stat and read
    except OSError as exc:
        raise WorkbenchError(f"cannot read ({exc.strerror or exc})", where=str(path)) from None
    if len(raw) > MAX_YAML_BYTES:
        raise WorkbenchError(f"over the {size_text(MAX_YAML_BYTES)} limit for a YAML file", where=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from None


def parse_yaml_mapping(text: str, where: str) -> dict:
    """Parse YAML ``text`` (bounded as the module says) into a mapping; every failure is one line."""
    if len(text) > MAX_YAML_BYTES:
        raise WorkbenchError(f"over the {size_text(MAX_YAML_BYTES)} limit for YAML text", where=where)
    try:
        loader = _BoundedLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise WorkbenchError(f"malformed YAML{at}: {problem}", where=where) from None
    if not isinstance(data, dict):
        raise WorkbenchError(f"expected a mapping at the top level, got {type(data).__name__}", where=where)
    return data


def load_yaml_mapping(path: Path) -> dict:
    """Read ``path`` as a YAML mapping, turning every failure into a one-line error."""
    return parse_yaml_mapping(read_yaml_text(path), str(path))


class Fields:
    """Typed access to one mapping of a data file, with errors that name file and field."""

    def __init__(self, data: Any, file: str, prefix: str = ""):
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            raise self.error(f"expected a mapping, got {type(data).__name__}")
        self.data = data
        self._used: set[str] = set()

    def field_name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, message: str, key: str | None = None) -> WorkbenchError:
        field = self.field_name(key) if key is not None else self.prefix
        return WorkbenchError(f"{field}: {message}" if field else message, where=self.file)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = ..., ) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error("missing required field", key)
            return default
        return self.data[key]

    def sub(self, key: str, default: Any = ...) -> "Fields":
        return Fields(self.raw(key, default), self.file, self.field_name(key))

    def str(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a non-empty string, got {_show(value)}", key)
        if choices is not None and value not in choices:
            raise self.error(f"{_show(value)} is not one of {', '.join(choices)}", key)
        return value

    def number(self, key: str, default: Any = ..., *, minimum: float = 0.0, maximum: float = 1e15,
               integer: bool = False, exclusive_min: bool = False) -> float:
        value = self.raw(key, default)
        return check_number(value, self.field_name(key), self.file, minimum=minimum, maximum=maximum,
                            integer=integer, exclusive_min=exclusive_min)

    def int_choices(self, key: str, default: Any = ..., *, minimum: int = 1, maximum: int = 4096) -> tuple[int, ...]:
        """A list of allowed integer values (a scalar means a single fixed choice)."""
        value = self.raw(key, default)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.error("expected at least one choice", key)
        out = tuple(int(check_number(v, self.field_name(key), self.file, minimum=minimum, maximum=maximum, integer=True))
                    for v in values)
        if len(set(out)) != len(out):
            raise self.error(f"duplicate choices in {list(out)}", key)
        return out

    def str_choices(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> tuple[str, ...]:
        value = self.raw(key, default)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.error("expected at least one choice", key)
        for v in values:
            if v not in allowed:
                raise self.error(f"{_show(v)} is not one of {', '.join(allowed)}", key)
        if len(set(values)) != len(values):
            raise self.error(f"duplicate choices in {_show(values)}", key)
        return tuple(values)

    def reject_unknown(self) -> None:
        """Unknown keys are typos more often than not: refuse them."""
        unknown = sorted(set(self.data) - self._used, key=str)
        if unknown:
            raise self.error(f"unknown field (allowed: {', '.join(sorted(self._used))})", str(unknown[0])[:80])


def _show(value: Any, limit: int = 80) -> str:
    """``repr`` of a value from a data file, cut short: a hostile value can be a 50,000-node tree."""
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_number(value: Any, field: str, file: str, *, minimum: float = 0.0, maximum: float = 1e15,
                 integer: bool = False, exclusive_min: bool = False) -> float:
    """Validate one number from a data file (bools, NaN, infinities and out-of-range values refused)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkbenchError(f"{field}: expected {kind}, got {_show(value)}", where=file)
    if math.isnan(value) or math.isinf(value):
        raise WorkbenchError(f"{field}: expected a finite number, got {_show(value)}", where=file)
    if integer and value != int(value):
        raise WorkbenchError(f"{field}: expected {kind}, got {_show(value)}", where=file)
    too_small = value <= minimum if exclusive_min else value < minimum
    if too_small or value > maximum:
        low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        raise WorkbenchError(f"{field}: {_show(value)} is out of range (must be {low} and <= {maximum:g})", where=file)
    return value
