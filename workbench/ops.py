"""The operator vocabulary shared by the cost estimator, the LUTs, the profiler and the model builder.

An :class:`Op` is one *fused* block as an inference runtime executes it (an MBConv block with
conv+BN+activation fused, a depthwise-separable block, a conv+BN+ReLU, a pooling, a classifier):
the granularity of the latency LUTs (Once-for-All / ProxylessNAS style keys). For memory and flash
an op is broken into its :class:`Layer` schedule, because runtimes such as TFLite Micro allocate
buffers layer by layer (MCUNet-style peak-memory accounting).

Shapes are channel-first without the batch: ``(C, H, W)`` for 2-D ops, ``(C, T)`` for 1-D ops,
``(C,)`` for vectors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from math import ceil

OP_KINDS = ("conv2d", "mbconv", "dsconv2d", "conv1d", "maxpool1d", "avgpool1d", "gap", "linear")

PRECISIONS = ("fp32", "int8", "w4a8")


def precision_of(wbits: int, abits: int) -> str:
    """Name of the (weight bits, activation bits) pair as the LUTs key it."""
    if abits == 32:
        return "fp32"
    return "int8" if wbits == 8 else f"w{wbits}a{abits}"


def out_len(size: int, kernel: int, stride: int) -> int:
    """Output length of a 'same'-padded convolution/pooling (padding = kernel // 2)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class Layer:
    """One runtime layer inside an op: what it reads, writes, keeps alive, stores and computes."""

    name: str
    in_elems: int
    out_elems: int
    weights: int = 0
    biases: int = 0
    macs: int = 0
    held_elems: int = 0  # a residual input kept alive while this layer runs


@dataclass(frozen=True)
class Op:
    """A fused operator with concrete shapes and precision; hashable and cheap to key."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    hidden: int = 0  # MBConv expanded channels (0 elsewhere)
    skip: bool = False
    wbits: int = 32
    abits: int = 32
    stage: str = ""
    pool: str = field(default="", compare=False)

    @property
    def precision(self) -> str:
        return precision_of(self.wbits, self.abits)

    @cached_property
    def key(self) -> str:
        """The LUT key, e.g. ``mbconv-input:16x16x24-output:8x8x32-expand:144-kernel:5-stride:2-skip:0-prec:int8``."""
        parts = [self.kind, f"input:{_shape_str(self.in_shape)}", f"output:{_shape_str(self.out_shape)}"]
        if self.kind == "mbconv":
            parts.append(f"expand:{self.hidden}")
        if self.kind not in ("gap", "linear"):
            parts += [f"kernel:{self.kernel}", f"stride:{self.stride}"]
        if self.kind == "mbconv":
            parts.append(f"skip:{int(self.skip)}")
        parts.append(f"prec:{self.precision}")
        return "-".join(parts)

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        return _LAYER_SCHEDULES[self.kind](self)

    @cached_property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @cached_property
    def params(self) -> int:
        """Deployed parameters: weights and biases with BatchNorm folded into the convolution."""
        return sum(layer.weights + layer.biases for layer in self.layers)

    @cached_property
    def weight_bytes(self) -> int:
        """Flash for this op's tensors: weights at ``wbits``, int32/fp32 biases, per-channel qparams."""
        total = 0
        for layer in self.layers:
            if not layer.weights:
                continue
            total += ceil(layer.weights * self.wbits / 8) + 4 * layer.biases
            if self.abits != 32:
                total += 8 * layer.biases  # float32 scale + int32 zero point per output channel
        return total

    @cached_property
    def peak_bytes(self) -> int:
        """Largest live activation set over this op's layers (input + output + held residual)."""
        act = self.abits // 8
        return max((l.in_elems + l.out_elems + l.held_elems) * act for l in self.layers)

    @cached_property
    def io_bytes(self) -> int:
        """Bytes moved by one execution: activations in/out plus the stored tensors (fallback-model feature)."""
        return (_prod(self.in_shape) + _prod(self.out_shape)) * (self.abits // 8) + self.weight_bytes


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _shape_str(shape: tuple[int, ...]) -> str:
    """Channel-last text, as OFA's keys: ``HxWxC``, ``TxC`` or ``C``."""
    return "x".join(str(s) for s in (*shape[1:], shape[0]))


def _conv2d_layers(op: Op) -> tuple[Layer, ...]:
    cin, h, w = op.in_shape
    cout, ho, wo = op.out_shape
    weights = cout * cin * op.kernel * op.kernel
    return (Layer("conv", cin * h * w, cout * ho * wo, weights, cout, ho * wo * weights),)


def _conv1d_layers(op: Op) -> tuple[Layer, ...]:
    cin, t = op.in_shape
    cout, to = op.out_shape
    weights = cout * cin * op.kernel
    return (Layer("conv", cin * t, cout * to, weights, cout, to * weights),)


def _mbconv_layers(op: Op) -> tuple[Layer, ...]:
    cin, h, w = op.in_shape
    cout, ho, wo = op.out_shape
    hid, k = op.hidden, op.kernel
    held = cin * h * w if op.skip else 0
    layers = []
    if hid != cin:
        layers.append(Layer("expand", cin * h * w, hid * h * w, hid * cin, hid, h * w * hid * cin))
        dw_held = held
    else:
        dw_held = 0  # the depthwise layer reads the block input itself
    layers.append(Layer("depthwise", hid * h * w, hid * ho * wo, hid * k * k, hid, ho * wo * hid * k * k, dw_held))
    layers.append(Layer("project", hid * ho * wo, cout * ho * wo, cout * hid, cout, ho * wo * cout * hid, held))
    return tuple(layers)


def _dsconv2d_layers(op: Op) -> tuple[Layer, ...]:
    cin, h, w = op.in_shape
    cout, ho, wo = op.out_shape
    k = op.kernel
    return (
        Layer("depthwise", cin * h * w, cin * ho * wo, cin * k * k, cin, ho * wo * cin * k * k),
        Layer("pointwise", cin * ho * wo, cout * ho * wo, cout * cin, cout, ho * wo * cout * cin),
    )


def _pool1d_layers(op: Op) -> tuple[Layer, ...]:
    return (Layer("pool", _prod(op.in_shape), _prod(op.out_shape)),)


def _gap_layers(op: Op) -> tuple[Layer, ...]:
    return (Layer("gap", _prod(op.in_shape), op.out_shape[0]),)


def _linear_layers(op: Op) -> tuple[Layer, ...]:
    cin, cout = op.in_shape[0], op.out_shape[0]
    return (Layer("fc", cin, cout, cin * cout, cout, cin * cout),)


_LAYER_SCHEDULES = {
    "conv2d": _conv2d_layers,
    "conv1d": _conv1d_layers,
    "mbconv": _mbconv_layers,
    "dsconv2d": _dsconv2d_layers,
    "maxpool1d": _pool1d_layers,
    "avgpool1d": _pool1d_layers,
    "gap": _gap_layers,
    "linear": _linear_layers,
}


class Segment:
    """A run of consecutive ops (a stage, a stem, a head) with its totals computed once.

    Families build segments through memoised functions, so every distinct stage configuration is one
    shared object: lowering an architecture is a handful of cache hits, and the cost estimator caches
    per-segment latency per LUT. Identity-hashed (segments are unique by construction).
    """

    __slots__ = ("ops", "keys", "macs", "params", "weight_bytes", "peak_bytes", "n_layers", "precisions", "n_ops",
                 "out_shape")

    def __init__(self, ops: tuple[Op, ...]):
        self.ops = tuple(ops)
        self.keys = tuple(op.key for op in self.ops)
        self.macs = sum(op.macs for op in self.ops)
        self.params = sum(op.params for op in self.ops)
        self.weight_bytes = sum(op.weight_bytes for op in self.ops)
        self.peak_bytes = max((op.peak_bytes for op in self.ops), default=0)
        self.n_layers = sum(len(op.layers) for op in self.ops)
        self.precisions = frozenset(op.precision for op in self.ops)
        self.n_ops = len(self.ops)
        self.out_shape = self.ops[-1].out_shape

    def __repr__(self) -> str:
        return f"Segment({', '.join(self.keys)})"
