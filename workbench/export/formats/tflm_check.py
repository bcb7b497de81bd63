"""Run a written full-INT8 ``.tflite`` in TensorFlow Lite Micro and hold the memory model to it.

Called by :func:`workbench.export.trial.export_model` for every ``tflite-int8`` file: the whole test set runs
in TFLM (the ``tflite-micro`` host build) with the same int8 inputs the LiteRT interpreter got, and the
manifest records

- ``arena``: the arena bytes TFLM used (total, head = planned tensors + scratch, tail = persistent);
- ``agreement``: how TFLM's int8 outputs compare with LiteRT running its *reference* kernels (the
  kernel family TFLM's host build runs): identical share and the largest difference in int8 steps;
  within one step is agreement. For information, also against LiteRT's optimised builtin kernels and
  the XNNPACK delegate the verification used, which round some requantisations (MEAN, ADD)
  differently and may differ by a few steps;
- ``predicted`` vs ``measured`` SRAM (arena) and flash (file bytes) of :mod:`workbench.hardware.memory` for
  the configuration TFLM ran (64-bit host, reference kernels), with the parts.

A prediction more than :data:`TOLERANCE` off becomes a warning naming the parts that differ; the CLI
prints it under the file's line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError
from workbench.export.formats.tflite_format import interpreter
from workbench.export.formats.tflm_runner import run_tflm
from workbench.hardware.memory import HOST_TFLM, estimate_int8_export

TOLERANCE = 0.05
MAX_STEP_DIFF = 1


def tflm_check(path: Path, runner, x_test: np.ndarray, arch) -> tuple[dict, list[str]]:
    """(manifest record, warnings) for the int8 file at ``path``; ``runner`` is its LiteRT runner."""
    try:
        import tflite_micro  # noqa: F401  # optional: tflite_micro (the export extra)
    except ImportError:
        return {"skipped": "tflite-micro is not installed"}, [
            "TFLite Micro check skipped: the tflite-micro package is not installed (pip install -e '.[export]')"]
    inputs, delegated = litert_int8(runner, x_test)
    reference = litert_kernels_int8(path, inputs, "BUILTIN_REF")
    builtin = litert_kernels_int8(path, inputs, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    try:
        run = run_tflm(path, inputs)
    except WorkbenchError as exc:
        return {"error": str(exc)}, [f"TFLite Micro could not run the file: {exc}"]
    record = {**run.to_dict(), "samples": int(len(inputs))}
    warnings = []
    diff = _steps(run.outputs, reference)
    record["agreement"] = {"identical": float((diff.max(axis=1) == 0).mean()), "max_step_difference": int(diff.max()),
                           "within_one_step": bool(diff.max() <= MAX_STEP_DIFF),
                           "compared_with": "LiteRT int8 outputs, reference kernels",
                           "max_step_difference_builtin_kernels": int(_steps(run.outputs, builtin).max()),
                           "max_step_difference_xnnpack": int(_steps(run.outputs, delegated).max())}
    if diff.max() > MAX_STEP_DIFF:
        warnings.append(f"TFLite Micro's int8 outputs differ from LiteRT's by up to {int(diff.max())} steps "
                        f"({100 * record['agreement']['identical']:.1f} % of samples identical)")
    record["memory"], mismatch = compare(estimate_int8_export(arch, HOST_TFLM), run, path.stat().st_size)
    warnings += mismatch
    return record, warnings


def litert_int8(runner, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 input rows LiteRT was fed and its raw int8 outputs, one row per test sample."""
    inputs, outputs = [], []
    for i in range(len(x_test)):
        prepared = runner.prepare(x_test[i:i + 1])
        runner.run_once(prepared)
        inputs.append(prepared[0])
        outputs.append(runner.raw_output().reshape(-1))
    return np.stack(inputs), np.stack(outputs)


def _steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32))


def litert_kernels_int8(path: Path, inputs: np.ndarray, resolver: str) -> np.ndarray:
    """LiteRT's raw outputs with one of its kernel sets (``OpResolverType`` name, no delegate)."""
    it = interpreter(path, resolver)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for row in inputs:
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        rows.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(rows)


def compare(pred, run, file_size: int) -> tuple[dict, list[str]]:
    """Predicted vs measured SRAM and flash with their parts; warnings where they differ > 5 %."""
    head_pred = pred.arena.activations + pred.arena.scratch
    record = {
        "configuration": HOST_TFLM.name,
        "sram": {"predicted": pred.sram_bytes, "measured": run.total,
                 "parts": {"activations+scratch": {"predicted": head_pred, "measured_head": run.head},
                           "persistent": {"predicted": pred.arena.persistent, "measured_tail": run.tail}}},
        "flash": {"predicted": pred.file_bytes, "measured": file_size,
                  "parts": {"file": {"predicted": pred.file_bytes, "measured": file_size}},
                  "note": "runtime code is a per-profile estimate (not in the file); see 'predicted'"},
    }
    warnings = []
    for what in ("sram", "flash"):
        entry = record[what]
        error = (entry["predicted"] - entry["measured"]) / entry["measured"]
        entry["relative_error"] = round(error, 4)
        if abs(error) > TOLERANCE:
            parts = "; ".join(f"{name} {_part(p)}" for name, p in entry["parts"].items())
            warnings.append(f"memory model: predicted {what.upper() if what == 'sram' else what} "
                            f"{entry['predicted']:,} B vs {entry['measured']:,} B in TFLite Micro "
                            f"({100 * error:+.1f} %): {parts}")
    return record, warnings


def _part(p: dict) -> str:
    measured = next(v for k, v in p.items() if k.startswith("measured"))
    return f"{p['predicted']:,} vs {measured:,}"
