"""Run a ``.tflite`` file in TensorFlow Lite Micro (the ``tflite-micro`` package's host build) and read
back what its arena allocator recorded.

The package's interpreter is TFLM's C++ ``MicroInterpreter`` with the ``RecordingMicroAllocator``; its
``print_allocations()`` writes (on stderr) the arena's total / head (non-persistent: the memory planner's tensor
plan and kernel scratch) / tail (persistent: tensor structs, node structs, kernels' op data) sizes to
the C++ log, which is only flushed when the process exits. So the interpreter runs in a child process
(``python -m workbench.export.formats.tflm_runner``) that reads the inputs from an ``.npy`` file, writes the
int8 outputs to another and exits; this module parses its output.

The host build runs TFLM's *reference* kernels on a 64-bit machine: its persistent section is laid out
with 8-byte pointers, and it requests no CMSIS-NN scratch buffers. :mod:`workbench.hardware.memory` models
exactly this configuration (``pointer_bytes=8``, ``kernels="reference"``) to check itself, and the MCU
configuration (4-byte pointers, CMSIS-NN scratch) for the device profiles.
"""
from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from workbench._infra.errors import WorkbenchError

ARENA_BYTES = 8 << 20  # generous: the allocator records what it used, not what it was given
_LINE = re.compile(r"\[RecordingMicroAllocator\] (?:Arena allocation (total|head|tail) (\d+) bytes"
                   r"|'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes)")
CHILD_TIMEOUT_S = 600


@dataclass
class TflmRun:
    """What one TFLM run reported: arena sizes and the recorder's per-category persistent bytes."""

    total: int
    head: int
    tail: int
    categories: dict[str, int] = field(default_factory=dict)
    outputs: np.ndarray | None = None
    version: str = ""

    def to_dict(self) -> dict:
        return {"arena_bytes": self.total, "head_bytes": self.head, "tail_bytes": self.tail,
                "tail_categories": dict(self.categories), "runtime": f"TFLite Micro (tflite-micro {self.version}, "
                                                                     "host build, reference kernels)"}


def tflm_version() -> str:
    try:
        return version("tflite-micro")
    except PackageNotFoundError:
        return "not installed"


def run_tflm(path: str | Path, inputs: np.ndarray | None = None) -> TflmRun:
    """Load ``path`` in TFLM, run every sample of ``inputs`` (already int8/channel-last, one row per
    sample; ``None`` → one all-zero sample) and return the arena record and int8 outputs."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tflm-") as tmp:
        in_file, out_file = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        if inputs is not None:
            np.save(in_file, np.ascontiguousarray(inputs))
        cmd = [sys.executable, "-m", "workbench.export.formats.tflm_runner", str(path.resolve()), str(in_file),
               str(out_file)]
        try:  # run in the temporary folder: a `workbench/` folder in the caller's directory is not imported
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=_child_env(),
                                  cwd=tmp)
        except subprocess.TimeoutExpired:
            raise WorkbenchError(f"TFLite Micro did not finish within {CHILD_TIMEOUT_S} s", where=str(path)) from None
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
            raise WorkbenchError(f"TFLite Micro could not run the model ({tail})", where=str(path))
        run = parse_allocations(done.stdout + done.stderr)
        if out_file.exists():
            run.outputs = np.load(out_file)
    run.version = tflm_version()
    return run


def _child_env() -> dict[str, str]:
    """The environment of the TFLM child, which must import this process's ``workbench``: the folder holding
    the package goes first on PYTHONPATH (a source checkout), unless it is a site-packages folder the child
    reads anyway (a wheel install), where coming first would put every installed package ahead of the
    standard library."""
    root = Path(__file__).resolve().parents[3]
    site_dirs = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in site_dirs:
        return dict(os.environ)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))


def parse_allocations(text: str) -> TflmRun:
    """The recorder's lines → :class:`TflmRun` (raises when the totals are missing)."""
    sizes, categories = {}, {}
    for m in _LINE.finditer(text):
        if m.group(1):
            sizes[m.group(1)] = int(m.group(2))
        else:
            categories[m.group(3)] = int(m.group(4))
    if set(sizes) != {"total", "head", "tail"}:
        raise WorkbenchError("TFLite Micro printed no arena allocation record")
    return TflmRun(sizes["total"], sizes["head"], sizes["tail"], categories)


def _child(model_path: str, in_path: str, out_path: str) -> None:
    """Child-process body: run the model, save outputs, print the allocation record, exit."""
    from tflite_micro.python.tflite_micro import runtime  # optional: tflite_micro (the export extra)

    interp = runtime.Interpreter.from_bytes(Path(model_path).read_bytes(), arena_size=ARENA_BYTES)
    detail = interp.get_input_details(0)
    shape, dtype = tuple(int(s) for s in detail["shape"]), detail["dtype"]
    samples = np.load(in_path) if Path(in_path).exists() else np.zeros((1, *shape[1:]), dtype)
    outputs = []
    for row in samples:
        interp.set_input(np.asarray(row, dtype).reshape(shape), 0)
        interp.invoke()
        outputs.append(np.array(interp.get_output(0)).reshape(-1))
    np.save(out_path, np.stack(outputs))
    sys.stdout.flush()
    interp.print_allocations()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(json.dumps({"usage": "python -m workbench.export.formats.tflm_runner MODEL IN.npy OUT.npy"}))
        sys.exit(2)
    _child(*sys.argv[1:])
