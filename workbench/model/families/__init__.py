"""Registry of model families: how a space's choices are validated, sampled and lowered to ops.

A family is the code half of a search space (the YAML is the data half). Like timm's model
registry, families register by name; spaces refer to them with ``family: <name>``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from workbench._infra.errors import WorkbenchError

FAMILIES: dict[str, "Family"] = {}


class Family(ABC):
    """Interface every family implements."""

    name = ""

    @abstractmethod
    def parse(self, f) -> Any:
        """Validate the family's part of a space file (a :class:`~workbench._infra.yamlio.Fields`)."""

    @abstractmethod
    def sample(self, spec, s, data) -> tuple[tuple[int, ...], int, Sequence[str]]:
        """Draw choices through suggester ``s``; return (input shape, classes, quantisable stage names)."""

    @abstractmethod
    def lower(self, arch) -> tuple:
        """The fused-op schedule of an architecture."""

    @abstractmethod
    def enumerate_ops(self, spec) -> set:
        """Every fused op any architecture of the space can contain, at every precision (LUT coverage)."""

    @abstractmethod
    def summary(self, arch) -> str:
        """One line describing the architecture."""


def register(cls):
    FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise WorkbenchError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None


from workbench.model.families import cnn1d, dscnn, mbconv, mlp, resnet  # noqa: E402,F401  (registration)
