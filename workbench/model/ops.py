"""The operator vocabulary shared by the cost estimator, the LUTs, the profiler and the model builder.

An :class:`Op` is one *fused* block as an inference runtime executes it (an MBConv block with
conv+BN+activation fused, a depthwise-separable block, a conv+BN+ReLU, a residual block, a pooling,
a fully connected layer): the granularity of the latency LUTs (Once-for-All / ProxylessNAS style
keys). For memory and flash an op is broken into its :class:`Layer` schedule, because runtimes such
as TFLite Micro allocate buffers layer by layer (MCUNet-style peak-memory accounting).

Every op kind is defined once, by an :class:`OpSpec` in :data:`SPECS`: its layer schedule, the
fields of its LUT key, how the latency model types its layers, how it is built in PyTorch, how it
lowers to ONNX for profiling and which export formats take it. The cost model, the latency model,
the builder, the profiler and the export checks all read that registry (``tests/test_vocabulary.py``
checks every kind everywhere).

Shapes are channel-first without the batch: ``(C, H, W)`` for 2-D ops, ``(C, T)`` for 1-D ops,
``(C,)`` for vectors. Kernels and strides are ``kernel``/``stride`` (height, or the only size of a
square window) with ``kernel_w``/``stride_w`` for the width side (0 = square). Convolutions use
'same' padding as TensorFlow defines it (output = ceil(input / stride); an odd total pad puts the
extra row/column at the end); poolings are 'valid' (no padding).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from math import ceil
from typing import Callable

from workbench._infra.registry import Registry
from workbench.model import tflite_graph

PRECISIONS = ("fp32", "int8", "w4a8")
EXPORT_FORMATS = ("onnx", "onnx-int8", "tflite", "tflite-int8")


def precision_of(wbits: int, abits: int) -> str:
    """Name of the (weight bits, activation bits) pair as the LUTs key it."""
    if abits == 32:
        return "fp32"
    return "int8" if wbits == 8 else f"w{wbits}a{abits}"


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
    skip: bool = False  # mbconv/resblock: identity residual (resblock without it: 1x1 projection shortcut)
    wbits: int = 32
    abits: int = 32
    stage: str = ""
    pool: str = field(default="", compare=False)
    kernel_w: int = 0  # width side of a non-square window (0: square)
    stride_w: int = 0

    @property
    def precision(self) -> str:
        return precision_of(self.wbits, self.abits)

    @property
    def spec(self) -> "OpSpec":
        return SPECS.get(self.kind)

    @property
    def kh(self) -> int:
        return self.kernel

    @property
    def kw(self) -> int:
        return self.kernel_w or self.kernel

    @property
    def sh(self) -> int:
        return self.stride

    @property
    def sw(self) -> int:
        return self.stride_w or self.stride

    @property
    def square(self) -> bool:
        return self.kw == self.kh and self.sw == self.sh

    @cached_property
    def key(self) -> str:
        """The LUT key, e.g. ``mbconv-input:16x16x24-output:8x8x32-expand:144-kernel:5-stride:2-skip:0-prec:int8``;
        a non-square window keys as ``kernel:10x4-stride:2x2``."""
        parts = [self.kind, f"input:{_shape_str(self.in_shape)}", f"output:{_shape_str(self.out_shape)}"]
        for name in self.spec.key_fields:
            parts.append(_KEY_FIELDS[name](self))
        parts.append(f"prec:{self.precision}")
        return "-".join(parts)

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        return self.spec.layers(self)

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


def _window_str(op: Op) -> str:
    if op.square:
        return f"kernel:{op.kernel}-stride:{op.stride}"
    return f"kernel:{op.kh}x{op.kw}-stride:{op.sh}x{op.sw}"


_KEY_FIELDS: dict[str, Callable[[Op], str]] = {
    "expand": lambda op: f"expand:{op.hidden}",
    "window": _window_str,
    "skip": lambda op: f"skip:{int(op.skip)}",
}


# ---------------------------------------------------------------- the spec of an op kind

class OpSpec(ABC):
    """Everything the workbench knows about one op kind, in one place.

    A registry entry of :data:`SPECS`: ``name`` is the op kind (``Op.kind``), ``help`` its one line for the
    op vocabulary table (generated into ``docs/guides/scoring.md``). Subclasses set the class attributes and
    implement :meth:`layers`, :meth:`torch_body`, :meth:`onnx` and :meth:`tflite`; :meth:`layer_type` and
    :meth:`residual_elems` have defaults. ``tflite_ops`` lists the compute operators :meth:`tflite` may emit (checked by
    ``tests/test_vocabulary.py``).
    """

    name = ""  # the op kind
    help = ""  # one line for the op vocabulary table in the docs
    key_fields: tuple[str, ...] = ("window",)
    formats: tuple[str, ...] = EXPORT_FORMATS  # export formats whose writers handle the kind
    has_weights = True  # False: nothing to quantise (pooling, reshaping)
    plain_conv = False  # one convolution (conv1d/conv2d): a pool feeding it is requantised by the TFLite converter
    tflite_ops: tuple[str, ...] = ()

    @abstractmethod
    def layers(self, op: Op) -> tuple[Layer, ...]:
        """The op's runtime layers (what each reads, writes, keeps alive, stores and computes)."""

    def layer_type(self, layer: Layer, op: Op) -> str | None:
        """The latency model's compute class of a layer: conv, depthwise, pointwise, fc, or None for
        elementwise layers (pooling, residual add, reshapes)."""
        if layer.name == "fc":
            return "fc"
        if layer.name == "depthwise":
            return "depthwise"
        if layer.name in ("expand", "project", "pointwise", "shortcut") or (layer.name == "conv" and op.kh * op.kw == 1):
            return "pointwise"
        if layer.name == "conv":
            return "conv"
        return None

    def residual_elems(self, op: Op) -> int:
        """Elements of a residual add that no layer of the schedule lists (latency model)."""
        return 0

    @abstractmethod
    def torch_body(self, op: Op):
        """(PyTorch module computing the op, residual-add flag) for :func:`workbench.model.builder.build_model`."""

    @abstractmethod
    def onnx(self, g, x: str, op: Op) -> str:
        """Append the op's deployed ONNX nodes to profiler graph ``g`` reading ``x``; return the output name."""

    @abstractmethod
    def tflite(self, g, x: int, op: Op, feeds_conv: bool = False) -> int:
        """Append the TFLite operators the exporter emits for the op to memory graph ``g`` (a
        :class:`workbench.model.tflite_graph.Graph`) reading tensor ``x``; return the output tensor (the TFLM arena
        and file-size models read this). ``feeds_conv``: the next op is a plain convolution (``plain_conv``)."""


SPECS: Registry[OpSpec] = Registry("op kind")


def register(cls):
    """Register an instance of an :class:`OpSpec` subclass under its ``name`` (the op kind)."""
    SPECS.register(cls())
    return cls


def _torch():
    """The PyTorch layers, imported when a model is built: torch is heavy and the cost path never needs it."""
    from workbench.model import layers  # heavy: torch, tqdm

    return layers


def _conv_layer(name, op, cin, cout, groups=1, kh=None, kw=None, in_hw=None, out_hw=None, held=0) -> Layer:
    h, w = in_hw or op.in_shape[1:]
    ho, wo = out_hw or op.out_shape[1:]
    kh = op.kh if kh is None else kh
    kw = op.kw if kw is None else kw
    weights = cout * (cin // groups) * kh * kw
    return Layer(name, cin * h * w, cout * ho * wo, weights, cout, ho * wo * weights, held)


@register
class Conv2dSpec(OpSpec):
    name = "conv2d"
    help = "conv kh x kw (stride sh x sw, 'same') + folded BN + ReLU6"
    tflite_ops = ("CONV_2D",)
    plain_conv = True

    def layers(self, op):
        return (_conv_layer("conv", op, op.in_shape[0], op.out_shape[0]),)

    def torch_body(self, op):
        b = _torch()
        return b.seq(b.conv_bn(op.in_shape[1:], op.in_shape[0], op.out_shape[0], (op.kh, op.kw), (op.sh, op.sw))), False

    def onnx(self, g, x, op):
        return g.conv2d(x, op.in_shape[1:], op.in_shape[0], op.out_shape[0], (op.kh, op.kw), (op.sh, op.sw), 1, "relu6")


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_conv(g, x, op)

@register
class Conv1dSpec(OpSpec):
    name = "conv1d"
    help = "1-D conv k (stride s, 'same') + folded BN + ReLU6"
    tflite_ops = ("CONV_2D",)
    plain_conv = True

    def layers(self, op):
        cin, t = op.in_shape
        cout, to = op.out_shape
        weights = cout * cin * op.kernel
        return (Layer("conv", cin * t, cout * to, weights, cout, to * weights),)

    def torch_body(self, op):
        b = _torch()
        return b.seq(b.conv_bn(op.in_shape[1:], op.in_shape[0], op.out_shape[0], (op.kernel,), (op.stride,))), False

    def onnx(self, g, x, op):
        return g.conv(x, op.in_shape[0], op.out_shape[0], op.kernel, op.stride, 1, 1, True)


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_conv(g, x, op)

@register
class MBConvSpec(OpSpec):
    name = "mbconv"
    help = "inverted residual: [1x1 expand] + dw k x k (stride) + 1x1 project (linear) [+ identity add]"
    key_fields = ("expand", "window", "skip")
    tflite_ops = ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD")

    def layers(self, op):
        cin, h, w = op.in_shape
        cout, ho, wo = op.out_shape
        hid = op.hidden
        held = cin * h * w if op.skip else 0
        layers = []
        if hid != cin:
            layers.append(_conv_layer("expand", op, cin, hid, kh=1, kw=1, out_hw=(h, w)))
            dw_held = held
        else:
            dw_held = 0  # the depthwise layer reads the block input itself
        layers.append(_conv_layer("depthwise", op, hid, hid, groups=hid, held=dw_held))
        layers.append(_conv_layer("project", op, hid, cout, kh=1, kw=1, in_hw=(ho, wo), held=held))
        return tuple(layers)

    def residual_elems(self, op):
        return _prod(op.out_shape) if op.skip else 0

    def torch_body(self, op):
        b = _torch()
        cin, cout, hid = op.in_shape[0], op.out_shape[0], op.hidden
        layers = []
        if hid != cin:
            layers += b.conv_bn(op.in_shape[1:], cin, hid, (1, 1), (1, 1))
        layers += b.conv_bn(op.in_shape[1:], hid, hid, (op.kh, op.kw), (op.sh, op.sw), groups=hid)
        layers += b.conv_bn(op.out_shape[1:], hid, cout, (1, 1), (1, 1), act=None)
        return b.seq(layers), op.skip

    def onnx(self, g, x, op):
        cin, hid = op.in_shape[0], op.hidden
        y = g.conv(x, cin, hid, 1, 1, 1, 2, True) if hid != cin else x
        y = g.conv2d(y, op.in_shape[1:], hid, hid, (op.kh, op.kw), (op.sh, op.sw), hid, "relu6")
        y = g.conv(y, hid, op.out_shape[0], 1, 1, 1, 2, False)
        return g.node("Add", [y, x]) if op.skip else y


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_mbconv(g, x, op)

@register
class DSConv2dSpec(OpSpec):
    name = "dsconv2d"
    help = "depthwise-separable: dw kh x kw (stride) + BN + ReLU6, then 1x1 + BN + ReLU6"
    tflite_ops = ("DEPTHWISE_CONV_2D", "CONV_2D")

    def layers(self, op):
        cin, cout = op.in_shape[0], op.out_shape[0]
        return (_conv_layer("depthwise", op, cin, cin, groups=cin),
                _conv_layer("pointwise", op, cin, cout, kh=1, kw=1, in_hw=op.out_shape[1:]))

    def torch_body(self, op):
        b = _torch()
        cin, cout = op.in_shape[0], op.out_shape[0]
        layers = (b.conv_bn(op.in_shape[1:], cin, cin, (op.kh, op.kw), (op.sh, op.sw), groups=cin)
                  + b.conv_bn(op.out_shape[1:], cin, cout, (1, 1), (1, 1)))
        return b.seq(layers), False

    def onnx(self, g, x, op):
        cin = op.in_shape[0]
        y = g.conv2d(x, op.in_shape[1:], cin, cin, (op.kh, op.kw), (op.sh, op.sw), cin, "relu6")
        return g.conv(y, cin, op.out_shape[0], 1, 1, 1, 2, True)


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_dsconv2d(g, x, op)

@register
class ResBlockSpec(OpSpec):
    name = "resblock"
    help = ("residual block: conv k (stride) + BN + ReLU, conv k + BN, shortcut identity (skip:1) or "
               "1x1 conv stride s (skip:0), add, ReLU")
    key_fields = ("window", "skip")
    tflite_ops = ("CONV_2D", "CONV_2D", "CONV_2D", "ADD")

    def layers(self, op):
        cin, h, w = op.in_shape
        cout, ho, wo = op.out_shape
        x, y = cin * h * w, cout * ho * wo
        layers = [_conv_layer("conv", op, cin, cout),
                  # the block input stays alive for the shortcut while the second conv runs
                  _conv_layer("conv", op, cout, cout, in_hw=(ho, wo), held=x)]
        if not op.skip:  # 1x1 projection of the block input while the main branch's output waits
            layers.append(Layer("shortcut", x, y, cout * cin, cout, ho * wo * cout * cin, y))
        layers.append(Layer("add", 2 * y, y))
        return tuple(layers)

    def torch_body(self, op):
        return _torch().ResidualBlock(op), False

    def onnx(self, g, x, op):
        cin, cout = op.in_shape[0], op.out_shape[0]
        hw, ohw = op.in_shape[1:], op.out_shape[1:]
        y = g.conv2d(x, hw, cin, cout, (op.kh, op.kw), (op.sh, op.sw), 1, "relu")
        y = g.conv2d(y, ohw, cout, cout, (op.kh, op.kw), (1, 1), 1, None)
        s = x if op.skip else g.conv2d(x, hw, cin, cout, (1, 1), (op.sh, op.sw), 1, None)
        return g.node("Relu", [g.node("Add", [y, s])])


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_resblock(g, x, op)

class _PoolSpec(OpSpec):
    """Max/average pooling over a 'valid' window (no weights; elementwise in the latency model)."""

    has_weights = False
    op_type = ""

    def layers(self, op):
        return (Layer("pool", _prod(op.in_shape), _prod(op.out_shape)),)

    def onnx(self, g, x, op):
        dims = len(op.in_shape) - 1
        kernel, stride = ([op.kh, op.kw], [op.sh, op.sw]) if dims == 2 else ([op.kernel], [op.stride])
        return g.node(self.op_type, [x], kernel_shape=kernel, strides=stride)

    def torch_body(self, op):
        from torch import nn  # heavy: torch

        dims = len(op.in_shape) - 1
        cls = {"MaxPool": (nn.MaxPool1d, nn.MaxPool2d), "AveragePool": (nn.AvgPool1d, nn.AvgPool2d)}[self.op_type]
        if dims == 2:
            return cls[1]((op.kh, op.kw), (op.sh, op.sw)), False
        return cls[0](op.kernel, op.stride), False


    def tflite(self, g, x, op, feeds_conv=False):
        code = self.tflite_ops[0]  # the pooling's one operator
        if len(op.in_shape) == 2:
            return tflite_graph.lower_pool1d(g, x, op, code, feeds_conv)
        return tflite_graph.lower_pool2d(g, x, op, code)

@register
class MaxPool1dSpec(_PoolSpec):
    name = "maxpool1d"
    help = "1-D max pooling, window k stride s"
    op_type = "MaxPool"
    tflite_ops = ("MAX_POOL_2D",)


@register
class AvgPool1dSpec(_PoolSpec):
    name = "avgpool1d"
    help = "1-D average pooling, window k stride s"
    op_type = "AveragePool"
    tflite_ops = ("AVERAGE_POOL_2D",)


@register
class MaxPool2dSpec(_PoolSpec):
    name = "maxpool2d"
    help = "2-D max pooling, window kh x kw stride sh x sw"
    op_type = "MaxPool"
    tflite_ops = ("MAX_POOL_2D",)


@register
class AvgPool2dSpec(_PoolSpec):
    name = "avgpool2d"
    help = "2-D average pooling, window kh x kw stride sh x sw (e.g. DS-CNN's (24, 5))"
    op_type = "AveragePool"
    tflite_ops = ("AVERAGE_POOL_2D",)


@register
class GapSpec(OpSpec):
    name = "gap"
    help = "global average pooling to a C vector (1-D or 2-D input)"
    key_fields = ()
    has_weights = False
    tflite_ops = ("MEAN",)

    def layers(self, op):
        return (Layer("gap", _prod(op.in_shape), op.out_shape[0]),)

    def torch_body(self, op):
        from torch import nn  # heavy: torch

        pool = nn.AdaptiveAvgPool2d(1) if len(op.in_shape) == 3 else nn.AdaptiveAvgPool1d(1)
        return nn.Sequential(pool, nn.Flatten(1)), False

    def onnx(self, g, x, op):
        return g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_gap(g, x, op)

@register
class FlattenSpec(OpSpec):
    name = "flatten"
    help = "reshape (C, H, W) or (C, T) to a vector (a copy in TFLite Micro's RESHAPE)"
    key_fields = ()
    has_weights = False
    tflite_ops = ("RESHAPE",)

    def layers(self, op):
        return (Layer("reshape", _prod(op.in_shape), _prod(op.out_shape)),)

    def torch_body(self, op):
        from torch import nn  # heavy: torch

        return nn.Flatten(1), False

    def onnx(self, g, x, op):
        return g.node("Flatten", [x], axis=1)


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_flatten(g, x, op)

@register
class LinearSpec(OpSpec):
    name = "linear"
    help = "fully connected layer with bias, no activation (classifiers, bottlenecks' outputs)"
    key_fields = ()
    tflite_ops = ("FULLY_CONNECTED",)
    relu = False

    def layers(self, op):
        cin, cout = op.in_shape[0], op.out_shape[0]
        return (Layer("fc", cin, cout, cin * cout, cout, cin * cout),)

    def torch_body(self, op):
        from torch import nn  # heavy: torch

        fc = nn.Linear(op.in_shape[0], op.out_shape[0])
        return (nn.Sequential(fc, nn.BatchNorm1d(op.out_shape[0]), nn.ReLU(inplace=True)) if self.relu else fc), False

    def onnx(self, g, x, op):
        cin, cout = op.in_shape[0], op.out_shape[0]
        w = g.rng.standard_normal((cout, cin)) * (1.0 / cin) ** 0.5
        y = g.node("Gemm", [x, g.const("w", w), g.const("b", [0.0] * cout)], transB=1)
        return g.node("Relu", [y]) if self.relu else y


    def tflite(self, g, x, op, feeds_conv=False):
        return tflite_graph.lower_linear(g, x, op)

@register
class LinearReluSpec(LinearSpec):
    name = "linear_relu"
    help = "fully connected + folded BN + ReLU (MLP hidden layers)"
    relu = True


OP_KINDS = SPECS.names()


def kinds_for_format(fmt: str) -> frozenset[str]:
    """Op kinds an export format's writer handles (what :mod:`workbench.export.formats` declares)."""
    return frozenset(spec.name for spec in SPECS.entries() if fmt in spec.formats)


class Segment:
    """A run of consecutive ops (a stage, a stem, a head) with its totals computed once.

    Families build segments through memoised functions, so every distinct stage configuration is one
    shared object: lowering an architecture is a handful of cache hits, and the cost estimator caches
    per-segment latency per LUT. Identity-hashed (segments are unique by construction).
    """

    __slots__ = ("ops", "keys", "macs", "params", "weight_bytes", "peak_bytes", "n_layers", "precisions", "n_ops",
                 "out_shape", "starts_plain_conv")

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
        # the TFLite lowering of the segment before this one depends on it (memory pieces: read per architecture)
        self.starts_plain_conv = self.ops[0].spec.plain_conv

    def __repr__(self) -> str:
        return f"Segment({', '.join(self.keys)})"
