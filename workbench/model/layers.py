"""The PyTorch layers the op kinds are built from: 'same'-padded conv + BN + activation, and the residual block.

Each :class:`~workbench.model.ops.OpSpec` builds its module from these (``spec.torch_body``), imported
only when a model is built, so the cost path never imports torch. BatchNorm is kept for training; the
deployed graph folds it into the conv.
"""
from __future__ import annotations

import torch
from torch import nn

from workbench.model.geometry import same_pads

_ACTS = {"relu6": lambda: nn.ReLU6(inplace=True), "relu": lambda: nn.ReLU(inplace=True)}


def conv_bn(in_size, cin: int, cout: int, kernel: tuple, stride: tuple, groups: int = 1, act: str | None = "relu6",
            bn: bool = True) -> list[nn.Module]:
    """[zero pad,] conv ('same', see :func:`workbench.model.ops.same_pads`) [+ BN] [+ activation], 1-D or 2-D
    by ``len(kernel)``. Odd kernels pad symmetrically inside the conv; uneven pads get an explicit
    ``ZeroPad2d`` so the output has TensorFlow's 'same' size."""
    dims = len(kernel)
    pads = [same_pads(n, k, s) for n, k, s in zip(in_size, kernel, stride)]
    conv_cls, bn_cls = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
    layers: list[nn.Module] = []
    if all(a == b for a, b in pads):
        padding = tuple(a for a, _ in pads)
    else:
        (top, bottom), (left, right) = pads
        layers.append(nn.ZeroPad2d((left, right, top, bottom)))
        padding = 0
    layers.append(conv_cls(cin, cout, kernel, stride, padding=padding, groups=groups, bias=not bn))
    if bn:
        layers.append(bn_cls(cout))
    if act:
        layers.append(_ACTS[act]())
    return layers


def seq(layers) -> nn.Sequential:
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """conv-BN-ReLU, conv-BN on the main branch; identity or 1x1-conv (stride, bias, no BN) shortcut; add; ReLU."""

    def __init__(self, op):
        super().__init__()
        cin, cout = op.in_shape[0], op.out_shape[0]
        kernel, stride = (op.kh, op.kw), (op.sh, op.sw)
        self.main = seq(conv_bn(op.in_shape[1:], cin, cout, kernel, stride, act="relu")
                        + conv_bn(op.out_shape[1:], cout, cout, kernel, (1, 1), act=None))
        self.shortcut = nn.Identity() if op.skip else seq(conv_bn(op.in_shape[1:], cin, cout, (1, 1), stride,
                                                                  act=None, bn=False))

    def forward(self, x):
        return torch.relu(self.main(x) + self.shortcut(x))
