"""Training-free accuracy proxies: rank architectures in milliseconds instead of minutes.

- NASWOT (Mellor et al., ICML 2021): log-determinant of the kernel of ReLU activation patterns over a
  mini-batch — networks that separate inputs into distinct linear regions tend to train better.
- SynFlow (Tanaka et al., NeurIPS 2020): data-free sum of |θ · ∂R/∂θ| with all-ones input and
  |θ| weights — a measure of the trainable capacity that flows through the network.

They drive the search-quality benchmark and fast, training-free searches.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.model.builder import build_model


def naswot(arch, batch: torch.Tensor, seed: int = 0) -> float:
    """NASWOT score of a freshly initialised ``arch`` on ``batch`` (already fitted to its input shape)."""
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    n = batch.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module, inputs, output):
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign > 0 else float("-inf")


def synflow(arch, seed: int = 0) -> float:
    """SynFlow score (log10) of ``arch``: data-free, BatchNorm in eval mode, weights made positive.

    float32 (float64 convolutions have no fast CPU kernels; these nets are shallow enough not to overflow).
    """
    torch.manual_seed(seed)
    model = _linearised(build_model(arch).eval())
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    out = model(torch.ones(1, *arch.input_shape))
    out.sum().backward()
    with torch.no_grad():
        total = sum(float((p * p.grad).abs().sum(dtype=torch.float64)) for p in model.parameters()
                    if p.grad is not None)
    return float(np.log10(total)) if 0 < total < float("inf") else float("-inf")


NASWOT_SAMPLES = 64  # training samples the NASWOT evaluator scores on


def synflow_score(arch, data, *, seed: int = 0) -> float:
    """SynFlow as the ``synflow`` evaluator measures it (``data`` unused: the score is data-free)."""
    return synflow(arch, seed=seed)


def naswot_score(arch, data, *, seed: int = 0) -> float:
    """NASWOT as the ``naswot`` evaluator measures it: on the first training samples of ``data`` (a
    :class:`workbench.model.data.Dataset`), fitted to the architecture's input."""
    return naswot(arch, data.adapted(arch.input_shape)[0][:NASWOT_SAMPLES], seed=seed)


def _linearised(model: nn.Module) -> nn.Module:
    """Swap activations for identities: SynFlow's all-positive network must not clip (ReLU6 saturates at 6)."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                setattr(module, name, nn.Identity())
    return model
