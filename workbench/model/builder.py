"""Build a trainable PyTorch model from an architecture's fused-op schedule.

The model is assembled from ``arch.ops`` — the same :class:`~workbench.model.ops.Op` list the cost
estimator, the LUTs and the profiler use — so what is trained is structurally what is timed and
deployed.

Each op kind's module comes from its :class:`~workbench.model.ops.OpSpec` (``spec.torch_body``), using
the helpers below; BatchNorm is kept for training (the deployed graph folds it into the conv).

Each op's module is an :class:`OpModule` that keeps its ``op`` (bits, stage, shapes), which is what
:mod:`workbench.model.quant` and per-layer tools read. The network (:class:`OpNet`) interleaves one
activation-quantiser slot after every op (and one on the input); they are ``nn.Identity`` until
:func:`workbench.model.quant.quantize_model` fills them.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from workbench._infra.errors import WorkbenchError
from workbench.model.layers import ResidualBlock
from workbench.model.ops import SPECS, Op


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
    return OpNet(arch, [build_op(op, i) for i, op in enumerate(arch.ops)])


def build_op(op: Op, index: int = 0) -> OpModule:
    """The module of one op, from its kind's spec."""
    if op.kind not in SPECS:
        raise WorkbenchError(f"op {index} has kind {op.kind!r}, which the model builder does not know "
                             f"(known: {', '.join(SPECS)})")
    body, skip = SPECS.get(op.kind).torch_body(op)
    return OpModule(op, body, skip=skip)


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


# The converters name each tensor of an exported file after the classes of the modules that produced it
# ("…/workbench.builder.OpNet_wrapped/workbench.builder.OpModule_3/torch.nn.modules.conv.Conv2d_0"). Those
# names are stored in the file and count in its size (workbench.hardware.memory.NAME_CHARS): they are part of
# the file format, not a Python path, so they stay what they were before the package move (0.2).
EXPORT_MODULE_NAMES = {OpNet: "workbench.builder", OpModule: "workbench.builder", ResidualBlock: "workbench.builder"}


@contextmanager
def export_names():
    """Inside this block the model classes report :data:`EXPORT_MODULE_NAMES` as their module: the
    converters name an exported file's tensors the same whatever package the classes live in."""
    saved = {cls: cls.__module__ for cls in EXPORT_MODULE_NAMES}
    try:
        for cls, name in EXPORT_MODULE_NAMES.items():
            cls.__module__ = name
        yield
    finally:
        for cls, name in saved.items():
            cls.__module__ = name
