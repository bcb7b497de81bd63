"""Named choices — samplers, evaluators — each with what builds it and one line of help.

A registry is the one list of a kind of choice: the CLI takes its ``choices`` and help from it, the
search configuration validates against it, notebooks list it. An entry's target is a callable or a
``"module:attribute"`` string imported on first use, so a module that registers a choice (or that a
choice needs, such as torch for training) is only imported when the choice is used.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from workbench._infra.errors import WorkbenchError


@dataclass(frozen=True)
class Entry:
    name: str
    target: Callable[..., Any] | str
    help: str

    def resolve(self) -> Callable[..., Any]:
        if callable(self.target):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """``name → Entry``, in registration order; ``flag`` names the option in error messages."""

    def __init__(self, flag: str, kind: str):
        self.flag, self.kind = flag, kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: Callable[..., Any] | str, help: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, help)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def check(self, name: str) -> str:
        """``name`` when registered, else the one-line error naming the flag and the choices."""
        if name not in self._entries:
            raise WorkbenchError(f"{self.flag}: unknown {self.kind} {name!r} (choose from {', '.join(self._entries)})")
        return name

    def get(self, name: str) -> Callable[..., Any]:
        return self._entries[self.check(name)].resolve()

    def help_text(self) -> str:
        """``name: help; name: help`` — for ``--help``."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())
