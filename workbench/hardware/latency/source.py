"""What every latency source answers, and what it may know of the device it belongs to.

The rest of the workbench asks a profile's :class:`LatencySource` (``profile.latency``), never a LUT: the cost
estimator, search validation, study fingerprints, trust lines, ``workbench score``, calibration and the trial
inspector's per-op bars. So a device whose latency comes from somewhere other than a per-op table (a
compiler's whole-model estimate, whole models timed on a board) is one new source class, not edits across
those modules.

Two shapes of source:

- :class:`PerOpSource` (``additive``): a model's latency is the per-inference overhead plus the sum of its ops'
  latencies, so the estimator memoises per stage and the inspector draws one bar per op (the LUT sources);
- a plain :class:`LatencySource` costs a whole model at once (:meth:`LatencySource.model_latency`) and may have
  no per-op rows at all (:meth:`LatencySource.breakdown` is then None).

The kinds still to come fit one or the other: a compiler's estimate (Arm's Vela for Ethos-U NPUs) is a
:class:`PerOpSource` over a table of per-op estimates the compiler produced (ops it leaves on the CPU costed by
that CPU's latency model), fingerprinted by that table and the compiler's version and configuration, and saying
so in its trust statement; whole models timed on a board are a plain :class:`LatencySource` whose
:meth:`~LatencySource.model_latency` reads (or fits) those timings.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from workbench._infra.yamlio import Fields
from workbench.hardware.trust import LatencyTrust
from workbench.model.ops import Op


@dataclass(frozen=True)
class SourceContext:
    """The profile.yaml facts a source may use besides its own keys and files (a source is built before the
    :class:`~workbench.hardware.profiles.DeviceProfile` that holds it)."""

    device: str  # the profile's name, for messages and trust statements
    profile_yaml: Path
    clock_mhz: float
    precisions: tuple[str, ...]  # what the profile says the device runs
    per_inference_ms: float = 0.0  # runtime set-up paid once per inference (additive sources add it)
    measured_on: dict | None = None  # host profiles: the machine their numbers were timed on

    @property
    def folder(self) -> Path:
        return self.profile_yaml.parent


class LatencySource(ABC):
    """A device's latency, from wherever it comes. Built by its kind's :meth:`load` from the settings
    :meth:`read_settings` validated in profile.yaml."""

    additive: ClassVar[bool] = False  # True: latency = per-inference overhead + the sum of per-op latencies
    lut = None  # the per-op table (LatencyLUT) for code whose job is that file (profiling, calibration); or None
    model = None  # the analytical model (ModeledLatency) a whole-model calibration fits; or None
    label: str = ""  # what the latency comes from, in a few words for messages ("lut.csv")

    def __init__(self, context: SourceContext):
        self.context = context

    # ---------------------------------------------------------------- from profile.yaml
    @classmethod
    @abstractmethod
    def read_settings(cls, f: Fields, profile_yaml: Path) -> dict:
        """Validate this kind's keys of profile.yaml (file names checked to stay in the profile's folder, see
        :func:`~workbench.hardware.locations.profile_file`) without reading the files yet."""

    @classmethod
    @abstractmethod
    def load(cls, settings: dict, context: SourceContext) -> "LatencySource":
        """The source, its files read (errors are one line naming the file)."""

    # ---------------------------------------------------------------- costing
    @abstractmethod
    def model_latency(self, model) -> tuple[float, int]:
        """(ms of one inference of ``model`` — anything with ``.ops`` — per-inference overhead included,
        how many of its ops were estimated rather than known)."""

    def breakdown(self, ops: Sequence[Op]) -> list[tuple[float, bool]] | None:
        """(ms, interpolated?) per op, for per-op tables and bars; None: this source has no per-op rows."""
        return None

    @abstractmethod
    def precisions(self) -> set[str]:
        """The precisions it has latencies for (a profile may list no other)."""

    @abstractmethod
    def check_covers(self, space) -> None:
        """Raise the one-line error when some op ``space`` can produce at one of the device's precisions has
        no latency here: a search checks it before a study is touched."""

    # ---------------------------------------------------------------- identity and trust
    @abstractmethod
    def fingerprint(self) -> dict:
        """JSON values that change whenever its numbers do: stored next to a study's device limits, so a
        resume never mixes trials costed by other numbers."""

    @abstractmethod
    def describe_change(self, saved: dict) -> str:
        """How a study's stored :meth:`fingerprint` (``saved``, maybe of another kind) differs from this one,
        in a clause a person can act on."""

    @abstractmethod
    def trust(self, precision: str) -> LatencyTrust:
        """What its latency at ``precision`` rests on, and how far off it has been."""

    @abstractmethod
    def files(self) -> tuple[str, ...]:
        """The files it read: a profile is re-read when one of them changes."""

    @abstractmethod
    def summary(self) -> str:
        """A few words for ``workbench devices`` (``LUT 2890 ops (modeled)``)."""


class PerOpSource(LatencySource):
    """A source with a latency per op: a model costs the per-inference overhead plus its ops' sum."""

    additive = True

    @abstractmethod
    def op_latency(self, op: Op, key: str | None = None) -> tuple[float, bool]:
        """(ms, interpolated?) of one op; ``key``: its :attr:`~workbench.model.ops.Op.key`, when the caller
        holds it already (the estimator's hot path)."""

    def model_latency(self, model) -> tuple[float, int]:
        total, interpolated = 0.0, 0
        for op in model.ops:
            ms, guessed = self.op_latency(op)
            total += ms
            interpolated += guessed
        return self.context.per_inference_ms + total, interpolated

    def breakdown(self, ops: Sequence[Op]) -> list[tuple[float, bool]]:
        return [self.op_latency(op) for op in ops]
