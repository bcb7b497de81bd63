"""Registry of model families: how a space's choices are validated, sampled and lowered to ops.

A family is the code half of a search space (the YAML is the data half). Families register in
:data:`FAMILIES` (the one registry style, :mod:`workbench._infra.registry`); spaces refer to them with
``family: <name>``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from workbench._infra.registry import Registry


class Family(ABC):
    """Interface every family implements; ``data_layout`` says what samples it takes (images, series,
    feature_maps or vectors: how :func:`workbench.model.data.check_against_space` checks a data set)."""

    name = ""
    help = ""
    data_layout = ""

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


FAMILIES: Registry[Family] = Registry("model family")


def register(cls):
    """Register an instance of a :class:`Family` subclass under its ``name``."""
    FAMILIES.register(cls())
    return cls


from workbench.model.families import cnn1d, dscnn, mbconv, mlp, resnet  # noqa: E402,F401  (registration)
