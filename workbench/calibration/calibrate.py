"""Fit a profile's latency model to whole models timed end to end: ``workbench calibrate``.

Timing every operator on a board is a project; timing 5-20 whole models is an afternoon. Both kinds of
profile predict a model's latency as a sum that is *linear* in a handful of constants, so those
constants can be fitted to whole-model latencies:

* a **modeled** profile (``latency_model.yaml``, :mod:`workbench.hardware.latency_model`): cycles per MAC per
  layer type and precision, cycles per output, memory terms, per-layer and per-inference overheads — the
  fit rewrites the YAML (with every measurement and its source) and regenerates the LUT from it;
* a **measured** LUT (a host profiled with ``workbench profile``): a scale per (op kind, precision)
  applied to its entries plus an in-graph overhead per (op kind, precision) and the per-inference
  overhead — on a host the tiny ops of ``sensor-imu`` cost mostly such fixed amounts, which one-op
  timings get wrong. ``--quick`` times seeded random models of the shipped spaces here first (~15 s):
  the refresh of a host LUT measured on another CPU (:mod:`workbench.hardware.machine`).

The fit minimises squared *relative* errors plus ``strength`` x squared relative distance of every
constant from the current one after one common scale factor (the constants may be uniformly off — a
slower flash, another compiler — while their ratios are the best prior knowledge), with bounds (MCU
constants non-negative). Constants no measurement touches stay as they are. Each model's
leave-one-model-out error (fit on the others, predict it) says how far to trust the result.
"""
from __future__ import annotations

import contextlib
import csv
import datetime
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from workbench._infra import places
from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import bounded_lines, check_file_size
from workbench._infra.yamlio import load_yaml_mapping
from workbench.hardware.latency_model import (
    KERNEL_FAMILY,
    LatencyConstants,
    load_constants,
    op_features,
    parse_constants,
    set_per_inference_ms,
)
from workbench.hardware.lut import LutEntry, write_lut
from workbench.hardware.machine import this_machine
from workbench.hardware.profiles import find_profile, model_profile, parse_profile, unknown_device
from workbench.model.arch import Architecture
from workbench.model.ops import Op
from workbench.model.space import all_spaces, load_space
from workbench.scoring.score import import_model

MAX_MEASUREMENTS_BYTES = 1 << 20
MAX_MEASUREMENTS = 10_000
COLUMNS = ("model", "ms", "source")  # required; "precision" optional (shipped spaces: default int8)
DEFAULT_STRENGTH = 0.1
QUICK_SEED = 1000  # the profiler's calibration seed: disjoint from the benchmarks' seed 0
QUICK_MODELS = 20  # random models per space and precision: ~130 models, ~13 s on a busy 2-core AMD EPYC
MAX_QUICK_MODELS = 500  # per space and precision: 7,000 models, already hours of timing (and MAX_MEASUREMENTS)
QUICK_STRENGTH = 0.01  # that many models need less pull towards the LUT as measured


@dataclass(frozen=True)
class Measurement:
    """One end-to-end latency: a model (file relative to the CSV, architecture JSON, shipped space name)."""

    model: str
    precision: str | None
    ms: float
    source: str

    @property
    def label(self) -> str:
        """Short name for tables: the model as written, or ``<space> (random)`` for an inline architecture."""
        if self.model.startswith("{"):
            return f"{json.loads(self.model).get('space', '?')} (random)"
        return self.model

    def to_dict(self) -> dict:
        out = {"model": self.model, "ms": self.ms, "source": self.source}
        if self.precision:
            out["precision"] = self.precision
        return out


def read_measurements(path: Path) -> list[Measurement]:
    """The measurements CSV: columns ``model,ms,source`` (+ optional ``precision``), one model per row."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError("measurements file not found", where=str(path))
    check_file_size(path, MAX_MEASUREMENTS_BYTES, "a measurements CSV")
    rows: list[Measurement] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(bounded_lines(fh, str(path), max_line=4096, max_lines=MAX_MEASUREMENTS + 1))
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise WorkbenchError(f"header needs columns {','.join(COLUMNS)} (+ optional precision); "
                                     f"missing {','.join(missing)}", where=str(path))
            for line, row in enumerate(reader, start=2):
                rows.append(_measurement(row, f"{path}:{line}"))
    except UnicodeDecodeError as exc:
        raise WorkbenchError(f"not UTF-8 text ({exc.reason})", where=str(path))
    except csv.Error as exc:
        raise WorkbenchError(f"malformed CSV: {exc}", where=str(path))
    if len({m.model for m in rows}) < 2:
        raise WorkbenchError("needs measurements of at least 2 different models (5-20 recommended)", where=str(path))
    return rows


def _measurement(row: dict, where: str) -> Measurement:
    if None in row or any(v is None for v in row.values()):
        raise WorkbenchError("wrong number of columns", where=where)
    model, source = row["model"].strip(), row["source"].strip()
    if not model:
        raise WorkbenchError("model: empty", where=where)
    if not row["ms"].strip():
        raise WorkbenchError("ms: empty (time the model on the board and write its latency in milliseconds)",
                             where=where)
    if not source:
        raise WorkbenchError("source: empty (say who measured it, where, with what)", where=where)
    try:
        ms = float(row["ms"])
    except ValueError:
        raise WorkbenchError(f"ms: expected a number, got {row['ms']!r}", where=where) from None
    if not (0 < ms < 1e7):
        raise WorkbenchError(f"ms: must be a positive latency in milliseconds, got {row['ms']!r}", where=where)
    precision = (row.get("precision") or "").strip() or None
    return Measurement(model, precision, ms, source)


# ---------------------------------------------------------------- what a measurement's model is

class _FixedChoices:
    """Suggester for a space whose every choice is fixed (the MLPerf Tiny reference spaces), except precision."""

    def __init__(self, space_name: str, precision: str):
        self.space_name, self.precision = space_name, precision

    def choose(self, name, choices):
        if name == "precision":
            if self.precision not in choices:
                raise WorkbenchError(f"precision: space {self.space_name!r} offers {list(choices)}, not "
                                     f"{self.precision!r}")
            return self.precision
        if len(choices) != 1:
            raise WorkbenchError(f"space {self.space_name!r} has {len(choices)} choices for {name!r}: a "
                                 f"measurement needs one architecture (give its architecture JSON instead)")
        return choices[0]


def model_ops(m: Measurement, base: Path) -> list[Op]:
    """The op schedule of a measurement's model: a .tflite/.onnx file (lowered like ``workbench score``),
    an architecture JSON (``Architecture.to_json``), or a shipped space with fixed choices."""
    suffix = Path(m.model).suffix.lower()
    if suffix in (".tflite", ".onnx"):
        ops = list(import_model(base / m.model).ops)
        if m.precision and ops and ops[0].precision != m.precision:
            raise WorkbenchError(f"precision: the file is {ops[0].precision}, the CSV says {m.precision}",
                                 where=m.model)
        return ops
    if suffix == ".json":
        path = base / m.model
        if not path.is_file():
            raise WorkbenchError("architecture JSON not found", where=str(path))
        check_file_size(path, MAX_MEASUREMENTS_BYTES, "an architecture JSON")
        try:
            return list(Architecture.from_json(path.read_text(encoding="utf-8")).ops)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"not an architecture JSON ({exc})", where=str(path)) from None
    space = load_space(m.model if suffix not in (".yaml", ".yml") else base / m.model)
    precision = m.precision or ("int8" if "int8" in space.quant.precisions else space.quant.precisions[0])
    return list(space.sample(_FixedChoices(space.name, precision)).ops)


# ---------------------------------------------------------------- the linear latency models

class ModeledTerms:
    """Constants of a ``latency_model.yaml``: a model's ms = features . constants (cycles / clock)."""

    def __init__(self, consts, clock_mhz: float):
        self.clock_mhz, self._features = clock_mhz, partial(op_features, one_input_channel_conv=consts.one_input_channel_conv)
        self.names = sorted(consts.vector())
        self.prior = np.array([consts.vector()[n] for n in self.names])
        self.lower = np.zeros(len(self.names))
        self.unscaled = np.array([n in CHIP_CONSTANTS for n in self.names])

    def keep_unmeasured_kernels(self, x: np.ndarray) -> None:
        """Leave the constants of a kernel family no measurement ran (:data:`KERNEL_FAMILY`) at their prior.

        The common factor says how far the measured kernels are from their prior; a runtime's float kernels
        are other code than its integer ones (CMSIS-NN has no fp32 convolution at all), so int8 timings say
        nothing about fp32. Scaled anyway, the Cortex-M4 came out faster at fp32 than the Cortex-M7."""
        families = [KERNEL_FAMILY.get(_precision_of(n)) for n in self.names]
        used = np.abs(x).sum(axis=0) > 0
        measured = {f for f, u in zip(families, used) if f and u}
        self.unscaled = self.unscaled | np.array([f is not None and f not in measured for f in families])

    def row(self, ops: Sequence[Op]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        row = np.zeros(len(self.names))
        row[index["per_inference_cycles"]] = 1.0
        for op in ops:
            for name, amount in self._features(op).items():
                if name not in index:
                    raise WorkbenchError(f"latency_model.yaml has no {name} constant (precision {op.precision})")
                row[index[name]] += amount
        return row / (self.clock_mhz * 1000.0)


class LutTerms:
    """A measured LUT: a model's ms = per_inference + sum over ops of (scale[kind, prec] * entry + overhead[kind, prec])."""

    def __init__(self, profile):
        self.profile = profile
        groups = sorted({(e.kind, e.prec) for e in _lut_to_rescale(profile).entries.values()})
        self.names = ([f"scale.{k}.{p}" for k, p in groups] + [f"overhead.{k}.{p}" for k, p in groups]
                      + ["per_inference_ms"])
        self.prior = np.array([1.0] * len(groups) + [0.0] * len(groups) + [profile.per_inference_ms])
        self.lower = np.array([0.0] * len(groups) + [-np.inf] * len(groups) + [0.0])
        self.unscaled = None  # every term is the runtime's

    def row(self, ops: Sequence[Op]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        row = np.zeros(len(self.names))
        row[index["per_inference_ms"]] = 1.0
        for op in ops:
            group = f"{op.kind}.{op.precision}"
            if f"scale.{group}" not in index:
                raise WorkbenchError(f"the LUT has no {op.kind} entries at {op.precision} to calibrate",
                                     where=self.profile.latency.lut.path)
            row[index[f"scale.{group}"]] += self.profile.latency.op_latency(op)[0]
            row[index[f"overhead.{group}"]] += 1.0
        return row


def _lut_to_rescale(profile):
    """The per-op LUT a whole-model calibration rescales: the profile's latency source's table (one line
    when the source has none to rescale)."""
    if profile.latency.lut is None:
        raise WorkbenchError(f"{profile.name}'s latency is not a per-op LUT ({profile.latency.summary()}): "
                             "nothing to calibrate", where=profile.path)
    return profile.latency.lut


def _precision_of(name: str) -> str | None:
    """The precision of a per-precision constant (``cycles_per_mac.int8.conv`` -> ``int8``), else None."""
    parts = name.split(".")
    return parts[1] if parts[0] in ("cycles_per_mac", "cycles_per_output") else None


# ---------------------------------------------------------------- the fit

# The chip's memory speeds (cycles per byte of SRAM / flash): a runtime k times slower than the prior
# assumed is slow in its kernels' loops, not in its flash wait states, so their prior is not scaled by k.
# (Scaled, a conv-only fit on the slow TFLM reference build put the FC autoencoder's weight streaming at
# 12x the prior's flash speed: +256 % left out; unscaled +148 %.)
CHIP_CONSTANTS = ("sram_cycles_per_byte", "flash_cycles_per_byte")


def fit(x: np.ndarray, y: np.ndarray, prior: np.ndarray, lower: np.ndarray, strength: float,
        unscaled: np.ndarray | None = None) -> np.ndarray:
    """Constants minimising sum((x.c - y) / y)^2 + strength * sum((c - t) / s)^2 within bounds.

    The target ``t`` is ``k*prior``: ``k`` is the one common factor that best scales the prior's
    predictions to the measurements; ``unscaled`` (a mask) marks constants whose target is the prior
    itself (:data:`CHIP_CONSTANTS`). ``s`` is ``|t|``, or for a constant whose prior is 0, the value that
    would add 5 % to a median model. Constants no measurement uses (say w4a8 when only int8 models were
    timed) become their target: the runtime is k times slower than assumed, and nothing says by how much more
    (a kernel family nothing measured is marked unscaled: :meth:`ModeledTerms.keep_unmeasured_kernels`).
    """
    from scipy.optimize import lsq_linear  # heavy: scipy

    predicted = x @ prior
    ratio = predicted / y
    k = float(ratio.sum() / (ratio ** 2).sum()) if (ratio ** 2).sum() > 0 else 1.0
    target = prior * (k if unscaled is None else np.where(unscaled, 1.0, k))
    active = np.abs(x).sum(axis=0) > 0
    if not active.any():
        return target
    xa = x[:, active]
    col_size = np.array([np.mean(np.abs(c[c != 0])) for c in xa.T])
    fallback = 0.05 * float(np.median(y)) / col_size
    scale = np.where(np.abs(target[active]) > 0, np.abs(target[active]), fallback)
    a = np.vstack([xa / y[:, None], np.sqrt(strength) * np.diag(1.0 / scale)])
    b = np.concatenate([np.ones(len(y)), np.sqrt(strength) * target[active] / scale])
    result = lsq_linear(a, b, bounds=(lower[active], np.full(active.sum(), np.inf)), method="bvls")
    out = target.copy()
    out[active] = result.x
    return out


def leave_one_out(x: np.ndarray, y: np.ndarray, groups: Sequence[str], prior, lower, strength,
                  unscaled: np.ndarray | None = None) -> np.ndarray:
    """Prediction of every row from a fit on the rows of *other* models (``groups``: the model of each row)."""
    groups = np.asarray(groups)
    out = np.empty(len(y))
    for g in dict.fromkeys(groups):
        held = groups == g
        c = fit(x[~held], y[~held], prior, lower, strength, unscaled)
        out[held] = x[held] @ c
    return out


@dataclass
class Report:
    """What a calibration found: per measurement the prediction before, after, and left out (ms)."""

    profile: str
    kind: str  # "modeled" or "lut"
    measurements: list[Measurement]
    before_ms: np.ndarray
    fitted_ms: np.ndarray
    loo_ms: np.ndarray
    constants: dict[str, float]
    strength: float

    def errors(self, predicted: np.ndarray) -> np.ndarray:
        return predicted / np.array([m.ms for m in self.measurements]) - 1.0

    def summary(self) -> dict:
        fit_err, loo_err = np.abs(self.errors(self.fitted_ms)), np.abs(self.errors(self.loo_ms))
        return {"measurements": len(self.measurements), "models": len({m.model for m in self.measurements}),
                "fit_error_pct": {"mean_abs": _pct(fit_err.mean()), "max_abs": _pct(fit_err.max())},
                "loo_error_pct": {"mean_abs": _pct(loo_err.mean()), "max_abs": _pct(loo_err.max())},
                "within_25pct_loo": int((loo_err <= 0.25).sum())}


def _pct(value: float) -> float:
    return round(float(value) * 100, 1)


def format_report(r: Report) -> str:
    lines = [f"calibrated {r.profile} ({r.kind}) on {len(r.measurements)} whole-model latencies "
             f"(strength {r.strength:g}):"]
    fit_err, loo_err = r.errors(r.fitted_ms), r.errors(r.loo_ms)
    if len(r.measurements) > MAX_ROWS_SHOWN:
        lines += _group_lines(r, fit_err, loo_err)
    else:
        lines.append(f"{'model':<28}{'prec':>6}{'measured ms':>13}{'before ms':>11}{'fit ms':>10}{'fit err':>9}"
                     f"{'LOO ms':>10}{'LOO err':>9}")
    for i, m in enumerate(r.measurements if len(r.measurements) <= MAX_ROWS_SHOWN else []):
        lines.append(f"{m.label[-28:]:<28}{(m.precision or ''):>6}{m.ms:>13.4g}{r.before_ms[i]:>11.4g}"
                     f"{r.fitted_ms[i]:>10.4g}{fit_err[i]:>+9.1%}{r.loo_ms[i]:>10.4g}{loo_err[i]:>+9.1%}")
    s = r.summary()
    lines.append(f"fit error: mean |e| {s['fit_error_pct']['mean_abs']} %, max {s['fit_error_pct']['max_abs']} %; "
                 f"leave-one-model-out: mean |e| {s['loo_error_pct']['mean_abs']} %, max "
                 f"{s['loo_error_pct']['max_abs']} % ({s['within_25pct_loo']}/{s['measurements']} within ±25 %)")
    return "\n".join(lines)


MAX_ROWS_SHOWN = 20  # more measurements (--quick) are summarised per space and precision


def _group_lines(r: Report, fit_err: np.ndarray, loo_err: np.ndarray) -> list[str]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(r.measurements):
        groups.setdefault((m.label, m.precision or ""), []).append(i)
    lines = [f"{'models (n)':<28}{'prec':>6}{'median ms':>13}{'fit mean|e|':>14}{'LOO mean|e|':>14}"]
    for (label, prec), rows in groups.items():
        median = float(np.median([r.measurements[i].ms for i in rows]))
        lines.append(f"{f'{label} ({len(rows)})'[-28:]:<28}{prec:>6}{median:>13.4g}"
                     f"{np.abs(fit_err[rows]).mean():>14.1%}{np.abs(loo_err[rows]).mean():>14.1%}")
    return lines


def _run_fit(terms, rows: list[np.ndarray], measurements: list[Measurement], strength: float):
    x = np.vstack(rows)
    y = np.array([m.ms for m in measurements])
    constants = fit(x, y, terms.prior, terms.lower, strength, terms.unscaled)
    groups = [f"{m.model}|{m.precision}" for m in measurements]
    loo = leave_one_out(x, y, groups, terms.prior, terms.lower, strength, terms.unscaled)
    return x, constants, loo


# ---------------------------------------------------------------- modeled profiles

def calibrate_modeled(profile_dir: Path, measurements: list[Measurement], base: Path,
                      strength: float = DEFAULT_STRENGTH, command: str = "", restart: bool = False) -> Report:
    """Fit ``latency_model.yaml`` to the measurements, rewrite it (measurements and sources kept) and the LUT.

    ``restart``: start from the constants before the first calibration (``calibration.prior``), so running
    the same command again reproduces the same file instead of refining the last fit."""
    profile_yaml = profile_dir / "profile.yaml"
    profile = parse_profile(load_yaml_mapping(profile_yaml), profile_yaml, with_latency=False)
    model_path = profile_dir / "latency_model.yaml"
    old_data = load_yaml_mapping(model_path)
    consts = load_constants(model_path)
    previous = old_data.get("calibration") or {}
    if restart and "prior" in previous:  # the prior's numbers; how layers are typed stays the file's
        consts = replace(parse_constants({"reference": previous["prior_reference"], **previous["prior"]},
                                         f"{model_path}: calibration.prior"),
                         one_input_channel_conv=consts.one_input_channel_conv)
    terms = ModeledTerms(consts, profile.clock_mhz)
    rows = [terms.row(model_ops(m, base)) for m in measurements]
    terms.keep_unmeasured_kernels(np.vstack(rows))
    x, constants, loo = _run_fit(terms, rows, measurements, strength)
    fitted = _rounded(LatencyConstants.from_vector(consts.reference, dict(zip(terms.names, constants)),
                                                   consts.one_input_channel_conv))
    written = fitted.vector()  # the fit errors are those of the constants as written (4 significant digits)
    report = Report(profile.name, "modeled", measurements, x @ terms.prior,
                    x @ np.array([written[n] for n in terms.names]), loo, written, strength)
    _write_latency_model(model_path, old_data, consts, fitted, report, command)
    model_profile(profile_dir)
    return report


def _rounded(c):
    def r(v: float) -> float:
        return float(f"{v:.4g}")

    return LatencyConstants(c.reference, {p: {t: r(v) for t, v in row.items()} for p, row in c.cycles_per_mac.items()},
                            r(c.sram_bytes_per_cycle), r(c.flash_bytes_per_cycle), r(c.cycles_per_element),
                            r(c.per_layer_overhead_cycles), r(c.per_inference_cycles), c.one_input_channel_conv,
                            {p: r(v) for p, v in c.cycles_per_output.items()})


def _constants_dict(c) -> dict:
    out = {"cycles_per_mac": {p: dict(row) for p, row in c.cycles_per_mac.items()}}
    if c.cycles_per_output:
        out["cycles_per_output"] = dict(c.cycles_per_output)
    return out | {"sram_bytes_per_cycle": c.sram_bytes_per_cycle, "flash_bytes_per_cycle": c.flash_bytes_per_cycle,
                  "cycles_per_element": c.cycles_per_element, "per_layer_overhead_cycles": c.per_layer_overhead_cycles,
                  "per_inference_cycles": c.per_inference_cycles}


def _write_latency_model(path: Path, old: dict, prior, fitted, report: Report, command: str) -> None:
    previous = old.get("calibration") or {}
    prior_reference = previous.get("prior_reference", prior.reference)
    data = {"reference": (f"fitted by `workbench calibrate` to {len(report.measurements)} whole-model latencies "
                          f"(measurements below, each with its source), starting from: {prior_reference}")}
    if "sources" in old:
        data["sources"] = old["sources"]
    if "notes" in old:
        data["notes"] = old["notes"]
    data.update(_constants_dict(fitted))
    if fitted.one_input_channel_conv != "conv":  # the default stays unwritten
        data["one_input_channel_conv"] = fitted.one_input_channel_conv
    data["calibration"] = {
        "command": command or f"workbench calibrate {path.parent.name} --measurements FILE",
        "date": datetime.date.today().isoformat(), "strength": report.strength, **report.summary(),
        "per_model": [{"model": m.model, "precision": m.precision, "measured_ms": m.ms,
                       "fitted_ms": float(f"{f:.4g}"), "loo_ms": float(f"{lo:.4g}"),
                       "loo_error_pct": _pct(lo / m.ms - 1)}
                      for m, f, lo in zip(report.measurements, report.fitted_ms, report.loo_ms)],
        "prior": previous.get("prior", _constants_dict(prior)),
        "prior_reference": prior_reference,
    }
    data["measurements"] = [m.to_dict() for m in report.measurements]
    header = ("# Constants of the analytical model in workbench/hardware/latency_model.py, written by `workbench calibrate`\n"
              "# (fitted to the whole-model measurements at the end; `calibration.prior` holds the constants it\n"
              "# started from). `workbench model-lut` turns them into lut.csv.\n")
    body = yaml.safe_dump(data, sort_keys=False, width=110, default_flow_style=None, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")


# ---------------------------------------------------------------- measured (host) LUTs

def calibrate_lut(profile, measurements: list[Measurement], ops_per_model: list[list[Op]],
                  strength: float = DEFAULT_STRENGTH, command: str = "", machine: dict | None = None) -> Report:
    """Fit per-(kind, precision) scale + in-graph overhead and the per-inference overhead of a measured LUT;
    rewrite ``lut.csv``, ``profile.yaml`` (per_inference_ms, measured_on) and ``calibration.json``."""
    terms = LutTerms(profile)
    rows = [terms.row(ops) for ops in ops_per_model]
    x, constants, loo = _run_fit(terms, rows, measurements, strength)
    report = Report(profile.name, "lut", measurements, x @ terms.prior, x @ constants, loo,
                    dict(zip(terms.names, map(float, constants))), strength)
    _rewrite_lut(profile, report.constants, machine, command, report.summary())
    return report


def _rewrite_lut(profile, c: dict[str, float], machine: dict | None, command: str, summary: dict) -> None:
    from workbench.calibration.host_profile import set_measured_on  # heavy: onnx, onnxruntime
    from workbench.calibration.profiler import MIN_MS  # heavy: onnx, onnxruntime

    machine = machine or this_machine()
    folder = Path(profile.path).parent
    day = datetime.date.today().isoformat()
    rows = []
    lut = profile.latency.lut
    for e in lut.entries.values():
        scale, extra = c[f"scale.{e.kind}.{e.prec}"], c[f"overhead.{e.kind}.{e.prec}"]
        base_ref = e.reference.split(" | calibrated")[0]
        ref = (f"{base_ref} | calibrated to whole models on {machine['cpu']} ({day}): x{scale:.4g} "
               f"{extra * 1e3:+.3g} us")
        rows.append(LutEntry(e.key, e.kind, e.prec, e.macs, e.bytes, max(MIN_MS, e.mean_ms * scale + extra),
                             e.std_ms * scale, e.count, e.source, ref))
    write_lut(Path(lut.path), rows)
    profile_yaml = Path(profile.path)
    set_per_inference_ms(profile_yaml, c["per_inference_ms"],
                         "fitted to whole models by `workbench calibrate` (calibration.json)")
    set_measured_on(profile_yaml, machine)
    cal_path = folder / "calibration.json"
    data = json.loads(cal_path.read_text()) if cal_path.is_file() else {}
    data["whole_model"] = {"command": command, "date": day, "machine": machine, **summary,  # read by workbench.hardware.trust
                           "constants": {k: round(v, 9) for k, v in c.items()}}
    cal_path.write_text(json.dumps(data, indent=2) + "\n")


def time_host_models(profile, n_per_space: int = QUICK_MODELS, seed: int = QUICK_SEED, warmup: int = 20,
                     repeats: int = 100, progress: bool = True) -> tuple[list[Measurement], list[list[Op]]]:
    """Time seeded random models of every shipped space here, end to end, with the profiler's session
    settings and timing statistic (what ``--quick`` fits to). Fixed spaces give one model per precision."""
    from workbench.calibration.graph_timing import measure  # heavy: onnx, onnxruntime
    from workbench.calibration.op_graphs import deployed_graph  # heavy: onnx, onnxruntime

    facts = this_machine()
    source = f"timed here: {facts['cpu']}, {facts['runtime']}, 1 thread, {datetime.date.today().isoformat()}"
    measurements, ops, skipped = [], [], 0
    t0 = time.perf_counter()
    for space in all_spaces():
        seen = set()
        for arch in space.random_archs(n_per_space * len(profile.precisions), seed=seed,
                                       precisions=list(profile.precisions)):
            if arch.op_keys in seen:
                continue
            seen.add(arch.op_keys)
            if any(key not in profile.latency.lut.entries for key in arch.op_keys):
                skipped += 1  # ops the LUT interpolates: nothing of the LUT's to rescale (re-profile instead)
                continue
            ms = measure(deployed_graph(arch), None, warmup, repeats)[0]
            measurements.append(Measurement(arch.to_json(), arch.precision, ms, source))
            ops.append(list(arch.ops))
        if progress:
            print(f"[calibrate: {space.name} timed, {len(measurements)} models, {time.perf_counter() - t0:.0f} s"
                  f"{f'; {skipped} skipped (ops not in the LUT)' if skipped else ''}]", file=sys.stderr)
    return measurements, ops


def calibrate_quick(profile_dir: Path, n_per_space: int = QUICK_MODELS, strength: float = QUICK_STRENGTH,
                    progress: bool = True, name: str | None = None) -> Report:
    """Refresh a measured host LUT for this machine from whole models timed here (see module docstring)."""
    check_strength(strength)
    profile_yaml = Path(profile_dir) / "profile.yaml"
    profile = parse_profile(load_yaml_mapping(profile_yaml), profile_yaml)
    if all(e.source == "modeled" for e in _lut_to_rescale(profile).entries.values()):
        raise WorkbenchError("--quick times models on this host: it refreshes a measured host LUT, not a "
                             "modeled one (give --measurements timed on the board)", where=str(profile_yaml))
    measurements, ops = time_host_models(profile, n_per_space, progress=progress)
    return calibrate_lut(profile, measurements, ops, strength,
                         command=f"workbench calibrate {name or profile_dir} --quick --models-per-space {n_per_space}")


def check_strength(strength: float) -> None:
    if not (0 <= strength <= 1e6):
        raise WorkbenchError(f"--strength: must be between 0 and 1e6, got {strength}")


def calibrate_profile(profile_dir: Path, measurements_csv: Path, strength: float = DEFAULT_STRENGTH,
                      name: str | None = None, restart: bool = False) -> Report:
    """``workbench calibrate PROFILE --measurements FILE`` for either kind of profile."""
    check_strength(strength)
    measurements = read_measurements(measurements_csv)
    base = Path(measurements_csv).resolve().parent
    command = (f"workbench calibrate {name or profile_dir} --measurements {measurements_csv} --strength {strength:g}"
               + (" --restart" if restart else ""))
    if (Path(profile_dir) / "latency_model.yaml").is_file():
        return calibrate_modeled(Path(profile_dir), measurements, base, strength, command, restart)
    profile_yaml = Path(profile_dir) / "profile.yaml"
    profile = parse_profile(load_yaml_mapping(profile_yaml), profile_yaml)
    ops = [model_ops(m, base) for m in measurements]
    return calibrate_lut(profile, measurements, ops, strength, command)


def resolve_profile_dir(name_or_path: str) -> Path:
    """A profile name (the user's own, else the shipped one) or a profile folder → the folder (checked to hold
    a profile.yaml). For reading: :func:`writable_profile_dir` is the folder a calibration writes."""
    path = Path(name_or_path)
    if path.is_dir() and (path / "profile.yaml").is_file():
        return path
    found = find_profile(str(name_or_path))
    if found is None:
        raise unknown_device(name_or_path)
    return found


@contextlib.contextmanager
def writable_profile_dir(name_or_path: str):
    """The folder ``workbench calibrate`` rewrites, for the duration of the block: a folder given by path,
    itself (refused inside an installed package); a name, the user's own profile of that name, copied from the
    shipped one on first use (and removed again when the block fails), so the installed package and the
    repository's ``hw_profiles/`` are never rewritten by name."""
    folder = resolve_profile_dir(name_or_path)
    if folder == Path(name_or_path) or not places.is_shipped(folder, places.PROFILES):
        places.refuse_installed(folder, "calibrate")
        yield folder
        return
    copy = places.copy_shipped_profile(folder.name)  # a name reached a shipped profile: the user has none yet
    try:
        yield copy
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
