"""Where a device's latency comes from: each profile holds one :class:`LatencySource` (``profile.latency``), of a
kind registered in :data:`LATENCY_SOURCES`.

``profile.yaml`` chooses the kind with ``latency_source: <kind>``; without that key, from the fields it has
(``latency_model:`` named: ``modeled``; otherwise ``lut``), so a profile written before sources existed loads
as it did. The kinds shipped:

- ``lut`` (:mod:`~workbench.hardware.latency.lut_source`): a per-op ``lut.csv`` measured here or imported;
  ops it lacks are interpolated;
- ``modeled`` (:mod:`~workbench.hardware.latency.modeled_source`): a LUT generated from ``latency_model.yaml``;
  ops it lacks are computed exactly from the same constants.

Adding a device kind whose latency comes from elsewhere (a compiler's estimate, whole models timed on a board)
touches one module, one registry entry and a profile folder:

1. ``workbench/hardware/latency/<kind>.py``: a :class:`LatencySource` subclass (:class:`PerOpSource` when a
   model's latency is the sum of its ops'), reading its own ``profile.yaml`` keys and files;
2. one line below: ``LATENCY_SOURCES.register(SourceKind("<kind>", "<help>",
   "workbench.hardware.latency.<kind>:<Class>"))`` (the module is imported when a profile first uses it);
3. ``hw_profiles/<name>/profile.yaml`` with ``latency_source: <kind>`` and that kind's keys, next to its files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench._infra.registry import Registry, resolve
from workbench._infra.yamlio import Fields
from workbench.hardware.latency.lut_source import LutSource
from workbench.hardware.latency.modeled_source import ModeledSource
from workbench.hardware.latency.source import LatencySource, PerOpSource, SourceContext


@dataclass(frozen=True)
class SourceKind:
    """A registered kind of latency source."""

    name: str
    help: str
    source: type[LatencySource] | str  # the class, or "module:Class" (imported when a profile first uses it)
    implied_by: str | None = None  # a profile.yaml key whose presence chooses this kind when latency_source is absent

    @property
    def source_class(self) -> type[LatencySource]:
        return resolve(self.source)

    def read(self, f: Fields, profile_yaml: Path) -> dict:
        return self.source_class.read_settings(f, profile_yaml)

    def load(self, settings: dict, context: SourceContext) -> LatencySource:
        return self.source_class.load(settings, context)


LATENCY_SOURCES: Registry[SourceKind] = Registry("latency source", "latency_source")
DEFAULT_KIND = LATENCY_SOURCES.register(SourceKind(
    "lut", "a per-op lut.csv measured here or imported; ops it lacks are interpolated from its rows", LutSource))
LATENCY_SOURCES.register(SourceKind(
    "modeled", "a lut.csv generated from latency_model.yaml's constants; ops it lacks are computed from them",
    ModeledSource, implied_by="latency_model"))


def source_kind(f: Fields) -> SourceKind:
    """The kind ``profile.yaml`` asks for: its ``latency_source:``, else the one its fields imply."""
    implied = next((k for k in LATENCY_SOURCES.entries() if k.implied_by and f.has(k.implied_by)), DEFAULT_KIND)
    return LATENCY_SOURCES.get(f.str("latency_source", implied.name, choices=LATENCY_SOURCES.names()))


__all__ = ["DEFAULT_KIND", "LATENCY_SOURCES", "LatencySource", "PerOpSource", "SourceContext", "SourceKind",
           "source_kind"]
