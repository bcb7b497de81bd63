"""Measure fused-op latencies on this host with onnxruntime and write a ``measured`` device profile.

Each LUT op is built as a one-op ONNX graph that mirrors the deployed graph (BatchNorm folded into
Conv+bias, ReLU6 = ``Clip(0, 6)``, 'same' padding), timed in a single-threaded onnxruntime session,
and written with :func:`workbench.profiles.write_lut`. The same node builders chain a whole
architecture into one graph (:func:`arch_graph`), so the LUT's sum can be checked against an
end-to-end measurement with identical session settings (``benchmarks/bench_fidelity.py``).

Graphs are written with ``onnx.helper`` directly (no ``torch.onnx.export``): building one takes
about a millisecond, which matters when the LUT has ~2,000 entries.

int8 graphs are QDQ graphs from onnxruntime's ``quantize_static`` (per-channel int8 weights, uint8
activations — the U8S8 pair onnxruntime's x86 kernels are built for). Their leading
``QuantizeLinear`` and trailing ``DequantizeLinear`` are removed so the graph takes and returns
uint8 tensors: inside a deployed int8 network an op reads and writes quantised activations, so
timing the float↔int conversions per op would count them once per op instead of once per model.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from .arch import Architecture
from .errors import WorkbenchError
from .ops import Op, same_pads
from .profiles import LutEntry, entry_for, load_lut, write_lut
from .safeio import check_output_folder

OPSET = 21
SEED = 0
THREADS = 1
HOST_PRECISIONS = ("fp32", "int8")  # w4a8 has no onnxruntime CPU kernel worth timing
KEEP_FASTEST = 0.8  # robust mean: the fastest 80 % of timed runs (drops scheduler/interrupt outliers)
DEFAULT_WARMUP = 100
DEFAULT_REPEATS = 1000
CALIB_SEED = 1000  # disjoint from the benchmarks' seed 0
MIN_MS = 1e-4  # floor of a net op latency (LUT means must be positive)


# ---------------------------------------------------------------- graph building

class _Graph:
    """Accumulates nodes and initialisers; names are unique by a counter; weights from one seeded RNG."""

    def __init__(self, seed: int = SEED):
        self.nodes: list = []
        self.inits: list = []
        self.rng = np.random.default_rng(seed)
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op_type: str, inputs: Sequence[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int, groups: int, dims: int, act: bool) -> str:
        """Conv with folded-BN bias ('same' padding kernel//2), then ReLU6 unless ``act`` is False."""
        fan_in = cin // groups * kernel ** dims
        w = self.rng.standard_normal((cout, cin // groups) + (kernel,) * dims) * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(cout) * 0.1
        pad = kernel // 2
        y = self.node("Conv", [x, self.const("w", w), self.const("b", b)], kernel_shape=[kernel] * dims,
                      strides=[stride] * dims, pads=[pad] * (2 * dims), group=groups)
        return self.relu6(y) if act else y

    def conv2d(self, x: str, in_hw, cin: int, cout: int, kernel: tuple, stride: tuple, groups: int,
               act: str | None) -> str:
        """2-D conv with folded-BN bias, any kernel/stride pair, 'same' padding as
        :func:`workbench.ops.same_pads` (asymmetric for even kernels), then ``act`` (relu6, relu, None)."""
        fan_in = cin // groups * kernel[0] * kernel[1]
        w = self.rng.standard_normal((cout, cin // groups, *kernel)) * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(cout) * 0.1
        (top, bottom), (left, right) = (same_pads(n, k, s) for n, k, s in zip(in_hw, kernel, stride))
        y = self.node("Conv", [x, self.const("w", w), self.const("b", b)], kernel_shape=list(kernel),
                      strides=list(stride), pads=[top, left, bottom, right], group=groups)
        if act == "relu6":
            return self.relu6(y)
        return self.node("Relu", [y]) if act == "relu" else y

    def relu6(self, x: str) -> str:
        if not hasattr(self, "_clip"):
            self._clip = (self.const("zero", np.array(0.0)), self.const("six", np.array(6.0)))
        return self.node("Clip", [x, *self._clip])


def _append_op(g: _Graph, x: str, op: Op) -> str:
    """Append the deployed nodes of one fused op reading tensor ``x``; return its output tensor name.
    The nodes come from the op kind's spec (:meth:`workbench.ops.OpSpec.onnx`)."""
    return op.spec.onnx(g, x, op)


def _model(g: _Graph, x: str, y: str, in_shape: Sequence[int], out_shape: Sequence[int], name: str) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, *in_shape])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, *out_shape])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="workbench")
    model.ir_version = 10  # onnxruntime 1.32 reads IR ≤ 11; 10 keeps older runtimes happy too
    return model


def op_graph(op: Op, seed: int = SEED) -> onnx.ModelProto:
    """A batch-1 fp32 ONNX model of one fused op, as the runtime would execute it."""
    g = _Graph(seed)
    y = _append_op(g, "input", op)
    return _model(g, "input", y, op.in_shape, op.out_shape, op.key)


def arch_graph(arch: Architecture, seed: int = SEED) -> onnx.ModelProto:
    """The whole architecture as one fp32 ONNX model: the op builders of :func:`op_graph`, chained."""
    g = _Graph(seed)
    x = "input"
    for op in arch.ops:
        x = _append_op(g, x, op)
    return _model(g, "input", x, arch.ops[0].in_shape, arch.ops[-1].out_shape, f"{arch.space}")


# ---------------------------------------------------------------- int8

class _RandomReader:
    """Calibration data: a few seeded standard-normal inputs (ranges only need to be plausible for timing)."""

    def __init__(self, name: str, shape: Sequence[int], n: int, seed: int):
        rng = np.random.default_rng(seed)
        self._data = iter([{name: rng.standard_normal(tuple(shape)).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self._data, None)


def quantize_int8(model: onnx.ModelProto, n_calib: int = 2, seed: int = SEED, int8_io: bool = True) -> onnx.ModelProto:
    """QDQ int8 version of an fp32 model via ``quantize_static`` (MinMax, per-channel int8 weights, uint8
    activations). ``int8_io`` strips the input Quantize / output Dequantize (see module docstring)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # silence the per-call "consider pre-processing" advice
    try:
        with tempfile.TemporaryDirectory(prefix="wb-q-") as tmp:
            out = Path(tmp) / "q.onnx"
            quantize_static(model, out, _RandomReader(inp.name, shape, n_calib, seed), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            # pools alone in a graph would otherwise stay float (no quantised producer)
                            extra_options={"ForceQuantizeNoInputCheck": True})
            q = onnx.load(str(out))
    finally:
        root.setLevel(level)
    return _strip_io_qdq(q) if int8_io else q


def _strip_io_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make the graph read/write uint8: drop the QuantizeLinear on the input and DequantizeLinear on the output."""
    g = model.graph
    x, y = g.input[0].name, g.output[0].name
    q_in = next((n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == x), None)
    dq_out = next((n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == y), None)
    if q_in is None or dq_out is None:
        return model
    consumers = sum(x in n.input for n in g.node)
    if consumers != 1:
        return model  # the float input feeds something else too: keep the float interface
    qtype = _init_dtype(g, q_in.input[2]) if len(q_in.input) > 2 else TensorProto.UINT8
    g.input[0].name = q_in.output[0]
    g.input[0].type.tensor_type.elem_type = qtype
    g.output[0].name = dq_out.input[0]
    g.output[0].type.tensor_type.elem_type = qtype
    g.node.remove(q_in)
    g.node.remove(dq_out)
    return model


def _init_dtype(g, name: str) -> int:
    for init in g.initializer:
        if init.name == name:
            return init.data_type
    return TensorProto.UINT8


def deployed_graph(obj: Op | Architecture, precision: str | None = None) -> onnx.ModelProto:
    """The graph that gets timed: fp32 as built, int8 quantised to QDQ with uint8 I/O."""
    model = op_graph(obj) if isinstance(obj, Op) else arch_graph(obj)
    prec = precision or obj.precision
    if prec == "fp32":
        return model
    if prec == "int8":
        return quantize_int8(model)
    raise ValueError(f"precision {prec!r} is not measurable with onnxruntime on this host (fp32, int8)")


# ---------------------------------------------------------------- timing

def session_options() -> ort.SessionOptions:
    """One intra-op and one inter-op thread, sequential, all graph optimisations: the setting every
    measurement (per-op LUT and whole-model check) uses, so their numbers are comparable."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = THREADS
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


_NP_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def input_for(sess: ort.InferenceSession, seed: int = SEED) -> dict:
    meta = sess.get_inputs()[0]
    shape, dtype = meta.shape, _NP_TYPES[meta.type]
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        data = rng.standard_normal(shape).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)
    return {meta.name: data}


def make_session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])


def measure(model: onnx.ModelProto, input_shape: Sequence[int] | None = None, warmup: int = DEFAULT_WARMUP,
            repeats: int = DEFAULT_REPEATS) -> tuple[float, float, int]:
    """(mean ms, std ms, runs kept) of one inference, excluding session creation.

    Every run is timed alone with ``perf_counter``; the mean and std are over the fastest
    ``KEEP_FASTEST`` share of the runs, because on a shared host the slow tail is interference
    (other processes, interrupts), not the op. ``input_shape`` is checked against the model's
    input when given (the model itself knows its shape and dtype).
    """
    sess = make_session(model)
    feed = input_for(sess)
    if input_shape is not None:
        got = tuple(next(iter(feed.values())).shape)
        want = tuple(input_shape) if len(input_shape) == len(got) else (1, *input_shape)
        if got != want:
            raise ValueError(f"model input is {got}, expected {want}")
    return time_session(sess, feed, warmup, repeats)


def time_session(sess: ort.InferenceSession, feed: dict, warmup: int, repeats: int) -> tuple[float, float, int]:
    run, clock = sess.run, time.perf_counter
    for _ in range(warmup):
        run(None, feed)
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = clock()
        run(None, feed)
        times[i] = clock() - t0
    kept = np.sort(times)[: max(1, int(round(repeats * KEEP_FASTEST)))] * 1e3
    return float(kept.mean()), float(kept.std()), int(kept.size)


def _null_graph() -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "null",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    return model


def run_overhead_ms(warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, rounds: int = 3) -> float:
    """Fixed cost of one ``session.run`` call (Python binding, input/output binding, one node): a
    one-element Identity graph, best of ``rounds``. ~5 µs here — as much as a small op."""
    sess = make_session(_null_graph())
    feed = input_for(sess)
    return min(time_session(sess, feed, warmup, repeats)[0] for _ in range(rounds))


@dataclass(frozen=True)
class Calibration:
    """How one-op timings relate to whole-model timings on this host.

    A one-op graph pays the whole ``session.run`` overhead plus costs a chained op does not (graph
    output allocation and hand-over, executor bookkeeping): ``per_op_ms``, subtracted from every raw
    one-op time to give the op's cost *inside* a model. A model pays ``per_inference_ms`` once.
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


# ---------------------------------------------------------------- the profile

def cpu_facts() -> tuple[str, float, int]:
    """(CPU model name, clock MHz, MemTotal kB): see :func:`workbench.machine.cpu_facts`."""
    from .machine import cpu_facts as facts

    return facts()


def reference_string(warmup: int, repeats: int, per_op_ms: float) -> str:
    model, mhz, _ = cpu_facts()
    day = datetime.date.today().isoformat()
    return (f"{model} @ {mhz:g} MHz; onnxruntime {ort.__version__} CPU; intra/inter-op threads {THREADS}/{THREADS}, "
            f"sequential, ORT_ENABLE_ALL; warmup {warmup}, mean of fastest {int(KEEP_FASTEST * 100)}% of {repeats} "
            f"runs minus {per_op_ms * 1e3:.2f} us one-op-graph overhead (calibration.json); {day}")


def profile_device(out_dir: Path, *, spaces=None, precisions: Iterable[str] = HOST_PRECISIONS,
                   warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS, limit: int | None = None,
                   progress: bool = True, calib_archs: int = 10) -> Path:
    """Measure every op the spaces can produce, write ``out_dir/lut.csv``, ``profile.yaml`` and
    ``calibration.json`` (see :class:`Calibration`; ``calib_archs`` random archs per space); return out_dir.

    Resumable: keys already in an existing ``lut.csv`` are kept and not re-measured (delete the file
    to re-profile). The LUT is rewritten every 50 ops so an interrupted run loses little.
    """
    from .space import all_spaces, enumerate_ops

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
    ref = reference_string(warmup, repeats, cal.per_op_ms)
    for i, op in enumerate(_progress(todo, progress, len(rows)), start=1):
        mean, std, count = raw.get(op.key) or measure(deployed_graph(op), None, warmup, repeats)
        rows[op.key] = entry_for(op, max(mean - cal.per_op_ms, MIN_MS), std, count, "measured", ref)
        if i % 50 == 0:
            write_lut(lut_path, list(rows.values()))
    write_lut(lut_path, list(rows.values()))
    _write_profile_yaml(out_dir, sorted({r.prec for r in rows.values()}, key=HOST_PRECISIONS.index), cal)
    return out_dir


PROFILE_FILES = ("lut.csv", "calibration.json", "profile.yaml")  # what profile_device writes


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
    path = out_dir / "calibration.json"
    if path.is_file() and (out_dir / "lut.csv").is_file():
        data = json.loads(path.read_text())
        return Calibration(data["per_inference_ms"], data["per_op_ms"], data["archs"], data["seed"])
    cal = calibrate(spaces, precisions, warmup, repeats, n, raw=raw)
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cal.to_dict(), indent=2) + "\n")
    return cal


def _existing_rows(path: Path) -> dict[str, LutEntry]:
    if not path.is_file():
        return {}
    return dict(load_lut(path).entries)


def _progress(items: list, show: bool, done: int):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"profiling ({done} already in LUT)", unit="op", dynamic_ncols=True)


HOST_MEMORY_SECTION = """# Peak SRAM / flash: what the int8 export needs in TensorFlow Lite Micro's 64-bit host build (reference
# kernels; the configuration every tflite-int8 export is checked against). onnxruntime allocates
# differently; next to this device's budget the difference does not decide what fits.
memory:
  kernels: reference
  pointer_bytes: 8
  source: "no runtime code counted: the runtime is an installed library, not part of the model's storage"
"""


def measured_on_yaml() -> str:
    """The ``measured_on`` block of a host profile: the machine its LUT belongs to (workbench.machine
    compares it with the machine the profile is used on, and says so when they differ)."""
    from .machine import this_machine

    facts = this_machine()
    return (f"# The machine every LUT entry was measured on; used elsewhere, the workbench says so once.\n"
            f"measured_on: {{cpu: {json.dumps(facts['cpu'])}, cores: {facts['cores']}, "
            f"runtime: {json.dumps(facts['runtime'])}}}")


def _write_profile_yaml(out_dir: Path, precisions: Sequence[str], cal: Calibration) -> None:
    model, mhz, mem_kb = cpu_facts()
    text = f"""# Written by workbench.profiler.profile_device on {datetime.date.today().isoformat()}.
name: {out_dir.resolve().name}
description: >-
  This host ({model}, {os.cpu_count()} cores) running onnxruntime {ort.__version__} on one thread; every LUT
  entry measured. A host keeps the model in RAM, so sram_kb and flash_kb are both MemTotal (no real limit).
device_class: cpu
runtime: onnxruntime {ort.__version__} CPU (1 thread)
clock_mhz: {mhz:g}
sram_kb: {mem_kb}
flash_kb: {mem_kb}
reserved_sram_kb: 0
reserved_flash_kb: 0
precisions: [{", ".join(precisions)}]
lut: lut.csv
# LUT entries are one-op graph times minus {cal.per_op_ms:.5f} ms (what a chained op does not pay);
# a whole model also pays session.run's overhead once (measured, see calibration.json):
per_inference_ms: {cal.per_inference_ms:.6f}
{measured_on_yaml()}
{HOST_MEMORY_SECTION}"""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.yaml").write_text(text, encoding="utf-8")
