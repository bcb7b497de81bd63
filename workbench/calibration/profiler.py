"""Measure fused-op latencies on this host with onnxruntime and write a ``measured`` device profile.

``workbench profile --out DIR`` (:func:`profile_device`): every op the spaces can produce is
lowered to a one-op ONNX graph (:mod:`workbench.calibration.op_graphs`; int8 as QDQ, :mod:`workbench.calibration.qdq`),
timed in a single-threaded onnxruntime session (:mod:`workbench.calibration.graph_timing`, statistic of
:mod:`workbench._infra.timing`), corrected by the one-op-graph overhead measured here
(:mod:`workbench.calibration.op_overhead`) and written with :func:`workbench.hardware.lut.write_lut`, next to a
``profile.yaml`` (:mod:`workbench.calibration.host_profile`). This module is the run itself: which ops, resuming
an interrupted run, and which folders it may write into.

The names other code imports from here (graph builders, timing, session helpers) are re-exported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from workbench._infra.errors import WorkbenchError
from workbench._infra.onnx_graph import input_for, make_session, session_options  # noqa: F401  (re-exported)
from workbench._infra.safeio import check_output_folder
from workbench._infra.timing import KEEP_FASTEST  # noqa: F401  (re-exported)
from workbench.calibration.graph_timing import (  # noqa: F401  (re-exported)
    DEFAULT_REPEATS,
    DEFAULT_WARMUP,
    MAX_RUNS_PER_OP,
    measure,
    time_session,
)
from workbench.calibration.host_profile import lut_reference, write_profile_yaml
from workbench.calibration.op_graphs import arch_graph, deployed_graph, op_graph  # noqa: F401  (re-exported)
from workbench.calibration.op_overhead import CALIBRATION_FILE, Calibration, calibrate
from workbench.calibration.qdq import quantize_int8  # noqa: F401  (re-exported)
from workbench.hardware.lut import LutEntry, entry_for, load_lut, write_lut
from workbench.hardware.machine import cpu_facts
from workbench.model.space import all_spaces, enumerate_ops

HOST_PRECISIONS = ("fp32", "int8")  # w4a8 has no onnxruntime CPU kernel worth timing
MIN_MS = 1e-4  # floor of a net op latency (LUT means must be positive)
SAVE_EVERY = 50  # ops measured between LUT rewrites: an interrupted run loses little
PROFILE_FILES = ("lut.csv", CALIBRATION_FILE, "profile.yaml")  # what profile_device writes


def profile_device(out_dir: Path, *, spaces=None, precisions: Iterable[str] = HOST_PRECISIONS,
                   warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, limit: int | None = None,
                   progress: bool = True, calib_archs: int = 10) -> Path:
    """Measure every op the spaces can produce, write ``out_dir/lut.csv``, ``profile.yaml`` and
    ``calibration.json`` (see :class:`~workbench.calibration.op_overhead.Calibration`; ``calib_archs`` random
    archs per space); return out_dir.

    Resumable: keys already in an existing ``lut.csv`` are kept and not re-measured (delete the file
    to re-profile). The LUT is rewritten every :data:`SAVE_EVERY` ops.
    """
    out_dir = Path(out_dir)
    precisions = tuple(precisions)
    bad = set(precisions) - set(HOST_PRECISIONS)
    if bad:
        raise ValueError(f"cannot measure {sorted(bad)} with onnxruntime on this host (only {HOST_PRECISIONS})")
    spaces = all_spaces() if spaces is None else list(spaces)
    ops = enumerate_ops(spaces, precisions)
    ops = ops[:limit] if limit is not None else ops
    lut_path = out_dir / "lut.csv"
    rows = _existing_rows(lut_path)
    todo = [op for op in ops if op.key not in rows]
    raw: dict[str, tuple[float, float, int]] = {}
    cal = _calibration(out_dir, spaces, precisions, warmup, repeats, calib_archs if todo else 0, raw)
    ref = lut_reference(warmup, repeats, cal.per_op_ms)
    for i, op in enumerate(_progress(todo, progress, len(rows)), start=1):
        mean, std, count = raw.get(op.key) or measure(deployed_graph(op), None, warmup, repeats)
        rows[op.key] = entry_for(op, max(mean - cal.per_op_ms, MIN_MS), std, count, "measured", ref)
        if i % SAVE_EVERY == 0:
            write_lut(lut_path, list(rows.values()))
    write_lut(lut_path, list(rows.values()))
    measured = sorted({r.prec for r in rows.values()}, key=HOST_PRECISIONS.index)
    write_profile_yaml(out_dir, measured, cal.per_op_ms, cal.per_inference_ms)
    return out_dir


def check_out_dir(out_dir: Path, force: bool = False) -> None:
    """Refuse an ``--out`` folder that holds anything but a (partial) measured profile of this host.

    :func:`profile_device` resumes from an existing ``lut.csv``; resuming is only right when every
    row in it was measured here (same CPU model). A shipped or modeled profile, another machine's
    measurements or foreign files are refused before anything is written; ``force`` deletes the
    profile files (:data:`PROFILE_FILES`) so the folder is profiled afresh (other files are kept).
    """
    out_dir = check_output_folder(out_dir)  # a file, a path under a file, an uncreatable folder: one line
    if not out_dir.exists():
        return
    reason = _not_resumable(out_dir)
    if reason is None:
        return
    if not force:
        raise WorkbenchError(f"{reason}; it is not a partial measured profile of this host, so profiling would "
                             f"overwrite it: choose a new folder, or add --force to replace its "
                             f"{', '.join(PROFILE_FILES)}", where=str(out_dir))
    for name in PROFILE_FILES:
        (out_dir / name).unlink(missing_ok=True)


def _not_resumable(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot be resumed by :func:`profile_device`, or None when it can."""
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in PROFILE_FILES)
    if foreign:
        return f"holds files the profiler does not write ({', '.join(foreign[:4])})"
    lut = out_dir / "lut.csv"
    if not lut.is_file():
        return None
    rows = load_lut(lut).entries.values()
    model = cpu_facts()[0]
    other = next((r for r in rows if r.source != "measured" or not r.reference.startswith(f"{model} @")), None)
    if other is not None:
        what = other.source if other.source != "measured" else f"measured on {other.reference.split(' @')[0]}"
        return f"lut.csv has rows {what} (this host: {model})"
    return None


def _calibration(out_dir: Path, spaces, precisions, warmup, repeats, n, raw) -> Calibration:
    """Reuse the calibration of a resumed profile (its rows were corrected with it); else calibrate now."""
    path = out_dir / CALIBRATION_FILE
    if path.is_file() and (out_dir / "lut.csv").is_file():
        return Calibration.read(path)
    cal = calibrate(spaces, precisions, warmup, repeats, n, raw=raw)
    cal.write(path)
    return cal


def _existing_rows(path: Path) -> dict[str, LutEntry]:
    return dict(load_lut(path).entries) if path.is_file() else {}


def _progress(items: list, show: bool, done: int):
    if not show:
        return items
    from tqdm import tqdm  # heavy: tqdm

    return tqdm(items, desc=f"profiling ({done} already in LUT)", unit="op", dynamic_ncols=True)
