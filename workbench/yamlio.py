"""Safe, strict reading of the YAML data files (search spaces, device profiles).

Every reader reports problems as ``<file>: <field>: <what is wrong>``; files are read
as data only (``yaml.safe_load``), never executed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .errors import WorkbenchError


def load_yaml_mapping(path: Path) -> dict:
    """Read ``path`` as a YAML mapping, turning every failure into a one-line error."""
    if not path.is_file():
        raise WorkbenchError("file not found", where=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WorkbenchError(f"malformed YAML{at}: {problem}", where=str(path))
    if not isinstance(data, dict):
        raise WorkbenchError(f"expected a mapping at the top level, got {type(data).__name__}", where=str(path))
    return data


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
            raise self.error(f"expected a non-empty string, got {value!r}", key)
        if choices is not None and value not in choices:
            raise self.error(f"{value!r} is not one of {', '.join(choices)}", key)
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
                raise self.error(f"{v!r} is not one of {', '.join(allowed)}", key)
        if len(set(values)) != len(values):
            raise self.error(f"duplicate choices in {values}", key)
        return tuple(values)

    def reject_unknown(self) -> None:
        """Unknown keys are typos more often than not: refuse them."""
        unknown = sorted(set(self.data) - self._used, key=str)
        if unknown:
            raise self.error(f"unknown field (allowed: {', '.join(sorted(self._used))})", str(unknown[0]))


def check_number(value: Any, field: str, file: str, *, minimum: float = 0.0, maximum: float = 1e15,
                 integer: bool = False, exclusive_min: bool = False) -> float:
    """Validate one number from a data file (bools, NaN, infinities and out-of-range values refused)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WorkbenchError(f"{field}: expected {kind}, got {value!r}", where=file)
    if math.isnan(value) or math.isinf(value):
        raise WorkbenchError(f"{field}: expected a finite number, got {value!r}", where=file)
    if integer and value != int(value):
        raise WorkbenchError(f"{field}: expected {kind}, got {value!r}", where=file)
    too_small = value <= minimum if exclusive_min else value < minimum
    if too_small or value > maximum:
        low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
        raise WorkbenchError(f"{field}: {value!r} is out of range (must be {low} and <= {maximum:g})", where=file)
    return value
