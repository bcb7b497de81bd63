"""The deployed TFLite graph of an architecture: the operators and tensors the exporter writes for each fused op.

Each op kind's :class:`~workbench.model.ops.OpSpec` lowers itself with the helpers below
(``spec.tflite``); :func:`lower` splices the memoised per-op fragments into one :class:`Graph`. What the
graph *costs* — TFLM's memory planner, the file's bytes, the runtime's code — is
:mod:`workbench.hardware.memory`, one floor up. Pure arithmetic: no torch, no file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from workbench.model.geometry import same_pads, tf_same_pads

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


def prod(shape) -> int:
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
    pads = (same_pads(h, kh, sh), same_pads(w, kw, sw)) if padded else ((0, 0), (0, 0))
    tf_same = (tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw))
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
        y = g.add("ADD", [x, y], prod(op.out_shape))
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
    return g.add("ADD", [y, s], prod(op.out_shape))


def lower_pool2d(g: Graph, x: int, op, code: str) -> int:
    """``code``: the pooling's operator (its spec's, MAX_POOL_2D or AVERAGE_POOL_2D)."""
    return g.add(code, [x], prod(op.out_shape))


def lower_flatten(g: Graph, x: int, op) -> int:
    """PyTorch flattens channel-first: a channel-last tensor with spatial extent is transposed first."""
    n = prod(op.in_shape)
    if n != op.in_shape[0]:
        x = g.add("TRANSPOSE", [x], n, consts=[_operand(_TO_NCHW if len(op.in_shape) == 3 else (0, 2, 1))])
    return g.add("RESHAPE", [x], n, out_rank=2, consts=[_operand((1, n))])


def lower_pool1d(g: Graph, x: int, op, code: str, followed_by_conv: bool = False) -> int:
    """In an int8 graph, a pool that feeds another convolution is requantised by the converter between
    two TRANSPOSEs. ``code``: the pooling's operator (its spec's)."""
    n_in = prod(op.in_shape)
    if followed_by_conv and g.width == 1:  # (a float graph has neither)
        x = g.add("TRANSPOSE", [x], n_in, consts=[_operand(_TO_NCHW)], role="TRANSPOSE/conv")
        x = g.add("QUANTIZE", [x], n_in)
        x = g.add("TRANSPOSE", [x], n_in, consts=[_operand(_TO_NHWC)], role="TRANSPOSE/pool")
    return g.add(code, [x], prod(op.out_shape))


def lower_gap(g: Graph, x: int, op) -> int:
    """MEAN over the spatial axes; 1-D inputs are transposed back to channel-first first."""
    c = op.in_shape[0]
    if len(op.in_shape) == 2:
        x = g.add("TRANSPOSE", [x], prod(op.in_shape), consts=[_operand(_TO_NCHW)], role="TRANSPOSE/conv")
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
    n = prod(in_shape) * g.width
    if len(in_shape) != 2:  # images (NHWC) and vectors go in as they are
        return g.tensor(n, len(in_shape) + 1)
    x = g.tensor(n, 3)
    c, t = in_shape
    n = prod(in_shape)
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
    splice(g, graph_inputs(g, input_shape), ops)
    return g


def lower_segment(ops, width: int, feeds_conv: bool, input_shape=None) -> tuple[Graph, int]:
    """One segment's share of the graph, for composing an architecture's memory per segment
    (:mod:`workbench.hardware.memory_pieces`). Its tensor 0 is the segment's input: the graph input with its
    1-D plumbing when ``input_shape`` is given (the first segment), else the previous segment's output
    (the previous segment's tensor, here for its size and lifetime only). ``feeds_conv``: the op after
    the segment is a convolution. Returns the graph and the segment's output tensor."""
    g = Graph(width=width)
    if input_shape is None:
        x = g.tensor(prod(ops[0].in_shape) * width, len(ops[0].in_shape) + 1)
    else:
        x = graph_inputs(g, input_shape)
    return g, splice(g, x, ops, feeds_conv)


def splice(g: Graph, x: int, ops, feeds_conv: bool = False) -> int:
    """Append the memoised fragments of ``ops`` to ``g`` after tensor ``x``; the output tensor.
    ``feeds_conv``: what follows the last op is a convolution."""
    for i, op in enumerate(ops):
        next_is_conv = ops[i + 1].spec.plain_conv if i + 1 < len(ops) else feeds_conv
        tensors, ranks, frag_ops, out = _fragment(op, next_is_conv, g.width)
        base = len(g.tensors) - 1  # fragment tensor k >= 1 becomes base + k; 0 is the op's input x
        g.tensors.extend(tensors)
        g.ranks.extend(ranks)
        for top in frag_ops:
            g.ops.append(top._replace(inputs=tuple(x if t == 0 else base + t for t in top.inputs),
                                      output=base + top.output))
        x = x if out == 0 else base + out
    return x


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
