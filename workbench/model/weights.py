"""Reading a saved ``state_dict`` (``--weights``) safely, and loading it into a trial's architecture; and
seeded random weights for a model whose values do not matter (memory and latency measurements).

``torch.load(weights_only=True)`` refuses pickled code without running it, but says so in a
paragraph (and may warn about the pickle protocol on stderr): every refusal here is one line. The
file and the sizes its zip members declare are capped before torch reads it.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from workbench._infra.errors import WorkbenchError
from workbench._infra.safeio import MAX_WEIGHTS_BYTES, check_file_size, check_zip_members, one_line
from workbench.model.arch import Architecture
from workbench.model.builder import build_model
from workbench.model.quant import deployable_model, freeze, quantize_model, saved_quantized


def load_weights(arch: Architecture, path: str | Path) -> nn.Module:
    """``build_model(arch)`` with a saved ``state_dict`` (plain or fake-quantised) loaded."""
    state = read_state_dict(Path(path))
    model = build_model(arch)
    quantized = saved_quantized(state)
    if quantized:
        quantize_model(model, arch, "ptq")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        raise WorkbenchError(f"does not fit trial's architecture: {' '.join(first[:3])[:300]}",
                             where=str(path)) from None
    if quantized:
        freeze(model)  # the saved ranges are the deployed constants: evaluate as deployed
    return model.eval()


def read_state_dict(path: Path) -> dict:
    """A ``state_dict`` file read as tensors only, every failure in one line.

    Keys must be names and values tensors (a state dict with integer keys is somebody else's file).
    """
    if not path.is_file():
        raise WorkbenchError("weights file does not exist" if not path.exists() else "not a regular file",
                             where=str(path))
    check_file_size(path, MAX_WEIGHTS_BYTES, "a weights file")
    check_zip_members(path, MAX_WEIGHTS_BYTES, "a weights file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors vary
        reason = _unpickling_reason(exc)
        raise WorkbenchError(f"refused: not a plain tensor state dict, nothing in it was run "
                             f"({type(exc).__name__}: {reason[:160]})", where=str(path)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WorkbenchError(f"expected a state dict, got {type(state).__name__}", where=str(path))
    for key, value in state.items():
        if not isinstance(key, str):
            raise WorkbenchError(f"state dict key {key!r:.40} is not a parameter name (a {type(key).__name__})",
                                 where=str(path))
        if not isinstance(value, torch.Tensor):
            raise WorkbenchError(f"state dict entry {key[:80]!r} is a {type(value).__name__}, not a tensor",
                                 where=str(path))
    return state


def _unpickling_reason(exc: Exception) -> str:
    """The one sentence of torch's weights-only refusal that says what was refused (a global, an opcode)."""
    for line in str(exc).splitlines():
        found = re.search(r"((?:Unsupported|Trying to load unsupported)\b.*?)(?:\. |\.$|$)", line.strip())
        if found:
            return found.group(1)
    return one_line(exc)


def random_deployable_model(arch: Architecture, seed: int) -> nn.Module:
    """The deployable model of ``arch`` with seeded random weights and BatchNorm statistics (so the folded
    biases are as distinct as a trained model's): what a memory or latency measurement runs, no training."""
    torch.manual_seed(seed)
    model = build_model(arch)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return deployable_model(model, arch)
