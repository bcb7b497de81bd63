"""Build a trainable PyTorch model from an architecture's fused-op schedule.

The model is assembled from ``arch.ops`` — the same :class:`~workbench.ops.Op` list the cost
estimator, the LUTs and the profiler use — so what is trained is structurally what is timed and
deployed. Every op kind maps to a module factory through a registry (timm-style ``@register``):
adding an op kind to the vocabulary means writing one factory here.

Per-op structure (BatchNorm is kept for training; the deployed graph folds it into the conv):

* ``conv2d``   Conv2d(bias=False) + BN + ReLU6
* ``conv1d``   Conv1d(bias=False) + BN1d + ReLU6
* ``mbconv``   [1x1 expand + BN + ReLU6, absent when hidden == C_in] → depthwise kxk (stride)
  + BN + ReLU6 → 1x1 project + BN (linear bottleneck) → + input when ``op.skip``
* ``dsconv2d`` depthwise kxk (stride) + BN + ReLU6 → pointwise 1x1 + BN + ReLU6
* ``maxpool1d`` / ``avgpool1d``  kernel = stride = ``op.kernel``, no padding
* ``gap``      adaptive average pool to 1 + flatten
* ``linear``   nn.Linear (with bias)

Each op's module is an :class:`OpModule` that keeps its ``op`` (bits, stage, shapes), which is what
:mod:`workbench.quant` and per-layer tools read. The network (:class:`OpNet`) interleaves one
activation-quantiser slot after every op (and one on the input); they are ``nn.Identity`` until
:func:`workbench.quant.quantize_model` fills them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import WorkbenchError
from .ops import Op

BUILDERS: dict[str, Callable[[Op], nn.Module]] = {}


def register(kind: str):
    """Register a module factory ``fn(op) -> nn.Module`` for an op kind."""

    def deco(fn):
        BUILDERS[kind] = fn
        return fn

    return deco


class OpModule(nn.Module):
    """One fused op: its layers in ``body`` and the :class:`Op` it implements in ``op``."""

    def __init__(self, op: Op, body: nn.Module, skip: bool = False):
        super().__init__()
        self.op = op
        self.body = body
        self.skip = skip

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y

    def extra_repr(self) -> str:
        return f"{self.op.kind} {self.op.in_shape}->{self.op.out_shape} w{self.op.wbits}a{self.op.abits} stage={self.op.stage!r}"


def _conv_bn(dims: int, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    conv_cls, bn_cls = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
    layers = [conv_cls(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False), bn_cls(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


@register("conv2d")
def _conv2d(op: Op) -> nn.Module:
    return OpModule(op, nn.Sequential(*_conv_bn(2, op.in_shape[0], op.out_shape[0], op.kernel, op.stride)))


@register("conv1d")
def _conv1d(op: Op) -> nn.Module:
    return OpModule(op, nn.Sequential(*_conv_bn(1, op.in_shape[0], op.out_shape[0], op.kernel, op.stride)))


@register("mbconv")
def _mbconv(op: Op) -> nn.Module:
    cin, cout, hid = op.in_shape[0], op.out_shape[0], op.hidden
    layers = []
    if hid != cin:
        layers += _conv_bn(2, cin, hid, 1)
    layers += _conv_bn(2, hid, hid, op.kernel, op.stride, groups=hid)
    layers += _conv_bn(2, hid, cout, 1, act=False)
    return OpModule(op, nn.Sequential(*layers), skip=op.skip)


@register("dsconv2d")
def _dsconv2d(op: Op) -> nn.Module:
    cin, cout = op.in_shape[0], op.out_shape[0]
    layers = _conv_bn(2, cin, cin, op.kernel, op.stride, groups=cin) + _conv_bn(2, cin, cout, 1)
    return OpModule(op, nn.Sequential(*layers))


@register("maxpool1d")
def _maxpool1d(op: Op) -> nn.Module:
    return OpModule(op, nn.MaxPool1d(op.kernel, op.kernel))


@register("avgpool1d")
def _avgpool1d(op: Op) -> nn.Module:
    return OpModule(op, nn.AvgPool1d(op.kernel, op.kernel))


@register("gap")
def _gap(op: Op) -> nn.Module:
    pool = nn.AdaptiveAvgPool2d(1) if len(op.in_shape) == 3 else nn.AdaptiveAvgPool1d(1)
    return OpModule(op, nn.Sequential(pool, nn.Flatten(1)))


@register("linear")
def _linear(op: Op) -> nn.Module:
    return OpModule(op, nn.Linear(op.in_shape[0], op.out_shape[0]))


class OpNet(nn.Module):
    """The network: ``input_quant`` → for each op: op module → its activation quantiser slot."""

    def __init__(self, arch, blocks: list[nn.Module]):
        super().__init__()
        self.arch = arch
        self.input_quant: nn.Module = nn.Identity()
        self.blocks = nn.ModuleList(blocks)
        self.act_quant = nn.ModuleList(nn.Identity() for _ in blocks)

    def forward(self, x):
        x = self.input_quant(x)
        for block, quant in zip(self.blocks, self.act_quant):
            x = quant(block(x))
        return x


def build_model(arch) -> OpNet:
    """A freshly initialised fp32 model of ``arch`` (seed torch before calling for reproducibility)."""
    blocks = []
    for i, op in enumerate(arch.ops):
        try:
            factory = BUILDERS[op.kind]
        except KeyError:
            raise WorkbenchError(f"op {i} has kind {op.kind!r}, which the model builder does not know "
                                 f"(known: {', '.join(BUILDERS)})") from None
        blocks.append(factory(op))
    return OpNet(arch, blocks)


def deployed_params(model: nn.Module) -> int:
    """Parameters of the deployed graph: every conv/linear weight plus one bias per output channel.

    BatchNorm is folded into the preceding convolution at export, so its affine parameters become
    that conv's bias; this is how :attr:`Op.params` counts, so it equals ``arch.n_params``.
    """
    total = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            total += m.weight.numel() + m.weight.shape[0]
    return total


def op_output_shapes(model: OpNet, batch: int = 2) -> list[tuple[Op, tuple[int, ...]]]:
    """Dry-run a random batch and return each op with its module's output shape (batch removed)."""
    shapes = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.randn(batch, *model.arch.input_shape)
            x = model.input_quant(x)
            for block, quant in zip(model.blocks, model.act_quant):
                x = quant(block(x))
                shapes.append((block.op, tuple(x.shape[1:])))
    finally:
        model.train(was_training)
    return shapes


def check_shapes(model: OpNet, batch: int = 2) -> None:
    """Raise :class:`WorkbenchError` listing every op whose module output differs from ``op.out_shape``."""
    bad = [f"op {i} {op.kind}: expected {op.out_shape}, got {shape}"
           for i, (op, shape) in enumerate(op_output_shapes(model, batch)) if shape != tuple(op.out_shape)]
    if bad:
        raise WorkbenchError("built model does not match the op schedule: " + "; ".join(bad))
