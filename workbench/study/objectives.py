"""What a search can optimise: each objective is one registry entry that says where its value comes from,
which way is better, and how it is printed and plotted — and the hypervolume of a front in any of them.

An objective's value is read from a trial's measured quality (accuracy, or the training-free score that
stands in for it) or from a field of its cost estimate on a device (``CostEstimate.to_dict()``: what every
trial stores per device profile). The search takes its Optuna directions and metric names from the entries,
the front rule its dominance directions, ``workbench pareto`` and the search's own table their columns, the
progress line its cost cells, the notebook widgets their axes, and the front comparison its hypervolume.

Adding an objective is one entry below, naming the cost-estimate field it reads (a new quantity is computed
in a module of its own under ``workbench/hardware/`` and added to ``CostEstimate``, which every trial then
stores for every device)::

    OBJECTIVES.register(Objective(
        name="energy", help="energy per inference (mJ)", direction="minimize", field="energy_uj",
        unit="mJ", per_unit=1000, digits=3, machine_digits=4, column="energy_mj", header="energy mJ",
        axis="energy (mJ)", word="energy", width=7))

``--objectives accuracy,latency,energy`` then accepts it, and the tables, progress lines and plots show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import moocore
import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench._infra.registry import Registry

DIRECTIONS = ("maximize", "minimize")  # Optuna's words


@dataclass(frozen=True)
class Objective:
    """One objective. Values are kept in the cost estimate's own units (bytes, ms) and shown divided by
    ``per_unit`` (bytes → KB: 1024), so a stored study never changes with how it is printed."""

    name: str  # what --objectives and a study's settings call it
    help: str
    direction: str  # "maximize" or "minimize"
    field: str | None  # the cost estimate's key; None: the trial's measured quality (accuracy or proxy score)
    unit: str = ""  # of the shown value ("ms", "KB"); "" for a ratio or a count
    per_unit: float = 1.0  # stored units per shown unit
    digits: int = 4  # decimals in tables, progress lines and hovers
    machine_digits: int = 4  # decimals in csv/json (one rounding each: rows keep the exact value)
    column: str = ""  # its key in a front row (the csv/json column)
    header: str = ""  # its column header in a table
    axis: str = ""  # its axis label in a plot
    word: str = ""  # its word in the progress line (``lat    7.128 ms``)
    width: int = 0  # characters its value takes in the progress line, so lines align
    per_device: bool = True  # the value differs per device profile (axis titles name the device)
    required: bool = False  # every search optimises it, in registry order, before the optional ones

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.name!r}: direction must be one of {', '.join(DIRECTIONS)}, "
                             f"got {self.direction!r}")

    @property
    def quality(self) -> bool:
        """Measured by evaluating the candidate (training or a proxy), not predicted from its costs."""
        return self.field is None

    @property
    def maximised(self) -> bool:
        return self.direction == "maximize"

    @property
    def metric_name(self) -> str:
        """What Optuna's plots and optuna-dashboard label it: the cost field it is read from, or its name."""
        return self.field or self.name

    def value(self, prediction: Mapping, quality: float | None = None):
        """The value in stored units: ``quality`` for the quality objective, else the prediction's field."""
        return quality if self.quality else prediction[self.field]

    def shown(self, prediction: Mapping, quality: float | None = None) -> float | None:
        """The value in shown units, unrounded (None stays None: a precision the device cannot run)."""
        value = self.value(prediction, quality)
        return None if value is None else value / self.per_unit

    def cell(self, value: float | None) -> str:
        """The progress line's cell for a stored ``value`` (``sram    25.4 KB``; ``—`` when there is none)."""
        text = "—" if value is None else f"{value / self.per_unit:{self.width}.{self.digits}f}"
        return f"{self.word} {text:>{self.width}} {self.unit}"


OBJECTIVES: Registry[Objective] = Registry("objective", "--objectives")

ACCURACY = OBJECTIVES.register(Objective(
    name="accuracy", help="held-out test top-1 (or the training-free score that stands in for it)",
    direction="maximize", field=None, column="accuracy", header="accuracy", axis="accuracy", word="acc",
    per_device=False, required=True))
LATENCY = OBJECTIVES.register(Objective(
    name="latency", help="predicted latency on the target (ms)", direction="minimize", field="latency_ms",
    unit="ms", digits=3, machine_digits=4, column="latency_ms", header="latency ms", axis="latency (ms)",
    word="lat", width=8, required=True))
OBJECTIVES.register(Objective(
    name="sram", help="peak SRAM (KB)", direction="minimize", field="peak_sram_bytes", unit="KB", per_unit=1024,
    digits=1, machine_digits=1, column="peak_sram_kb", header="SRAM KB", axis="peak SRAM (KB)", word="sram",
    width=7, per_device=False))
OBJECTIVES.register(Objective(
    name="flash", help="flash (KB)", direction="minimize", field="flash_bytes", unit="KB", per_unit=1024,
    digits=1, machine_digits=1, column="flash_kb", header="flash KB", axis="flash (KB)", word="flash", width=7))


TRAIN_SRAM = OBJECTIVES.register(Objective(
    name="train_sram", help="peak SRAM of one on-device training step (KB; int8 compiled count, SGD, the study's "
    "--train-scheme)", direction="minimize", field="train_sram_bytes", unit="KB", per_unit=1024, digits=1,
    machine_digits=1, column="train_sram_kb", header="train SRAM KB", axis="training SRAM (KB)", word="tsram",
    width=7))  # per device: the forward arena it includes is planned with each device's kernels


def costs(prediction: Mapping | None = None) -> tuple[Objective, ...]:
    """The objectives predicted from a cost estimate: what front rows and progress lines show. With a
    ``prediction``, those it carries: an objective that only some studies compute (one that needs an option
    the study did not set) is left out where it was not computed, instead of failing."""
    return tuple(o for o in OBJECTIVES.where(quality=False) if prediction is None or o.field in prediction)


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` when they start with the required objectives and add only registered ones, else the
    ``--objectives`` error."""
    required = tuple(o.name for o in OBJECTIVES.where(required=True))
    if tuple(names[:len(required)]) != required or not set(names) <= set(OBJECTIVES.names()):
        raise WorkbenchError(f"--objectives: must start with {','.join(required)} and add only "
                             f"{'/'.join(o.name for o in OBJECTIVES.where(required=False))}; "
                             f"got {','.join(map(str, names))}")
    return tuple(names)


def objectives_help() -> str:
    """``--objectives``' help: the required objectives, then the optional ones."""
    required = ",".join(o.name for o in OBJECTIVES.where(required=True))
    return f"{required} plus optional {' and/or '.join(o.name for o in OBJECTIVES.where(required=False))}"


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float], objectives: Sequence[str]) -> float:
    """The volume ``points`` dominate up to ``reference``, each axis oriented by its objective's direction
    (a maximised axis counts from the reference up, a minimised one from the reference down); points that
    do not beat the reference on every axis add nothing. Exact in any number of objectives, by moocore (the
    maintained C implementation of the indicator: a 2-D sweep, HV3D+ and HV4D+; beyond 4-D inclusion–exclusion
    on small sets, else a recursion down to 4-D) — not Optuna's private ``optuna._hypervolume``, which may change
    without notice and differs from the 2-D sweep in the last bit."""
    if not len(points):
        return 0.0
    maximise = [OBJECTIVES[o].maximised for o in objectives]
    return float(moocore.hypervolume(np.asarray(points, dtype=float), ref=np.asarray(reference, dtype=float),
                                     maximise=maximise))
