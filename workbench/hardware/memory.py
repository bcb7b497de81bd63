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

Everything is pure arithmetic over the whole lowered graph: the reference. A search scores new
architectures with :mod:`workbench.hardware.memory_pieces`, which composes the same numbers, to the byte,
from memoised per-segment pieces. ``benchmarks/bench_memory.py`` compares it with TFLM on exported files.
"""
from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from workbench._infra.memo import HotMemo
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
    """Arena bytes TFLM's ``GreedyMemoryPlanner`` needs for ``(size, first, last)`` buffers."""
    return max((offset + buf[0] for offset, buf in zip(place(buffers), buffers)), default=0)


def placement_order(buffers) -> list[int]:
    """The order TFLM's ``GreedyMemoryPlanner`` places buffers in: size descending, ties later buffer first
    (its bubble sort over the reversed list is stable)."""
    return sorted(range(len(buffers)), key=lambda i: (-buffers[i][0], -i))


def place(buffers, pinned: dict[int, int] | None = None) -> list[int]:
    """The offset of each ``(size, first, last)`` buffer as TFLM's ``GreedyMemoryPlanner`` lays them out:
    in :func:`placement_order`, each at the first gap among the placed buffers that overlap it in time,
    walked by offset (:func:`first_gap`; like TFLM, the placed buffers are kept sorted by offset and the
    others skipped). ``pinned`` (buffer index → offset) fixes some offsets while they still take their
    turn: a segment's share of a whole graph's plan, given where its boundary tensors went
    (:mod:`workbench.hardware.memory_pieces`)."""
    offsets = [0] * len(buffers)
    place_in_turn(buffers, placement_order(buffers), [], offsets, pinned)
    return offsets


def place_in_turn(buffers, order, placed: list, offsets: list[int], pinned: dict[int, int] | None = None) -> None:
    """:func:`place`'s loop from any point: the buffers of ``order`` in turn, among ``placed`` (``(offset, end,
    first, last)`` of those placed before, sorted; extended) and their ``offsets`` (filled in). A plan whose
    first buffers never change places them once and goes on from there for each variant."""
    for i in order:
        size, first, last = buffers[i]
        if pinned and i in pinned:
            offset = pinned[i]
        else:
            offset = first_gap([(p[0], p[1]) for p in placed if p[2] <= last and first <= p[3]], size)
        offsets[i] = offset
        insort(placed, (offset, offset + size, first, last))


def first_gap(intervals, size: int) -> int:
    """The lowest offset where ``size`` bytes fit among ``(offset, end)`` intervals sorted by offset: TFLM walks
    its offset-sorted list of the buffers alive at the same time (which of two equal offsets comes first
    cannot matter: they never overlap) and takes the first gap that fits, else the end of the last one."""
    offset = 0
    for p_off, p_end in intervals:
        if p_off - offset >= size:
            break
        if p_end > offset:
            offset = p_end
    return offset


# ---------------------------------------------------------------- runtime description

# Segment pieces (workbench.hardware.memory_pieces) a runtime remembers, the older half dropped when full:
# the families keep 8,192 segments per memoised function (a segment they drop comes back as a new object,
# so its old piece is never asked again), and 20,000 random architectures of a shipped space hold < 4,000
# (vision). A piece with its memoised plans is ~6 KB, so a full memo is ~50 MB per runtime.
MEMO_SIZE = 8192


@dataclass(frozen=True)
class Runtime:
    """What the arena model needs to know about the runtime build (``memory:`` in a profile)."""

    name: str = "TFLite Micro, reference kernels, 64-bit host"
    kernels: str = "reference"   # "reference" | "cmsis-nn"
    pointer_bytes: int = 8
    code_base_bytes: int = 0
    code_bytes: tuple[tuple[str, int], ...] = ()  # (TFLite operator, kernel code bytes)
    source: str = ""
    # segment in context → its memoised memory piece, and operator set → code bytes, owned by this runtime
    # (bounded: see MEMO_SIZE)
    memo: HotMemo = field(default_factory=lambda: HotMemo(MEMO_SIZE), compare=False, hash=False, repr=False)

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
    buffers = activation_buffers(g)
    activations = greedy_plan(buffers)
    scratch = scratch_buffers(g, runtime)
    head = greedy_plan(buffers + scratch) if scratch else activations
    return Arena(activations, head - activations, persistent(g, runtime, len(scratch)))


def activation_buffers(g: Graph) -> list[tuple[int, int, int]]:
    """``(size, first, last)`` of every activation tensor the planner places: sizes rounded up to the arena
    alignment, lifetimes as TFLM marks them (:func:`lifetimes`); empty tensors take no space."""
    spans = lifetimes(g)
    return [(align(n), *spans[t]) for t, n in enumerate(g.tensors) if n and spans[t][0] >= 0]


def scratch_buffers(g: Graph, runtime: Runtime) -> list[tuple[int, int, int]]:
    """``(size, step, step)`` of the kernel scratch requests, planned with the activations (after them in
    TFLM's request order): alive during their operator's step only."""
    buffers = []
    for step, op in enumerate(g.ops, start=1):
        requests = scratch_requests(op, runtime) if g.width == 1 else op.scratch  # float: reference kernels
        buffers += [(align(n), step, step) for n in requests if n]
    return buffers


def persistent(g: Graph, runtime: Runtime, n_scratch: int = 0) -> int:
    """TFLM's persistent (tail) bytes for ``g``."""
    op_bytes = sum(op_persistent_bytes(op) for op in g.ops)
    return persistent_bytes(runtime, len(g.tensors) + len(constants(g)), len(g.ops), n_scratch, op_bytes)


def persistent_bytes(runtime: Runtime, n_tensors: int, n_ops: int, n_scratch: int, op_bytes: int) -> int:
    """TFLM's persistent bytes from the graph's counts and its operators' :func:`op_persistent_bytes`."""
    ptr = runtime.pointer_bytes
    total = align(EVAL_TENSOR_WORDS * ptr * n_tensors) + align(NODE_WORDS * ptr * n_ops)
    total += IO_TENSOR_BYTES.get(ptr, IO_TENSOR_BYTES[8]) + ALLOCATOR_FIXED_BYTES + op_bytes
    if n_scratch:
        total += align(n_scratch * ptr)
    return total


def op_persistent_bytes(op: TOp) -> int:
    """One operator's kernel op data plus its per-channel output multiplier and shift arrays."""
    return OP_PERSISTENT_BYTES.get(op.code, 64) + (2 * align(4 * op.channels) if op.channels else 0)


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


def file_bytes(g: Graph) -> int:
    """Predicted size of the ``.tflite`` file for ``g``: a sum of per-operator, per-tensor and per-constant
    parts (:func:`op_file_bytes`, :func:`tensor_file_bytes`, :func:`const_file_bytes`) and the graph's own
    (:func:`graph_file_bytes`), so a segment's share can be summed once and reused."""
    quantized = g.width == 1
    return (graph_file_bytes(g.ops[-1].role if g.ops else None) + sum(op_file_bytes(op) for op in g.ops)
            + sum(tensor_file_bytes(r, quantized) for r in g.ranks)
            + sum(const_file_bytes(c, quantized) for c in constants(g)))


def name_bytes(role: str) -> int:
    """A tensor's name in the file (with its length prefix and terminator, 4-byte aligned), by its role."""
    return align(NAME_CHARS.get(role, NAME_CHARS_OTHER) + 5, 4)


def graph_file_bytes(last_role: str | None) -> int:
    """The file's fixed part, its input tensor's table entry and name, and the output's name, which replaces
    the last operator's (``last_role``; None: a graph without operators)."""
    own = TABLE_BYTES["fixed"] + TABLE_BYTES["per_tensor"] + name_bytes("input")
    return own if last_role is None else own + name_bytes("output") - name_bytes(last_role)


def op_file_bytes(op: TOp) -> int:
    """An operator's table entry, plus the table entry and name of the tensor it writes."""
    return (8 + 4 * (len(op.inputs) + len(op.consts) + 1) + TABLE_BYTES["per_op"] + TABLE_BYTES["per_tensor"]
            + name_bytes(op.role))


def tensor_file_bytes(rank: int, quantized: bool) -> int:
    """An activation tensor's shape and, in an int8 graph, its quantisation (one scale + one zero point)."""
    return 4 + 4 * rank + (12 + TABLE_BYTES["per_quantized_tensor"] if quantized else 0)


def const_file_bytes(c: Const, quantized: bool) -> int:
    """A constant: its buffer (with its length, 16-byte aligned), per-channel quantisation (float32 scale +
    int64 zero point per channel), shape, table entry and name."""
    q = TABLE_BYTES["per_quantized_tensor"] if quantized and c.channels else 0
    return (align(c.data_bytes + 4) + 12 * c.channels + 4 + 4 * c.rank + TABLE_BYTES["per_tensor"]
            + name_bytes(c.role) + q)


def code_bytes(g: Graph, runtime: Runtime) -> int:
    """Runtime code for the operators ``g`` uses (each kernel once) plus the interpreter's base."""
    return kernel_code_bytes({op.code for op in g.ops}, runtime)


def kernel_code_bytes(codes, runtime: Runtime) -> int:
    """Runtime code for the operator kinds ``codes`` plus the interpreter's base (none on a runtime without
    code sizes: the host's library is installed)."""
    if not runtime.code_bytes:
        return 0
    return runtime.code_base_bytes + sum(n for code, n in runtime.code_bytes if code in codes)


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


def graph_memory(g: Graph, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of the whole graph ``g`` on ``runtime``: the reference that
    :func:`workbench.hardware.memory_pieces.estimate_memory` composes per segment, to the byte."""
    return MemoryEstimate(arena(g, runtime), file_bytes(g), code_bytes(g, runtime))


def estimate_int8_export(arch, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of the full-INT8 ``.tflite`` of ``arch`` whatever its policy (``tflite-int8``
    quantises an fp32 trial too): what the export check compares with TFLM."""
    return graph_memory(lower(arch.ops, arch.input_shape, width=1), runtime)


def reference_memory(arch, runtime: Runtime = HOST_TFLM) -> MemoryEstimate:
    """Arena and flash of ``arch``'s export on ``runtime``, from its whole lowered graph, nothing memoised
    but the op fragments: what the composed estimate must equal (tests, ``benchmarks/bench_scoring.py``)."""
    return graph_memory(lower(arch.ops, arch.input_shape), runtime)


# ---------------------------------------------------------------- reading a written file back

def _schema():
    from tflite_micro.tensorflow.lite.micro.python import (  # optional: tflite_micro (the export extra)
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
