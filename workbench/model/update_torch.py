"""An update scheme on a built PyTorch model: which parameters train, and what one eager step really keeps.

Why: the eager (``fp32``) count of :mod:`workbench.hardware.training` predicts PyTorch's memory without torch; this
module is the other side of that check (``benchmarks/bench_train_memory.py``, ``tests/test_training_cost.py``)
and the place a fine-tuning loop sets a scheme on a model. The weight layers are the model's convolutions and
linear layers in module order — the order of :func:`workbench.model.train_graph.weight_layers` — each with the
BatchNorm that follows it, if any. A layer's *bias* is every ``bias`` parameter it has (its own and the
BatchNorm's shift: the two fold into the deployed layer's bias); its *scale* is the BatchNorm's weight.

Measurement: the tensors autograd saves during the forward pass (``torch.autograd.graph.saved_tensors_hooks``),
each storage counted once and parameters/buffers left out (they are the model's weights, counted apart); every
trained parameter's ``.grad``; the optimizer's state after one step.
"""
from __future__ import annotations

import torch
from torch import nn

from workbench._infra.errors import WorkbenchError
from workbench.model.update_schemes import LayerUpdate, kept_channels

_WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def model_layers(model: nn.Module) -> list[tuple[nn.Module, nn.Module | None]]:
    """(conv or linear module, the BatchNorm right after it or None) for every weight layer, in forward order."""
    leaves = [m for m in model.modules() if not list(m.children())]
    layers = []
    for i, m in enumerate(leaves):
        if isinstance(m, _WEIGHT_MODULES):
            after = leaves[i + 1] if i + 1 < len(leaves) else None
            layers.append((m, after if isinstance(after, _NORMS) else None))
    return layers


def apply_scheme(model: nn.Module, updates: tuple[LayerUpdate, ...]) -> list[nn.Parameter]:
    """Set ``requires_grad`` on every parameter by ``updates`` (one per weight layer: ``scheme.resolve(n)``); the
    trained parameters, in order. A weight ratio below 1 still trains the whole tensor here:
    :func:`mask_channel_gradients` then zeroes the channels left out."""
    layers = model_layers(model)
    if len(layers) != len(updates):
        raise WorkbenchError(f"the scheme has {len(updates)} layer updates, the model {len(layers)} weight layers")
    for p in model.parameters():
        p.requires_grad_(False)
    trained = []
    for (layer, norm), u in zip(layers, updates):
        wanted = [(layer.weight, u.ratio > 0), (layer.bias, u.bias)]
        if norm is not None:
            wanted += [(norm.weight, u.scale), (norm.bias, u.bias)]
        for p, on in wanted:
            if p is not None and on:
                p.requires_grad_(True)
                trained.append(p)
    return trained


def mask_channel_gradients(model: nn.Module, updates: tuple[LayerUpdate, ...]) -> None:
    """Zero the weight gradient of the input channels a ratio leaves out (the first ``kept_channels`` stay;
    a depthwise convolution's channels are its output channels)."""
    for (layer, _), u in zip(model_layers(model), updates):
        if 0 < u.ratio < 1 and layer.weight.grad is not None:
            depthwise = isinstance(layer, nn.Conv1d | nn.Conv2d) and layer.groups > 1
            dim = 0 if depthwise else 1
            channels = layer.weight.shape[dim]
            keep = kept_channels(channels, u.ratio)
            layer.weight.grad.narrow(dim, keep, channels - keep).zero_()


def make_optimizer(name: str, params, lr: float = 0.01) -> torch.optim.Optimizer:
    """``sgd`` (no momentum), ``momentum`` (SGD, 0.9) or ``adam``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise WorkbenchError(f"--optimizer: unknown optimizer {name!r} (accepted: sgd, momentum, adam)")


def measure_step(model: nn.Module, updates: tuple[LayerUpdate, ...], x: torch.Tensor,
                 optimizers: tuple[str, ...] = ("sgd",)) -> dict:
    """One training step of ``model`` (train mode) on batch ``x``; the bytes it kept: ``saved`` for backward,
    ``gradients``, ``weights`` (parameters and buffers) and ``optimizer_state`` per optimizer name (each steps
    once, on the same gradients, from a fresh state)."""
    model.train()
    trained = apply_scheme(model, updates)
    held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in held:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.float().square().mean().backward()
    mask_channel_gradients(model, updates)
    state = {}
    for name in optimizers:
        opt = make_optimizer(name, trained)
        opt.step()
        state[name] = sum(v.untyped_storage().nbytes() for s in opt.state.values() for v in s.values()
                          if torch.is_tensor(v))
    return {"saved": sum(storages.values()),
            "gradients": sum(p.grad.untyped_storage().nbytes() for p in trained if p.grad is not None),
            "weights": sum(t.untyped_storage().nbytes() for t in [*model.parameters(), *model.buffers()]),
            "optimizer_state": state}
