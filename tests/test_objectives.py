"""Objectives as registry entries (what each carries, and that a new entry reaches the search, the front,
the tables, the progress line and the widgets' axes) and the N-D hypervolume (equal to the 2-D sweep the
comparisons' quoted numbers came from; 3-D/4-D against inclusion–exclusion)."""
from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from workbench._infra.errors import WorkbenchError
from workbench.cli import format_rows
from workbench.hardware.cost import estimate
from workbench.hardware.profiles import load_profile
from workbench.model.arch import Architecture
from workbench.search.objective import objective_values
from workbench.search.progress import TrialOutcome
from workbench.study.front import TrialRecord, front_rows, pareto_front
from workbench.study.objectives import (OBJECTIVES, Objective, check_objectives, costs, hypervolume,
                                        objectives_help)
from workbench.widgets.common import axis_options, axis_title, axis_unit, metric_value, metrics, minimised

DEVICE = "stm32f746"


def arch(width: int) -> Architecture:
    return Architecture.create("t", "cnn1d", (12, 64), 3, {"blocks": 1, "pool_type": "max", "b1_width": width,
                                                           "b1_kernel": 3, "b1_pool": 1, "precision": "int8",
                                                           "quant_mode": "ptq", "b1_wbits": 8})


def record(number: int, width: int, accuracy: float) -> TrialRecord:
    pred = estimate(arch(width), load_profile(DEVICE)).to_dict()
    return TrialRecord(number, arch(width), accuracy, {DEVICE: pred}, (), 1.0, (accuracy,))


# ---------------------------------------------------------------- the entries

def test_the_shipped_objectives_and_what_they_carry():
    assert OBJECTIVES.names() == ("accuracy", "latency", "sram", "flash", "train_sram")
    assert [o.direction for o in OBJECTIVES.entries()] == ["maximize", "minimize", "minimize", "minimize", "minimize"]
    assert [o.metric_name for o in OBJECTIVES.entries()] == ["accuracy", "latency_ms", "peak_sram_bytes",
                                                             "flash_bytes", "train_sram_bytes"]  # Optuna's metric names
    assert [o.name for o in OBJECTIVES.where(required=True)] == ["accuracy", "latency"]
    assert [o.name for o in costs()] == ["latency", "sram", "flash", "train_sram"]
    assert [o.column for o in costs()] == ["latency_ms", "peak_sram_kb", "flash_kb", "train_sram_kb"]
    pred = estimate(arch(8), load_profile(DEVICE)).to_dict()
    assert [o.name for o in costs(pred)] == ["latency", "sram", "flash"]  # training memory only where costed
    sram = OBJECTIVES["sram"]
    assert sram.value(pred) == pred["peak_sram_bytes"] and sram.shown(pred) == pred["peak_sram_bytes"] / 1024
    assert OBJECTIVES["accuracy"].value(pred, 0.9) == 0.9
    assert OBJECTIVES["latency"].shown({"latency_ms": None}) is None  # a precision the device cannot run


def test_progress_cells_keep_their_columns():
    lat, sram = OBJECTIVES["latency"], OBJECTIVES["sram"]
    assert lat.cell(7.1275596) == "lat    7.128 ms" and lat.cell(None) == "lat        — ms"
    assert sram.cell(26013.0) == "sram    25.4 KB"


def test_objective_lists_are_checked_with_the_one_line_error():
    assert check_objectives(("accuracy", "latency", "flash")) == ("accuracy", "latency", "flash")
    for bad in (("latency", "accuracy"), ("accuracy", "latency", "energy"), ("accuracy",)):
        with pytest.raises(WorkbenchError) as caught:
            check_objectives(bad)
        assert str(caught.value) == (f"--objectives: must start with accuracy,latency and add only "
                                     f"sram/flash/train_sram; got {','.join(bad)}")
    assert objectives_help() == "accuracy,latency plus optional sram and/or flash and/or train_sram"
    with pytest.raises(WorkbenchError, match="--objectives: unknown objective 'energy'"):
        OBJECTIVES.get("energy")
    with pytest.raises(ValueError, match="direction"):
        Objective(name="x", help="", direction="down", field="x")


def test_a_new_objective_is_one_entry(monkeypatch):
    """Register one entry: the search accepts it and tells Optuna its value, the front takes it into the
    dominance rule, front rows, csv/json and the table get its column, the progress line its cell, the
    explorer an axis."""
    macs = Objective(name="macs_k", help="multiply-accumulates (thousands)", direction="minimize", field="macs",
                     unit="kMAC", per_unit=1000, digits=2, machine_digits=3, column="kmacs", header="kMACs",
                     axis="MACs (k)", word="macs", width=8, per_device=False)
    monkeypatch.setitem(OBJECTIVES._entries, macs.name, macs)
    profile = load_profile(DEVICE)
    small, large = record(0, 8, 0.90), record(1, 32, 0.90)
    pred = small.prediction(profile)

    assert check_objectives(("accuracy", "latency", "macs_k")) == ("accuracy", "latency", "macs_k")
    assert objective_values(("accuracy", "latency", "macs_k"), 0.9, pred) == (0.9, pred["latency_ms"],
                                                                                 float(pred["macs"]))
    # same accuracy: with the new objective the smaller network dominates the larger one
    assert [r.number for r in pareto_front([small, large], profile, ("accuracy", "macs_k"))] == [0]
    row = front_rows([small], profile)[0]
    assert row["kmacs"] == pred["macs"] / 1000
    assert json.loads(format_rows([row], "json"))[0]["kmacs"] == round(pred["macs"] / 1000, 3)
    header, line = format_rows([row], "table").splitlines()
    assert "kMACs" in header and f"{pred['macs'] / 1000:.2f}" in line
    outcome = TrialOutcome(0, 1, 1, 0.9, {o.name: o.value(pred) for o in costs(pred)}, (), 1.0, "summary")
    assert f"macs {pred['macs'] / 1000:8.2f} kMAC" in outcome.line()
    assert ("MACs (k)", "macs_k") in axis_options([DEVICE]) and axis_title("macs_k", profile) == "MACs (k)"
    assert axis_unit("macs_k") == "kMAC" and minimised("macs_k")
    assert metric_value(small, "macs_k", profile, {}) == pred["macs"] / 1000


def test_an_objective_a_study_did_not_compute_is_left_out_of_rows_and_lines(monkeypatch):
    """A cost objective whose field a prediction lacks (one that needs an option the study did not set):
    the tables and progress lines show the others, as before."""
    extra = Objective(name="train_kb", help="", direction="minimize", field="train_bytes", per_unit=1024,
                      column="train_kb", header="train KB", word="train", width=7)
    monkeypatch.setitem(OBJECTIVES._entries, extra.name, extra)
    profile = load_profile(DEVICE)
    row = front_rows([record(0, 8, 0.9)], profile)[0]
    assert "train_kb" not in row and "train KB" not in format_rows([row], "table")
    assert "train_kb" not in format_rows([row], "csv").splitlines()[0]
    pred = record(0, 8, 0.9).prediction(profile)
    assert [o.name for o in costs(pred)] == ["latency", "sram", "flash"]
    assert [o.name for o in costs({**pred, "train_bytes": 2048})] == ["latency", "sram", "flash", "train_kb"]


def test_widget_axes_follow_the_entries():
    profile = load_profile(DEVICE)
    assert metrics() == {"accuracy": "accuracy", "latency": "latency (ms)", "sram": "peak SRAM (KB)",
                       "flash": "flash (KB)", "train_sram": "training SRAM (KB)", "macs": "MACs",
                       "params": "parameters"}
    assert axis_title("latency", profile) == f"latency (ms) on {DEVICE}" and axis_title("sram", profile) == \
        "peak SRAM (KB)"
    assert [axis_unit(a) for a in ("accuracy", "latency", "sram", "macs")] == ["", "ms", "KB", ""]
    assert not minimised("accuracy") and minimised("flash") and minimised("params")


# ---------------------------------------------------------------- hypervolume

def sweep_2d(points, reference):
    """The 2-D sweep the comparisons used before (maximise x, minimise y): the oracle for 2-D."""
    ref_x, ref_y = reference
    pts = sorted((x, y) for x, y in points if x > ref_x and y < ref_y)
    area, best_y = 0.0, ref_y
    for x, y in reversed(pts):
        if y < best_y:
            area += (x - ref_x) * (best_y - y)
            best_y = y
    return area


def inclusion_exclusion(points, reference, maximise):
    """Exact hypervolume of a small set: the union of the points' boxes by inclusion–exclusion."""
    sign = [-1.0 if m else 1.0 for m in maximise]
    pts = [[s * v for s, v in zip(sign, p)] for p in points]
    ref = [s * v for s, v in zip(sign, reference)]
    total = 0.0
    for k in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, k):
            corner = [max(axis) for axis in zip(*subset)]
            total += (-1) ** (k + 1) * math.prod(max(0.0, r - c) for r, c in zip(ref, corner))
    return total


def non_dominated(points):
    return [p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)]


def test_two_objectives_equal_the_sweep_to_the_bit():
    """The compared fronts' hypervolumes (quoted in docs/guides/notebooks.md and docs/guides/search.md) do not move: exactly equal on random fronts
    (ties and repeated points included) and on clouds without ties; clouds whose dominated points tie on
    an axis may differ in the last bit only (the sweep adds such a step in two pieces)."""
    rng = random.Random(0)
    axes = ("accuracy", "latency")
    for _ in range(1500):
        cloud = [(rng.random(), 20 * rng.random()) for _ in range(rng.randint(0, 20))]
        reference = (0.5 * rng.random(), 25 * rng.random())
        assert hypervolume(cloud, reference, axes) == sweep_2d(cloud, reference)
        coarse = [(round(x, 2), round(y, 1)) for x, y in cloud]
        front = non_dominated(coarse) + non_dominated(coarse)[:2]
        assert hypervolume(front, reference, axes) == sweep_2d(front, reference)
        assert hypervolume(coarse, reference, axes) == pytest.approx(sweep_2d(coarse, reference), rel=1e-12)
    assert hypervolume([(0.9, 10.0), (0.5, 2.0)], (0.0, 20.0), axes) == pytest.approx(0.9 * 10 + 0.5 * 8)
    assert hypervolume([], (0.0, 20.0), axes) == 0.0


@pytest.mark.parametrize("objectives", [("accuracy", "latency", "sram"), ("accuracy", "latency", "sram", "flash")])
def test_three_and_four_objectives_equal_inclusion_exclusion(objectives):
    rng = random.Random(len(objectives))
    maximise = [OBJECTIVES[o].maximised for o in objectives]
    reference = [0.2 if m else 10.0 for m in maximise]
    for _ in range(200):
        points = [[round(rng.uniform(0.0, 1.0), 2) if m else round(rng.uniform(0.0, 12.0), 1) for m in maximise]
                  for _ in range(rng.randint(1, 8))]  # rounded: ties, and points outside the reference box
        assert hypervolume(points, reference, objectives) == pytest.approx(
            inclusion_exclusion(points, reference, maximise), rel=1e-9, abs=1e-12)


def test_a_hand_computed_three_objective_volume():
    # two boxes from reference (accuracy 0, 10 ms, 100 KB): 0.8·(10-2)·(100-50) and 0.5·(10-1)·(100-20),
    # overlapping in 0.5·(10-2)·(100-50)
    points = [(0.8, 2.0, 50.0), (0.5, 1.0, 20.0), (0.9, 11.0, 1.0)]  # the third misses the latency reference
    assert hypervolume(points, (0.0, 10.0, 100.0), ("accuracy", "latency", "sram")) == pytest.approx(
        0.8 * 8 * 50 + 0.5 * 9 * 80 - 0.5 * 8 * 50)
