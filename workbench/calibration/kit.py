"""A calibration kit: the few models whose end-to-end timings on a board pin down a modeled profile's constants.

``workbench calibrate`` fits a profile's constants (cycles per MAC per layer type, per output, memory speeds,
per-layer and per-inference overheads) to whole-model latencies. Which models are timed decides what the fit
can learn: the published sets are mostly convolutional, so the one fully connected network in them is
mispredicted by 19–51 % when it is left out — nothing else says what an FC layer costs. A kit chosen for the
fit avoids that: ``workbench calibration-kit PROFILE --out DIR`` picks ``n`` models that fit the device from a
pool of random architectures of every shipped space plus MLPs of several widths, so that together they
exercise every constant independently, and writes each as an architecture JSON and an int8 (or fp32)
``.tflite`` with seeded random weights (latency does not depend on the weights' values) plus
``to_time.csv``: time each file on the board, fill in ``ms`` and ``source``, run ``workbench calibrate``.

The choice is a greedy D-optimal design: a model's row holds each constant's *share* of its predicted latency
under the profile's current constants (scale-free, like the fit's relative errors), and each pick maximises
``log det(FᵀF + ridge·I)`` over the rows picked so far — the picks whose shares are least alike, so every
constant is seen varying against the others. ``benchmarks/bench_calibration_kit.py`` measures what that buys
against random picks and the MLPerf Tiny references, on synthetic boards whose true constants are known.
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench.calibration.calibrate import ModeledTerms
from workbench.export.formats import FORMATS, quiet
from workbench.export.formats.support import check_support, require_converters
from workbench.hardware.cost import estimate, violations
from workbench.hardware.latency_model import load_constants
from workbench.model.arch import Architecture
from workbench.model.space import all_spaces, space_from_text

DEFAULT_MODELS = 12
POOL_PER_SPACE = 60  # random candidates per shipped space (and per MLP input width)
MAX_KIT_MS = 2000.0  # a model predicted slower than this is left out: a kit is timed in an afternoon
RIDGE = 1e-3  # keeps log det finite while fewer models than constants are picked
MLP_FEATURES = (64, 256, 640)  # input widths of the MLP candidates: FC layers of several shapes
MLP_SPACE = """name: kit-mlp-{features}
description: calibration kit MLPs on {features} features
family: mlp
classes: 10
input: {{features: {features}}}
layers: {{count: [1, 2, 3, 4], width: [16, 32, 64, 128, 256]}}
quantization:
  precision: [fp32, int8]
  mode: [ptq]
  weight_bits: [8]
"""


@dataclass(frozen=True)
class KitModel:
    arch: Architecture
    predicted_ms: float
    shares: dict[str, float]  # constant name → share of the predicted latency

    @property
    def name(self) -> str:
        return self.arch.space


def candidate_pool(precision: str, seed: int = 0, per_space: int = POOL_PER_SPACE) -> list[Architecture]:
    """Random architectures of every shipped space and of MLPs of several widths, at ``precision``, each once."""
    spaces = list(all_spaces()) + [space_from_text(MLP_SPACE.format(features=n), f"calibration kit MLP {n}")
                                   for n in MLP_FEATURES]
    pool, seen = [], set()
    for space in spaces:
        if precision not in space.quant.precisions:
            continue
        for arch in space.random_archs(per_space, seed=seed, precisions=[precision]):
            # every op at the precision itself: a 4-bit stage is stored as int8 in a .tflite, so the board
            # would run int8 kernels where the model's ops say w4a8
            uniform = all(op.precision == precision for op in arch.ops)
            if arch.precision == precision and uniform and arch.op_keys not in seen:
                seen.add(arch.op_keys)
                pool.append(arch)
    return pool


def select(profile, n: int = DEFAULT_MODELS, precision: str = "int8", seed: int = 0,
           pool: list[Architecture] | None = None) -> list[KitModel]:
    """``n`` models that fit ``profile`` (a modeled :class:`~workbench.hardware.profiles.DeviceProfile`) and together
    exercise every constant its latency at ``precision`` depends on (greedy D-optimal on latency shares)."""
    terms, constants = _terms(profile)
    archs = [a for a in (pool or candidate_pool(precision, seed)) if _fits(a, profile)]
    features = np.array([terms.row(a.ops) for a in archs]).reshape(len(archs), len(terms.names))
    parts = features * _nominal(features, constants)
    predicted = parts.sum(axis=1)
    keep = (predicted > 0) & (features @ constants <= MAX_KIT_MS)
    if keep.sum() < n:
        raise WorkbenchError(f"only {int(keep.sum())} candidate models at {precision} fit {profile.name} "
                             f"(asked for {n})")
    archs, features, parts, predicted = [a for a, k in zip(archs, keep) if k], features[keep], parts[keep], predicted[keep]
    shares = parts / predicted[:, None]
    used = np.abs(shares).sum(axis=0) > 0
    picked = _greedy_d_optimal(shares[:, used], n)
    return [KitModel(archs[i], float(features[i] @ constants),
                     {name: float(v) for name, v in zip(terms.names, shares[i]) if v > 0}) for i in picked]


def _nominal(features: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """The constants, with each zero one (say a per-inference overhead the prior sets to 0) replaced by the
    value that adds 5 % to a median model — as the fit's prior scale does — so its term still has a share."""
    nominal = constants.astype(float).copy()
    median_ms = float(np.median(features @ constants))
    for j in np.flatnonzero(nominal == 0):
        column = np.abs(features[:, j])
        if column.any():
            nominal[j] = 0.05 * median_ms / float(column[column > 0].mean())
    return nominal


def _terms(profile):
    model = profile.latency.model
    if model is None:
        raise WorkbenchError(f"{profile.name} is not a modeled profile (no latency_model.yaml behind its LUT): a "
                             f"measured host profile is refreshed with `workbench calibrate {profile.name} --quick`")
    consts = load_constants(model.path)
    terms = ModeledTerms(consts, profile.clock_mhz)
    return terms, terms.prior


def _fits(arch: Architecture, profile) -> bool:
    return all(v <= 0 for v in violations(estimate(arch, profile), profile).values())  # kernels, SRAM, flash


def _greedy_d_optimal(rows: np.ndarray, n: int) -> list[int]:
    """Indices of ``n`` rows, each maximising log det(FᵀF + RIDGE·I) given those before it (ties: first)."""
    k = rows.shape[1]
    info = RIDGE * np.eye(k)
    picked: list[int] = []
    for _ in range(n):
        inverse = np.linalg.inv(info)
        # det(A + r rᵀ) = det(A) (1 + rᵀ A⁻¹ r): the candidate adding the most is the one A⁻¹ knows least
        gain = np.einsum("ij,jk,ik->i", rows, inverse, rows)
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        info += np.outer(rows[best], rows[best])
    return picked


def write_kit(profile, out: Path, n: int = DEFAULT_MODELS, precision: str = "int8", seed: int = 0,
              files: bool = True, progress: bool = True) -> list[KitModel]:
    """Select the kit and write it to ``out``: ``NN-<space>.json`` per model, its ``.tflite`` (``files``), and
    ``to_time.csv`` (``model,ms,source,precision,file``) with ``ms``/``source`` left for the person timing."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError("output folder is not empty (give a new folder)", where=str(out))
    kit = select(profile, n, precision, seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, model in enumerate(kit, start=1):
        stem = f"{i:02d}-{model.name}"
        (out / f"{stem}.json").write_text(model.arch.to_json() + "\n", encoding="utf-8")
        tflite = f"{stem}.{precision}.tflite" if precision != "fp32" else f"{stem}.tflite"
        if files:
            write_tflite(model.arch, out / tflite, seed + i)
        rows.append({"model": f"{stem}.json", "ms": "", "source": "", "precision": precision,
                     "file": tflite if files else ""})
        if progress:
            print(f"[kit {i:2d}/{len(kit)}] {stem}: predicted {model.predicted_ms:.3f} ms on {profile.name}"
                  f"{'; ' + tflite if files else ''}", file=sys.stderr, flush=True)
    with (out / "to_time.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return kit


def write_tflite(arch: Architecture, path: Path, seed: int) -> None:
    """``arch`` as a .tflite with seeded random weights and BatchNorm statistics (int8: PTQ-calibrated on
    random inputs) — what the board runs; latency does not depend on the weights' values."""
    from workbench.model.weights import random_deployable_model  # heavy: torch

    fmt = FORMATS.get("tflite" if arch.precision == "fp32" else "tflite-int8")
    require_converters([fmt.name])
    problems = check_support(arch, fmt)
    if problems:
        raise WorkbenchError(f"{fmt.name}: {'; '.join(problems)}", where=str(path))
    model = random_deployable_model(arch, seed)
    calib = np.random.default_rng(seed).standard_normal((8, *arch.input_shape)).astype(np.float32)
    with quiet():
        fmt.write(model, arch, calib, path, {})
