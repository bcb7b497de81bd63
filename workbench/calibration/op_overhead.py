"""How one-op timings relate to whole-model timings on this host (the profiler's ``calibration.json``).

A one-op graph pays the whole ``session.run`` overhead plus costs a chained op does not (graph
output allocation and hand-over, executor bookkeeping). Without correcting for that, a LUT sum
would over-predict every model by (ops × overhead); measured here, not assumed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench._infra.onnx_graph import input_for, make_session
from workbench.calibration.graph_timing import DEFAULT_REPEATS, DEFAULT_WARMUP, measure, time_session
from workbench.calibration.op_graphs import deployed_graph, null_graph

CALIB_SEED = 1000  # disjoint from the benchmarks' seed 0
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """``per_op_ms`` is subtracted from every raw one-op time to give the op's cost *inside* a model;
    a model pays ``per_inference_ms`` once.

    ``per_inference_ms`` is the null-graph run overhead; ``per_op_ms`` is the median over calibration
    architectures of (Σ raw op times − (model time − per_inference_ms)) / ops, never below the null
    overhead. Model latency ≈ per_inference_ms + Σ LUT entries.
    """

    per_inference_ms: float
    per_op_ms: float
    archs: int
    seed: int

    def to_dict(self) -> dict:
        return {"per_inference_ms": self.per_inference_ms, "per_op_ms": self.per_op_ms, "archs": self.archs,
                "seed": self.seed, "note": "model latency ~= per_inference_ms + sum of LUT entries; "
                                           "LUT entry = one-op graph time - per_op_ms"}

    @classmethod
    def read(cls, path: Path) -> "Calibration":
        data = json.loads(Path(path).read_text())
        return cls(data["per_inference_ms"], data["per_op_ms"], data["archs"], data["seed"])

    def write(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def run_overhead_ms(warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, rounds: int = 3) -> float:
    """Fixed cost of one ``session.run`` call (Python binding, input/output binding, one node): a
    one-element Identity graph, best of ``rounds``. ~5 µs here — as much as a small op."""
    sess = make_session(null_graph())
    feed = input_for(sess)
    return min(time_session(sess, feed, warmup, repeats)[0] for _ in range(rounds))


def calibrate(spaces, precisions, warmup: int, repeats: int, n: int = 10, seed: int = CALIB_SEED,
              raw: dict | None = None) -> Calibration:
    """Measure ``n`` random archs per space end-to-end and their ops alone (raw times cached in ``raw``)."""
    overhead = run_overhead_ms(warmup, repeats)
    if n <= 0:
        return Calibration(overhead, overhead, 0, seed)
    raw = {} if raw is None else raw
    extra = []
    for space in spaces:
        for arch in space.random_archs(n, seed=seed, precisions=list(precisions)):
            for op in arch.ops:
                if op.key not in raw:
                    raw[op.key] = measure(deployed_graph(op), None, warmup, repeats)
            model_ms = measure(deployed_graph(arch), None, warmup, repeats)[0]
            summed = sum(raw[op.key][0] for op in arch.ops)
            extra.append((summed - (model_ms - overhead)) / len(arch.ops))
    return Calibration(overhead, max(overhead, float(np.median(extra))), len(extra), seed)
