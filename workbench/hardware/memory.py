"""Peak SRAM and flash as TensorFlow Lite Micro sees them: the deployed graph, planned like TFLM plans it.

Why a graph and not a layer rule: the full-INT8 ``.tflite`` that ``workbench export`` writes is not the
fused-op list. The converter inserts a ``PAD`` before every strided convolution (PyTorch pads
symmetrically, TFLite ``SAME`` does not), turns a 1-input-channel convolution into a
``DEPTHWISE_CONV_2D``, wraps 1-D networks in ``TRANSPOSE``/``RESHAPE``/``QUANTIZE`` plumbing, and
TFLM's greedy planner places tensors by size, not in the tidy in+out order. So each op kind is
*lowered* to the TFLite operators the exporter really emits (each kind's :meth:`OpSpec.tflite
<workbench.model.ops.OpSpec.tflite>` calls the ``lower_*`` helpers here), with every tensor's shape, and then

* **activations** — tensor lifetimes over the schedule exactly as TFLM's ``AllocationInfoBuilder``
  marks them (graph inputs from step 0, an op's outputs and inputs at its step), sizes rounded up to
  the 16-byte arena alignment, and offsets chosen by a re-implementation of TFLM's
  ``GreedyMemoryPlanner`` (largest first, first gap among time-overlapping buffers); kernel scratch
  requests join the plan with their op's lifetime;
* **persistent** — TFLM's tail: one ``TfLiteEvalTensor`` per tensor, one ``NodeAndRegistration``
  per operator, the kernels' op data and per-channel multiplier/shift arrays (16-byte aligned), the
  interpreter's input/output ``TfLiteTensor``s and the allocator's own objects — sizes from the
  runtime description in the device profile (pointer width: 8 bytes on the host build that checks
  this model, 4 on a Cortex-M);
* **scratch** — the kernel scratch buffers of the profile's runtime (TFLM reference kernels: MEAN's
  accumulators; CMSIS-NN: im2col / depthwise buffers), planned with the activations;
* **flash** — the ``.tflite`` flatbuffer: constant buffers at their stored width (int8 weights,
  int32 biases, int32 shape/axis operands) with their 16-byte alignment, per-channel quantisation
  parameters as stored (float32 scale + int64 zero point per channel, on weights *and* biases),
  and the tensor/operator tables with the converter's tensor names (:data:`NAME_CHARS`,
  :data:`TABLE_BYTES`), plus the runtime's code for the operators used (``code_kb`` in the profile).

Everything is pure arithmetic over the architecture's cached op list, memoised per architecture and
runtime: a scored architecture costs a dictionary lookup, a new one the lowering and two plans
(a few hundred microseconds). ``benchmarks/bench_memory.py`` compares it with TFLM on exported files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from workbench._infra.memo import BoundedMemo
from workbench.model.tflite_graph import Const, Graph, TOp, align, constants, lower, prod

# ---------------------------------------------------------------- TFLM's memory planner

def lifetimes(g: Graph) -> list[tuple[int, int]]:
    """(first, last) step of every activation tensor, as TFLM's ``MarkAllocationLifetimes`` sets them:
    the graph input lives from step 0, op ``i`` runs at step ``i + 1``, the graph output to the end."""
    first = [-1] * len(g.tensors)
    last = [-1] * len(g.tensors)
    first[0] = last[0] = 0
    for step, op in enumerate(g.ops, start=1):
        if first[op.output] < 0:
            first[op.output] = step
        for t in op.inputs:
            last[t] = step
        last[op.output] = step
    return list(zip(first, last))


def greedy_plan(buffers: list[tuple[int, int, int]]) -> int:
    """Arena bytes TFLM's ``GreedyMemoryPlanner`` needs for ``(size, first, last)`` buffers.

    Same order (size descending, ties: later buffer first — its bubble sort over the reversed list is
    stable) and the same rule (walk the placed buffers that overlap in time by offset; take the first
    gap that fits, else the end of the last one)."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], -i))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    high = 0
    for i in order:
        size, first, last = buffers[i]
        offset = 0
        # the placed buffers alive at the same time, by offset (TFLM walks its offset-sorted list and
        # skips the others; which of two equal offsets comes first cannot matter: they never overlap)
        for p_off, p_end in sorted([(p[0], p[1]) for p in placed if p[2] <= last and first <= p[3]]):
            if p_off - offset >= size:
                break
            if p_end > offset:
                offset = p_end
        placed.append((offset, offset + size, first, last))
        if offset + size > high:
            high = offset + size
    return high


# ---------------------------------------------------------------- runtime description

# Architectures whose arena/flash estimate a runtime remembers (least recently used dropped first). The
# search's scoring asks only when its CostEstimator (workbench.hardware.cost), which keeps the resulting fields per
# architecture, misses; the export checks ask once per file. An estimate with its arena plan is ~3-4 KB,
# so 4,096 of them stay near 15 MB per runtime.
MEMO_SIZE = 4096


@dataclass(frozen=True)
class Runtime:
    """What the arena model needs to know about the runtime build (``memory:`` in a profile)."""

    name: str = "TFLite Micro, reference kernels, 64-bit host"
    kernels: str = "reference"   # "reference" | "cmsis-nn"
    pointer_bytes: int = 8
    code_base_bytes: int = 0
    code_bytes: tuple[tuple[str, int], ...] = ()  # (TFLite operator, kernel code bytes)
    source: str = ""
    # architecture → MemoryEstimate, owned by this runtime (bounded: see MEMO_SIZE)
    memo: BoundedMemo = field(default_factory=lambda: BoundedMemo(MEMO_SIZE), compare=False, hash=False, repr=False)

    @property
    def tag(self) -> str:
        """Short name stored with every prediction (the profile holds the sources)."""
        return f"tflm {self.kernels} {8 * self.pointer_bytes}-bit"


HOST_TFLM = Runtime(source="tflite-micro PyPI host build: 64-bit pointers, reference kernels, no runtime code in the "
                           "model's flash (the library is installed)")
KERNELS = ("reference", "cmsis-nn")


def parse_runtime(f, runtime_name: str) -> Runtime:
    """The ``memory:`` section of a profile (a :class:`workbench._infra.yamlio.Fields`) → :class:`Runtime`."""
    kernels = f.str("kernels", "reference", choices=KERNELS)
    pointer = int(f.number("pointer_bytes", 4, minimum=4, maximum=8, integer=True))
    if pointer not in (4, 8):
        raise f.error(f"must be 4 or 8, got {pointer}", "pointer_bytes")
    base = int(f.number("code_base_kb", 0, maximum=1e6) * 1024)
    code = f.sub("code_kb", {})
    sizes = tuple(sorted((str(op), int(code.number(op, minimum=0, maximum=1e6) * 1024)) for op in list(code.data)))
    source = f.str("source")
    f.reject_unknown()
    return Runtime(runtime_name, kernels, pointer, base, sizes, source)


# Struct sizes of TFLM's persistent section, in pointer-sized words (``sizeof`` on the 64-bit host
# build / 8, checked against the RecordingMicroAllocator's per-category record; a 32-bit Cortex-M
# build has the same words at 4 bytes).
EVAL_TENSOR_WORDS = 3        # TfLiteEvalTensor {data, dims, type}
NODE_WORDS = 8               # NodeAndRegistration {TfLiteNode (6 pointers + size + delegate), registration}
# 2 persistent TfLiteTensor (input, output) + their quantisation records: measured on the host build;
# the 32-bit figure scales the struct's pointers (modeled, not measured)
IO_TENSOR_BYTES = {8: 128 + 64, 4: 96 + 48}
# Per-operator persistent bytes beyond the per-channel arrays: the kernel's op data (16-byte aligned)
# plus its builtin option struct. Least-squares fit (bytes, rounded) of the host build's recorded tail
# over 16 exported graphs of the three shipped spaces (residual <= 16 bytes per graph: TFLM aligns each
# allocation's address, so the padding depends on the allocation order, which is not modeled); every
# such graph has one FULLY_CONNECTED and one MEAN, whose share is split evenly from the fixed part.
# On a 32-bit build these are modeled as the same (most op-data fields are int32).
OP_PERSISTENT_BYTES = {"CONV_2D": 115, "DEPTHWISE_CONV_2D": 101, "ADD": 66, "PAD": 55, "MAX_POOL_2D": 70,
                       "AVERAGE_POOL_2D": 70, "QUANTIZE": 17, "TRANSPOSE": 7, "RESHAPE": 7,
                       "FULLY_CONNECTED": 100, "MEAN": 100}
ALLOCATOR_FIXED_BYTES = 470  # allocator, planner and interpreter objects (same fit)


class Arena(NamedTuple):
    """TFLM arena parts (bytes): planned activations + kernel scratch (head), persistent (tail)."""

    activations: int
    scratch: int
    persistent: int

    @property
    def total(self) -> int:
        return self.activations + self.scratch + self.persistent


def scratch_requests(op: TOp, runtime: Runtime) -> tuple[int, ...]:
    """Kernel scratch buffers (bytes) the runtime's kernel for ``op`` requests in Prepare."""
    if runtime.kernels != "cmsis-nn":
        return op.scratch
    if op.code == "MEAN":
        return op.scratch
    if not op.geometry:
        return ()
    kh, kw, cin, cout, stride, _ = op.geometry
    # CMSIS-NN (github.com/ARM-software/CMSIS-NN, Source/ConvolutionFunctions/arm_*_get_buffer_sizes_s8.c),
    # DSP build (Cortex-M4/M7) compiled with GCC: the buffers TFLM's CMSIS-NN kernels request in Prepare
    if op.code == "CONV_2D":
        if kh == kw == 1:  # arm_convolve_1x1_s8_fast (no padding): none with GCC
            return ()
        return (2 * align(kh * kw * cin, 4) * 2,)  # arm_convolve_s8 im2col: 2 columns of int16
    if op.code == "DEPTHWISE_CONV_2D" and cin == cout:  # channel multiplier 1
        if kh == kw == 3:  # arm_depthwise_conv_3x3_s8 (padding <= 1 in every exported graph)
            return ()
        return (cin * kh * kw * 2,)  # arm_depthwise_conv_s8_opt
    return ()


def arena(g: Graph, runtime: Runtime = HOST_TFLM) -> Arena:
    """The TFLM arena ``g`` needs on ``runtime``, in parts."""
    spans = lifetimes(g)
    buffers = [(align(n), *spans[t]) for t, n in enumerate(g.tensors) if n and spans[t][0] >= 0]
    activations = greedy_plan(buffers)
    scratch_bufs = []
    for step, op in enumerate(g.ops, start=1):
        requests = scratch_requests(op, runtime) if g.width == 1 else op.scratch  # float: reference kernels
        scratch_bufs += [(align(n), step, step) for n in requests if n]
    head = greedy_plan(buffers + scratch_bufs) if scratch_bufs else activations
    return Arena(activations, head - activations, persistent(g, runtime, len(scratch_bufs)))


def persistent(g: Graph, runtime: Runtime, n_scratch: int = 0) -> int:
    """TFLM's persistent (tail) bytes for ``g``."""
    ptr = runtime.pointer_bytes
    n_tensors = len(g.tensors) + len(constants(g))
    total = align(EVAL_TENSOR_WORDS * ptr * n_tensors) + align(NODE_WORDS * ptr * len(g.ops))
    total += IO_TENSOR_BYTES.get(ptr, IO_TENSOR_BYTES[8]) + ALLOCATOR_FIXED_BYTES
    if n_scratch:
        total += align(n_scratch * ptr)
    for op in g.ops:
        total += OP_PERSISTENT_BYTES.get(op.code, 64)
        if op.channels:
            total += 2 * align(4 * op.channels)  # per-channel output multiplier and shift
    return total


# ---------------------------------------------------------------- the .tflite file

# The file beyond the constant data: flatbuffer tables per tensor/operator and the tensors' names.
# litert-torch names a tensor after the module path that produced it
# ("litert_torch…ChannelLastIOWrapper/workbench.model.builder.OpNet_wrapped/workbench.model.builder.OpModule_3/
# torch.nn.modules.container.Sequential_body/torch.nn.modules.conv.Conv2d_0;"), joined with ';' when the
# converter fuses ops, so name lengths go by the tensor's role. NAME_CHARS: characters per role, read
# from litert-torch 0.10.0 exports of the shipped spaces (a ReLU6 convolution output is 400 or 603
# characters depending on which quantisation nodes were merged into it: the mean is used).
# TABLE_BYTES: least-squares fit of the remaining bytes on 6 exports (residual <= 12 bytes per file).
NAME_CHARS = {
    "input": 22, "output": 31, "operand": 15, "operand/mean": 211, "operand/reshape": 197, "operand/input": 62,
    "conv_weights": 198, "conv_bias": 197, "fc_weights": 114, "fc_bias": 159,
    "CONV_2D": 468, "DEPTHWISE_CONV_2D": 538, "CONV_2D/linear": 198, "DEPTHWISE_CONV_2D/linear": 198,
    "PAD": 198, "ADD": 123, "MEAN": 212, "FULLY_CONNECTED": 31, "MAX_POOL_2D": 164, "AVERAGE_POOL_2D": 164,
    "QUANTIZE": 163, "RESHAPE": 198, "TRANSPOSE/input": 63, "TRANSPOSE/reshape": 198, "TRANSPOSE/conv": 401,
    "TRANSPOSE/pool": 164, "TRANSPOSE": 198,
}
NAME_CHARS_OTHER = 300  # a role no export has shown yet
TABLE_BYTES = {"fixed": 655, "per_tensor": 57, "per_op": 6, "per_quantized_tensor": 10}


def file_features(g: Graph) -> tuple[int, dict[str, int]]:
    """(bytes computed exactly, tensor count per name role) of the file for ``g``."""
    consts = constants(g)
    exact = sum(align(c.data_bytes + 4) + 12 * c.channels + 4 + 4 * c.rank for c in consts)
    act_quant = 12 if g.width == 1 else 0  # int8 activations: one scale + one zero point
    exact += sum(act_quant + 4 + 4 * r for r in g.ranks)
    exact += sum(8 + 4 * (len(op.inputs) + len(op.consts) + 1) for op in g.ops)
    counts: dict[str, int] = {"input": 1}
    for op in g.ops[:-1]:
        counts[op.role] = counts.get(op.role, 0) + 1
    counts["output"] = 1 if g.ops else 0
    for c in consts:
        counts[c.role] = counts.get(c.role, 0) + 1
    return exact, counts


def file_bytes(g: Graph) -> int:
    """Predicted size of the ``.tflite`` file for ``g``."""
    exact, counts = file_features(g)
    t = TABLE_BYTES
    n_tensors = sum(counts.values())
    n_quantized = len(g.tensors) + sum(1 for c in constants(g) if c.channels) if g.width == 1 else 0
    names = sum(n * align(NAME_CHARS.get(role, NAME_CHARS_OTHER) + 5, 4) for role, n in counts.items())
    return (t["fixed"] + exact + names + t["per_tensor"] * n_tensors + t["per_op"] * len(g.ops)
            + t["per_quantized_tensor"] * n_quantized)


def code_bytes(g: Graph, runtime: Runtime) -> int:
    """Runtime code for the operators ``g`` uses (each kernel once) plus the interpreter's base."""
    if not runtime.code_bytes:
        return 0
    used = {op.code for op in g.ops}
    return runtime.code_base_bytes + sum(n for code, n in runtime.code_bytes if code in used)


# ---------------------------------------------------------------- per architecture

class MemoryEstimate(NamedTuple):
    arena: Arena
    file_bytes: int
    code_bytes: int

    @property
    def sram_bytes(self) -> int:
        return self.arena.total

    @property
    def flash_bytes(self) -> int:
        return self.file_bytes + self.code_bytes

    def cost_fields(self, tag: str) -> tuple:
        """(peak SRAM, flash, parts...) in :class:`workbench.hardware.cost.CostEstimate`'s field order."""
        a = self.arena
        return (a.total, self.flash_bytes, a.activations, a.scratch, a.persistent, self.file_bytes, self.code_bytes,
                tag)




def estimate_int8_export(arch, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of the full-INT8 ``.tflite`` of ``arch`` whatever its policy (``tflite-int8``
    quantises an fp32 trial too): what the export check compares with TFLM."""
    g = lower(arch.ops, arch.input_shape, width=1)
    return MemoryEstimate(arena(g, runtime), file_bytes(g), code_bytes(g, runtime))


def estimate_memory(arch, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of ``arch``'s export on ``runtime``, memoised per architecture (its segments are
    shared objects, so the key is cheap) and runtime: the search's hot path pays the planner once."""
    def compute() -> MemoryEstimate:
        g = lower(arch.ops, arch.input_shape)
        return MemoryEstimate(arena(g, runtime), file_bytes(g), code_bytes(g, runtime))

    return runtime.memo.get((arch.segments, arch.input_shape), compute)
# ---------------------------------------------------------------- reading a written file back

def _schema():
    from tflite_micro.tensorflow.lite.micro.python import (# optional: tflite_micro (the export extra)
        schema_py_generated as schema,
    )

    return schema


def graph_of_file(path) -> Graph:
    """The :class:`Graph` of a written ``.tflite`` (needs the ``tflite-micro`` package): what the
    model above predicts, read from the file, so the two can be compared operator by operator."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    g = Graph()
    ids: dict[int, int] = {}

    def tensor_bytes(t) -> int:
        width = {9: 1, 2: 4, 0: 4, 3: 1, 7: 2}.get(t.Type(), 4)
        return width * prod(t.ShapeAsNumpy()) if t.ShapeLength() else width

    def act(index: int) -> int:
        if index not in ids:
            t = sub.Tensors(index)
            ids[index] = g.tensor(tensor_bytes(t), t.ShapeLength())
        return ids[index]

    for i in range(sub.InputsLength()):
        act(int(sub.Inputs(i)))
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
        inputs, consts, channels = [], [], 0
        for t_index in op.InputsAsNumpy():
            if t_index < 0:
                continue
            t = sub.Tensors(int(t_index))
            if model.Buffers(t.Buffer()).DataLength():
                q = t.Quantization()
                n_ch = q.ScaleLength() if q is not None and q.ScaleLength() > 1 else 0
                role = "weights" if t.Type() == 9 else ("bias" if n_ch else "operand")
                consts.append(Const(role, tensor_bytes(t), t.ShapeLength(), n_ch, ("file", int(t_index))))
                channels = max(channels, n_ch)
            else:
                inputs.append(act(int(t_index)))
        out_t = sub.Tensors(int(op.Outputs(0)))
        out = act(int(op.Outputs(0)))
        g.ops.append(TOp(code, tuple(inputs), out, tuple(consts), channels, out_t.ShapeLength()))
    return g
