"""The one registry style: named entries that carry their own attributes (timm-like register / list / get).

Every kind of choice the workbench offers — op kinds, model families, samplers, evaluators, export formats,
objectives, latency sources, update schemes, precisions — is a :class:`Registry` of entries. An entry is any
object with a ``name`` and a one-line ``help`` (usually a frozen dataclass defined next to the registry),
and it *carries* what callers need to know about it as attributes (``evaluator.trains``,
``objective.direction``, ``fmt.suffix``): callers ask the entry, they never compare its name to a string.

The CLI takes its ``choices`` and ``--help`` text from a registry, configurations validate against it,
notebooks list it. An entry that needs a heavy import (torch, a converter) names its target as a
``"module:attribute"`` string, resolved on first use with :func:`resolve`.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from workbench._infra.errors import WorkbenchError

E = TypeVar("E")


def resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable, or the attribute a ``"module:attribute"`` string names (imported now, not at registration)."""
    if callable(target):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[E]):
    """``name → entry`` in registration order. ``kind`` and ``flag`` name the choice in one-line errors
    (``--sampler: unknown sampler 'x' (choose from tpe, nsga2, ...)``)."""

    def __init__(self, kind: str, flag: str | None = None):
        self.kind, self.flag = kind, flag
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        """Add ``entry`` (returned, so a module can keep it under a name of its own)."""
        name = getattr(entry, "name")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> E:
        """The entry ``name``, or the one-line error that names the flag and the choices."""
        entry = self._entries.get(name)
        if entry is None:
            where = f"{self.flag}: " if self.flag else ""
            raise WorkbenchError(f"{where}unknown {self.kind} {name!r} (choose from {', '.join(self._entries)})")
        return entry

    def check(self, name: str) -> str:
        """``name`` when registered, else :meth:`get`'s error."""
        return self.get(name) and name

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[E, ...]:
        return tuple(self._entries.values())

    def where(self, **attributes: Any) -> tuple[E, ...]:
        """The entries whose attributes equal the given values (``EVALUATORS.where(trains=True)``)."""
        return tuple(e for e in self._entries.values()
                     if all(getattr(e, key) == value for key, value in attributes.items()))

    def help_text(self) -> str:
        """``name: help; name: help`` — for ``--help``."""
        return "; ".join(f"{name}: {getattr(e, 'help', '')}" for name, e in self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> E:
        return self.get(name)
