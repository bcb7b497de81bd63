"""Peak SRAM and flash as TensorFlow Lite Micro sees them: the deployed graph, planned like TFLM plans it.

Why a graph and not a layer rule: the full-INT8 ``.tflite`` that ``workbench export`` writes is not the
fused-op list. The converter inserts a ``PAD`` before every strided convolution (PyTorch pads
symmetrically, TFLite ``SAME`` does not), turns a 1-input-channel convolution into a
``DEPTHWISE_CONV_2D``, wraps 1-D networks in ``TRANSPOSE``/``RESHAPE``/``QUANTIZE`` plumbing, and
TFLM's greedy planner places tensors by size, not in the tidy in+out order. So each op kind is
*lowered* to the TFLite operators the exporter really emits (each kind's :meth:`OpSpec.tflite
<workbench.ops.OpSpec.tflite>` calls the ``lower_*`` helpers here), with every tensor's shape, and then

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
from functools import lru_cache
from typing import NamedTuple

from .memo import BoundedMemo

ALIGN = 16  # TFLM's MicroArenaBufferAlignment()


def align(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


class Const(NamedTuple):
    """A constant tensor of the file: what it stores and how it is quantised."""

    role: str          # "conv_weights", "fc_bias", "operand", ...: what it is, for its name in the file
    data_bytes: int
    rank: int
    channels: int = 0  # per-channel quantisation entries (0: not quantised)
    key: tuple | None = None  # operands with equal keys are one shared tensor in the file


class TOp(NamedTuple):
    """One TFLite operator as the exporter emits it."""

    code: str                 # builtin name, e.g. "CONV_2D"
    inputs: tuple[int, ...]   # activation tensor ids read
    output: int               # activation tensor id written
    consts: tuple[Const, ...]
    channels: int = 0         # per-channel requantised outputs (conv, depthwise, fc)
    out_rank: int = 4
    scratch: tuple[int, ...] = ()  # reference-kernel scratch requests (bytes)
    geometry: tuple = ()      # (kernel_h, kernel_w, cin, stride, ...) for runtime-specific scratch
    role: str = ""            # what the output tensor is, for its name in the file (e.g. "CONV_2D/linear")


@dataclass
class Graph:
    """The deployed graph: activation tensor sizes (bytes) and the operator list.

    ``width`` is the element size of activations and weights: 1 for the full-INT8 export (int32
    biases, per-channel quantisation), 4 for a float32 graph (float biases, no quantisation)."""

    tensors: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    ops: list[TOp] = field(default_factory=list)
    width: int = 1

    def tensor(self, nbytes: int, rank: int) -> int:
        self.tensors.append(nbytes)
        self.ranks.append(rank)
        return len(self.tensors) - 1

    def weights(self, elems: int, rank: int, channels: int, kind: str = "conv") -> tuple[Const, Const]:
        """A weight tensor and its bias, quantised per output channel in an int8 graph."""
        per_channel = channels if self.width == 1 else 0
        return (Const(f"{kind}_weights", elems * self.width, rank, per_channel),
                Const(f"{kind}_bias", 4 * channels, 1, per_channel))

    def add(self, code: str, inputs, out_elems: int, out_rank: int = 4, consts=(), channels=0, scratch=(),
            geometry=(), role: str = "") -> int:
        out = self.tensor(out_elems * self.width, out_rank)
        self.ops.append(TOp(code, tuple(inputs), out, tuple(consts), channels, out_rank, tuple(scratch),
                            tuple(geometry), role or code))
        return out


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _operand(values: tuple, rank: int = 1, role: str = "operand") -> Const:
    """An int32 operand (padding, permutation, axes, shape); the converter stores equal ones once."""
    n = len(values) * (len(values[0]) if rank == 2 else 1)
    return Const(role, 4 * n, rank, 0, (rank, values))


def constants(g: "Graph") -> list[Const]:
    """The file's constant tensors: every weight/bias, and each distinct operand once."""
    seen, out = set(), []
    for op in g.ops:
        for c in op.consts:
            if c.key is not None:
                if c.key in seen:
                    continue
                seen.add(c.key)
            out.append(c)
    return out


_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _conv(g: Graph, x: int, cin: int, hw_in: tuple[int, int], cout: int, kernel: tuple[int, int],
          stride: tuple[int, int], depthwise: bool, padded: bool = True, act: bool = True) -> tuple[int, tuple[int, int]]:
    """[PAD] + CONV_2D / DEPTHWISE_CONV_2D; a 1-input-channel conv becomes depthwise.

    PyTorch pads ``kernel // 2`` on both sides (odd kernels); where TFLite's ``SAME`` would pad
    differently (a stride-2 convolution of an even size: SAME puts the one extra row at the end only),
    the converter writes an explicit PAD and a ``VALID`` convolution; where they agree, SAME."""
    h, w = hw_in
    (kh, kw), (sh, sw) = kernel, stride
    pads = (_same_pads(h, kh, sh), _same_pads(w, kw, sw)) if padded else ((0, 0), (0, 0))
    tf_same = (_tf_same_pads(h, kh, sh), _tf_same_pads(w, kw, sw))
    if padded and pads != tf_same:
        h, w = h + sum(pads[0]), w + sum(pads[1])
        x = g.add("PAD", [x], h * w * cin, consts=[_operand(((0, 0), pads[0], pads[1], (0, 0)), 2)])
        pads = ((0, 0), (0, 0))
    ho, wo = (h + sum(pads[0]) - kh) // sh + 1, (w + sum(pads[1]) - kw) // sw + 1
    dw = depthwise or cin == 1
    code = "DEPTHWISE_CONV_2D" if dw else "CONV_2D"
    weights = kh * kw * cout * (1 if dw else cin)
    y = g.add(code, [x], ho * wo * cout, consts=g.weights(weights, 4, cout),
              channels=cout, geometry=(kh, kw, cin, cout, max(sh, sw), ho * wo), role=code + ("" if act else "/linear"))
    return y, (ho, wo)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of a 'same' convolution: kernel//2 each side for odd kernels (PyTorch),
    TensorFlow's split of the total (extra at the end) for even ones."""
    if kernel % 2:
        return kernel // 2, kernel // 2
    return _tf_same_pads(size, kernel, stride)


def _tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding: total = max((ceil(size / stride) - 1) * stride + kernel - size, 0), the odd
    one at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window(op) -> tuple[tuple[int, int], tuple[int, int]]:
    """((kh, kw), (sh, sw)) of an op; 1-D ops run as 2-D with height 1."""
    kh, kw = getattr(op, "kh", op.kernel), getattr(op, "kw", op.kernel)
    sh, sw = getattr(op, "sh", op.stride), getattr(op, "sw", op.stride)
    if len(op.in_shape) == 2:
        return (1, kh), (1, sh)
    return (kh, kw), (sh, sw)


def _hw(shape) -> tuple[int, int]:
    return (shape[1], shape[2]) if len(shape) == 3 else (1, shape[1])


def lower_conv(g: Graph, x: int, op) -> int:
    kernel, stride = _window(op)
    return _conv(g, x, op.in_shape[0], _hw(op.in_shape), op.out_shape[0], kernel, stride, False)[0]


def lower_mbconv(g: Graph, x: int, op) -> int:
    cin, cout, hid = op.in_shape[0], op.out_shape[0], op.hidden
    hw = _hw(op.in_shape)
    y = x
    if hid != cin:
        y, _ = _conv(g, y, cin, hw, hid, (1, 1), (1, 1), False)
    y, hw = _conv(g, y, hid, hw, hid, *_window(op), True)
    y, hw = _conv(g, y, hid, hw, cout, (1, 1), (1, 1), False, act=False)
    if op.skip:
        y = g.add("ADD", [x, y], _prod(op.out_shape))
    return y


def lower_dsconv2d(g: Graph, x: int, op) -> int:
    cin, cout = op.in_shape[0], op.out_shape[0]
    y, hw = _conv(g, x, cin, _hw(op.in_shape), cin, *_window(op), True)
    return _conv(g, y, cin, hw, cout, (1, 1), (1, 1), False)[0]


def lower_resblock(g: Graph, x: int, op) -> int:
    """Main branch conv (stride) → conv, shortcut identity or 1x1 conv (stride), ADD with fused ReLU.
    Modeled after the PyTorch module's order; not yet checked against an export."""
    cin, cout = op.in_shape[0], op.out_shape[0]
    kernel, stride = _window(op)
    y, hw = _conv(g, x, cin, _hw(op.in_shape), cout, kernel, stride, False)
    y, hw = _conv(g, y, cout, hw, cout, kernel, (1, 1), False, act=False)
    s = x if op.skip else _conv(g, x, cin, _hw(op.in_shape), cout, (1, 1), stride, False, padded=False, act=False)[0]
    return g.add("ADD", [y, s], _prod(op.out_shape))


def lower_pool2d(g: Graph, x: int, op) -> int:
    code = "MAX_POOL_2D" if op.kind.startswith("max") else "AVERAGE_POOL_2D"
    return g.add(code, [x], _prod(op.out_shape))


def lower_flatten(g: Graph, x: int, op) -> int:
    """PyTorch flattens channel-first: a channel-last tensor with spatial extent is transposed first."""
    n = _prod(op.in_shape)
    if n != op.in_shape[0]:
        x = g.add("TRANSPOSE", [x], n, consts=[_operand(_TO_NCHW if len(op.in_shape) == 3 else (0, 2, 1))])
    return g.add("RESHAPE", [x], n, out_rank=2, consts=[_operand((1, n))])


def lower_pool1d(g: Graph, x: int, op, followed_by_conv: bool = False) -> int:
    """In an int8 graph, a pool that feeds another convolution is requantised by the converter between
    two TRANSPOSEs."""
    n_in = _prod(op.in_shape)
    if followed_by_conv and g.width == 1:  # (a float graph has neither)
        x = g.add("TRANSPOSE", [x], n_in, consts=[_operand(_TO_NCHW)], role="TRANSPOSE/conv")
        x = g.add("QUANTIZE", [x], n_in)
        x = g.add("TRANSPOSE", [x], n_in, consts=[_operand(_TO_NHWC)], role="TRANSPOSE/pool")
    code = "MAX_POOL_2D" if op.kind == "maxpool1d" else "AVERAGE_POOL_2D"
    return g.add(code, [x], _prod(op.out_shape))


def lower_gap(g: Graph, x: int, op) -> int:
    """MEAN over the spatial axes; 1-D inputs are transposed back to channel-first first."""
    c = op.in_shape[0]
    if len(op.in_shape) == 2:
        x = g.add("TRANSPOSE", [x], _prod(op.in_shape), consts=[_operand(_TO_NCHW)], role="TRANSPOSE/conv")
        axes = (2, 3)
    else:
        axes = (1, 2)
    return g.add("MEAN", [x], c, out_rank=2, consts=[_operand(axes, role="operand/mean")], scratch=((4 * c,) if g.width == 1 else ()) + (4 * 4, 4 * len(axes)))


def lower_linear(g: Graph, x: int, op) -> int:
    cin, cout = op.in_shape[0], op.out_shape[0]
    return g.add("FULLY_CONNECTED", [x], cout, out_rank=2,
                 consts=g.weights(cin * cout, 2, cout, "fc"), channels=cout)


def graph_inputs(g: Graph, in_shape) -> int:
    """The graph's input tensor, plus the channel-last → 2-D plumbing the converter adds for 1-D inputs."""
    n = _prod(in_shape) * g.width
    if len(in_shape) != 2:  # images (NHWC) and vectors go in as they are
        return g.tensor(n, len(in_shape) + 1)
    x = g.tensor(n, 3)
    c, t = in_shape
    n = _prod(in_shape)
    x = g.add("TRANSPOSE", [x], n, out_rank=3, consts=[_operand((0, 2, 1), role="operand/input")],
              role="TRANSPOSE/input")
    x = g.add("RESHAPE", [x], n, consts=[_operand((1, c, 1, t), role="operand/reshape")])
    return g.add("TRANSPOSE", [x], n, consts=[_operand(_TO_NHWC)], role="TRANSPOSE/reshape")


def lower(ops, input_shape, width: int | None = None) -> Graph:
    """The TFLite graph the exporter writes for ``ops`` (an architecture's fused ops): full-INT8 when
    every op has 8-bit activations (or ``width=1``: the tflite-int8 export of any policy), else float32.

    Each op's operators are lowered once (:func:`_fragment`, memoised) and spliced in: a new
    architecture mostly reuses fragments of ops seen before."""
    g = Graph(width=width or (1 if all(op.abits == 8 for op in ops) else 4))
    x = graph_inputs(g, input_shape)
    for i, op in enumerate(ops):
        feeds_conv = i + 1 < len(ops) and ops[i + 1].kind in ("conv1d", "conv2d")
        tensors, ranks, frag_ops, out = _fragment(op, feeds_conv, g.width)
        base = len(g.tensors) - 1  # fragment tensor k >= 1 becomes base + k; 0 is the op's input x
        g.tensors.extend(tensors)
        g.ranks.extend(ranks)
        for top in frag_ops:
            g.ops.append(top._replace(inputs=tuple(x if t == 0 else base + t for t in top.inputs),
                                      output=base + top.output))
        x = x if out == 0 else base + out
    return g


@lru_cache(maxsize=1 << 16)
def _fragment(op, feeds_conv: bool, width: int) -> tuple:
    """(tensor sizes, ranks, operators, output id) of one op lowered on its own; tensor 0
    stands for the op's input.

    Memoised for 65,536 (op, feeds_conv, width) keys: the shipped spaces produce < 3,000 distinct ops
    per precision (``workbench model-lut`` enumerates them), so every fragment of a search stays, while a
    long-running notebook scoring ever new model files cannot grow it without limit (a fragment is a few
    small tuples)."""
    f = Graph(width=width)
    f.tensor(0, 0)
    out = op.spec.tflite(f, 0, op, feeds_conv)
    return tuple(f.tensors[1:]), tuple(f.ranks[1:]), tuple(f.ops), out


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
# search's scoring asks only when its CostEstimator (workbench.cost), which keeps the resulting fields per
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
    """The ``memory:`` section of a profile (a :class:`workbench.yamlio.Fields`) → :class:`Runtime`."""
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
# ("litert_torch…ChannelLastIOWrapper/workbench.builder.OpNet_wrapped/workbench.builder.OpModule_3/
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
        """(peak SRAM, flash, parts...) in :class:`workbench.cost.CostEstimate`'s field order."""
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
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def graph_of_file(path) -> Graph:
    """The :class:`Graph` of a written ``.tflite`` (needs the ``tflite-micro`` package): what the
    model above predicts, read from the file, so the two can be compared operator by operator."""
    from pathlib import Path

    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    g = Graph()
    ids: dict[int, int] = {}

    def tensor_bytes(t) -> int:
        width = {9: 1, 2: 4, 0: 4, 3: 1, 7: 2}.get(t.Type(), 4)
        return width * _prod(t.ShapeAsNumpy()) if t.ShapeLength() else width

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
