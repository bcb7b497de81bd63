"""An op's training graph: its weight layers, activations, poolings and residual adds as a backward pass sees them.

Why its own lowering: what a training step keeps depends on structure the fused-op schedule hides — which
convolution is followed by a BatchNorm and a ReLU6 (PyTorch saves all three's inputs or outputs), which layers
share an input (a residual block's main branch and its 1x1 shortcut), whether a pooling keeps its argmax. The
nodes here mirror the modules :func:`workbench.model.builder.build_model` builds for each op kind
(``OpSpec.torch_body`` and :mod:`workbench.model.layers`), so the eager count of
:mod:`workbench.hardware.training` can be checked against PyTorch on the built model
(``benchmarks/bench_train_memory.py``), while the deployed int8 graph's view of the same nodes folds the
BatchNorm into the convolution and its activation into the convolution's output clamp.

Pure arithmetic, no torch. Every op kind of :data:`workbench.model.ops.SPECS` has a lowering here
(``tests/test_training_cost.py`` checks it).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from workbench._infra.errors import WorkbenchError
from workbench.model.geometry import same_pads
from workbench.model.ops import Op
from workbench.model.tflite_graph import prod as _prod


class WeightNode(NamedTuple):
    """A convolution (depthwise included) or fully connected layer, with what follows it in the eager model."""

    name: str  # the layer's name in the op's schedule (conv, expand, depthwise, project, pointwise, shortcut, fc)
    cin: int
    cout: int
    in_elems: int  # per sample
    out_elems: int
    weights: int
    macs: int
    act: str = ""  # "", "relu", "relu6": applied to the (BatchNorm'd) output
    bn: bool = True  # eager: a BatchNorm follows (folded into the layer in the deployed graph)
    has_bias: bool = False  # eager: the conv/linear module has its own bias parameter
    pad_elems: int = 0  # eager: an explicit ZeroPad2d first makes the input this many elements (0: none)
    kind: str = "weight"


class PoolNode(NamedTuple):
    """Max or average pooling over a 'valid' window of ``window`` elements."""

    pool: str  # "max" | "avg"
    in_elems: int
    out_elems: int
    window: int
    kind: str = "pool"


class GapNode(NamedTuple):
    """Global average pooling (PyTorch computes it as a mean: nothing saved)."""

    in_elems: int
    out_elems: int
    kind: str = "gap"


class ViewNode(NamedTuple):
    """A reshape (flatten): a view of its input in PyTorch, no backward work."""

    out_elems: int
    kind: str = "view"


class ResidualNode(NamedTuple):
    """``body(x) + shortcut(x)`` (an empty shortcut: identity), then a ReLU when ``relu``."""

    in_elems: int
    out_elems: int
    body: tuple
    shortcut: tuple
    relu: bool
    kind: str = "residual"


def _conv(name, op: Op, cin, cout, in_hw, out_hw, kernel=(1, 1), stride=(1, 1), groups=1, act="relu6", bn=True,
          has_bias=False) -> WeightNode:
    """A conv of the builder's ``conv_bn`` on an input of spatial size ``in_hw`` (1 or 2 dims)."""
    kernel, stride = kernel[: len(in_hw)], stride[: len(in_hw)]
    weights = cout * (cin // groups) * _prod(kernel)
    pads = [same_pads(n, k, s) for n, k, s in zip(in_hw, kernel, stride)]
    pad_elems = 0
    if any(a != b for a, b in pads):  # conv_bn writes an explicit ZeroPad2d (uneven 'same' padding)
        pad_elems = cin * _prod(n + a + b for n, (a, b) in zip(in_hw, pads))
    out_spatial = _prod(out_hw)
    return WeightNode(name, cin, cout, cin * _prod(in_hw), cout * out_spatial, weights, out_spatial * weights, act, bn,
                      has_bias, pad_elems)


def _window(op: Op) -> tuple[tuple[int, int], tuple[int, int]]:
    return (op.kh, op.kw), (op.sh, op.sw)


def _conv2d(op: Op) -> tuple:
    kernel, stride = _window(op) if len(op.in_shape) == 3 else ((op.kernel,), (op.stride,))
    return (_conv("conv", op, op.in_shape[0], op.out_shape[0], op.in_shape[1:], op.out_shape[1:], kernel, stride),)


def _mbconv(op: Op) -> tuple:
    cin, cout, hid = op.in_shape[0], op.out_shape[0], op.hidden
    hw, ohw = op.in_shape[1:], op.out_shape[1:]
    body = []
    if hid != cin:
        body.append(_conv("expand", op, cin, hid, hw, hw))
    body.append(_conv("depthwise", op, hid, hid, hw, ohw, *_window(op), groups=hid))
    body.append(_conv("project", op, hid, cout, ohw, ohw, act=""))
    if op.skip:
        return (ResidualNode(_prod(op.in_shape), _prod(op.out_shape), tuple(body), (), False),)
    return tuple(body)


def _dsconv2d(op: Op) -> tuple:
    cin, cout = op.in_shape[0], op.out_shape[0]
    hw, ohw = op.in_shape[1:], op.out_shape[1:]
    return (_conv("depthwise", op, cin, cin, hw, ohw, *_window(op), groups=cin),
            _conv("pointwise", op, cin, cout, ohw, ohw))


def _resblock(op: Op) -> tuple:
    cin, cout = op.in_shape[0], op.out_shape[0]
    hw, ohw = op.in_shape[1:], op.out_shape[1:]
    kernel, stride = _window(op)
    body = (_conv("conv", op, cin, cout, hw, ohw, kernel, stride, act="relu"),
            _conv("conv", op, cout, cout, ohw, ohw, kernel, act=""))
    shortcut = () if op.skip else (_conv("shortcut", op, cin, cout, hw, ohw, (1, 1), stride, act="", bn=False,
                                         has_bias=True),)
    return (ResidualNode(_prod(op.in_shape), _prod(op.out_shape), body, shortcut, True),)


def _pool(kind: str) -> Callable[[Op], tuple]:
    def lower(op: Op) -> tuple:
        window = op.kh * op.kw if len(op.in_shape) == 3 else op.kernel
        return (PoolNode(kind, _prod(op.in_shape), _prod(op.out_shape), window),)
    return lower


def _linear(act: str, bn: bool) -> Callable[[Op], tuple]:
    def lower(op: Op) -> tuple:
        cin, cout = op.in_shape[0], op.out_shape[0]
        return (WeightNode("fc", cin, cout, cin, cout, cin * cout, cin * cout, act, bn, True),)
    return lower


LOWERINGS: dict[str, Callable[[Op], tuple]] = {
    "conv2d": _conv2d,
    "conv1d": _conv2d,
    "mbconv": _mbconv,
    "dsconv2d": _dsconv2d,
    "resblock": _resblock,
    "maxpool1d": _pool("max"),
    "maxpool2d": _pool("max"),
    "avgpool1d": _pool("avg"),
    "avgpool2d": _pool("avg"),
    "gap": lambda op: (GapNode(_prod(op.in_shape), op.out_shape[0]),),
    "flatten": lambda op: (ViewNode(_prod(op.out_shape)),),
    "linear": _linear("", False),
    "linear_relu": _linear("relu", True),
}


@lru_cache(maxsize=1 << 15)
def train_nodes(op: Op) -> tuple:
    """The training graph of one op (memoised: the shipped spaces have a few thousand distinct ops)."""
    lower = LOWERINGS.get(op.kind)
    if lower is None:
        raise WorkbenchError(f"op kind {op.kind!r} has no training graph (workbench.model.train_graph.LOWERINGS); "
                             f"training cost needs one")
    return lower(op)


def weight_nodes(nodes) -> list[WeightNode]:
    """The weight layers among ``nodes``, in forward order (a residual's body before its shortcut)."""
    found = []
    for node in nodes:
        if node.kind == "weight":
            found.append(node)
        elif node.kind == "residual":
            found += weight_nodes(node.body) + weight_nodes(node.shortcut)
    return found


def weight_layers(arch) -> list[WeightNode]:
    """Every weight layer of ``arch`` (or of a segment: anything with ``ops``) in forward order: what
    ``last:K``, ``bias:K`` and sparse indices count."""
    return [w for op in arch.ops for w in weight_nodes(train_nodes(op))]
