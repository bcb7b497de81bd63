"""Fake quantisation that simulates the deployed integer model, following an architecture's policy.

Why fake quantisation: the search scores the accuracy *of the model as deployed*, and an int8 or
int4-weight model on a microcontroller loses accuracy that an fp32 evaluation would hide. Rounding
weights and activations to the integer grid in float arithmetic (quantise → dequantise) reproduces
that error in PyTorch, both for post-training quantisation (PTQ) and for quantisation-aware
training (QAT), where gradients pass the rounding with a straight-through estimator (STE).

What is simulated, and why it matches the runtime:

* **Weights**: per-output-channel symmetric quantisation at the op's ``wbits`` (8 → codes in
  [-127, 127] as TFLite; 4 → codes in [-8, 7], at most 16 levels) with scale ``max|w| / qmax``. It is
  applied to the *unfolded* conv weight; since BatchNorm folding multiplies each output channel by one
  constant, per-channel symmetric rounding of the unfolded weight equals rounding the folded weight.
  Implemented with :mod:`torch.nn.utils.parametrize`, so ``module.weight`` is the quantised tensor
  everywhere (forward, ``state_dict`` export with ``original`` kept) and the optimiser updates the
  float latent weights (STE).
* **Activations**: 8-bit per-tensor affine quantisation (int8 with a zero point, the TFLite scheme)
  after every op and on the model input, because the runtime stores every op's output tensor in
  int8. Ranges come from min/max observers: an exponential moving average during QAT (batch ranges
  are noisy), the plain min/max over calibration batches for PTQ. For evaluation and export the
  ranges are frozen, as the deployed model's scales are constants.
* Biases stay in float (the runtime keeps them in int32 at ``scale_in * scale_w``, which is
  negligible error).

An fp32 architecture gets no quantisers: :func:`quantize_model` is a no-op for it.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.model.builder import OpModule, OpNet, build_model


def _weight_grid(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, int, int]:
    """(per-output-channel scale ``max|w| / qmax``, qmin, qmax) of ``bits``-bit symmetric weights:
    int8 codes in [-127, 127] as TFLite; int4 in [-8, 7] (at most 16 levels)."""
    qmax = 2 ** (bits - 1) - 1
    qmin = -(2 ** (bits - 1)) if bits < 8 else -qmax
    dims = tuple(range(1, w.dim()))
    return w.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-12) / qmax, qmin, qmax


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric fake quantisation (no STE; see :class:`WeightFakeQuant`)."""
    scale, qmin, qmax = _weight_grid(w, bits)
    return torch.clamp(torch.round(w / scale), qmin, qmax) * scale


def weight_codes(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The integer codes the runtime would store for ``w`` (for tests and exporters)."""
    scale, qmin, qmax = _weight_grid(w, bits)
    return torch.clamp(torch.round(w / scale), qmin, qmax).to(torch.int8)


class WeightFakeQuant(nn.Module):
    """Parametrisation ``weight = quant(latent)`` with a straight-through gradient."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = int(bits)
        self.enabled = True

    def forward(self, w):
        if not self.enabled:
            return w
        # STE: forward value is the quantised weight, gradient flows to the latent weight unchanged
        return w + (fake_quant_weight(w, self.bits) - w).detach()

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class ActFakeQuant(nn.Module):
    """8-bit per-tensor affine activation fake-quant with a min/max observer.

    ``observer`` is ``"ema"`` (QAT: running ranges updated every training forward),
    ``"minmax"`` (PTQ calibration: the extreme values seen) or ``None`` (frozen ranges).
    ``fake`` switches the quantise/dequantise itself (off while calibrating PTQ ranges, so the
    observed statistics are those of the float network). Observers never update in eval mode
    unless calibrating, so evaluating a QAT model cannot move its ranges.
    """

    def __init__(self, bits: int = 8, momentum: float = 0.1):
        super().__init__()
        self.bits = bits
        self.momentum = momentum
        self.observer: str | None = None
        self.fake = False
        self.calibrating = False
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    def _observe(self, x):
        lo, hi = x.detach().min(), x.detach().max()
        if not bool(self.initialized):
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            self.initialized.fill_(True)
        elif self.observer == "ema":
            self.min_val.lerp_(lo, self.momentum)
            self.max_val.lerp_(hi, self.momentum)
        else:
            self.min_val.copy_(torch.minimum(self.min_val, lo))
            self.max_val.copy_(torch.maximum(self.max_val, hi))

    def qparams(self) -> tuple[float, int]:
        """(scale, zero point) of the int8 grid covering [min, max] ∪ {0} (0 exactly representable)."""
        lo = min(float(self.min_val), 0.0)
        hi = max(float(self.max_val), 0.0)
        qmin, qmax = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        scale = max((hi - lo) / (qmax - qmin), 1e-8)
        zero = int(min(max(round(qmin - lo / scale), qmin), qmax))
        return scale, zero

    def forward(self, x):
        if self.observer is not None and (self.training or self.calibrating):
            self._observe(x)
        if not self.fake or not bool(self.initialized):
            return x
        scale, zero = self.qparams()
        qmin, qmax = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        # torch's fake-quant op has the STE gradient (passes inside the range, zero outside)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, qmin, qmax)

    def extra_repr(self) -> str:
        state = "frozen" if self.observer is None else self.observer
        return f"bits={self.bits}, observer={state}, fake={self.fake}, range=[{float(self.min_val):.3g}, {float(self.max_val):.3g}]"


QUANTISABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)  # the layers whose weights get a quantiser


def _quantisable(module: OpModule):
    for m in module.modules():
        if isinstance(m, QUANTISABLE):
            yield m


def quantize_model(model: OpNet, arch=None, mode: str | None = None) -> OpNet:
    """Insert fake quantisation per ``arch``'s policy, in place; returns the model.

    fp32 architectures are left untouched. Weight quantisers are at each op's ``wbits``; activation
    quantisers (8-bit) go after every op and on the input. ``mode`` (default ``arch.quant_mode``)
    sets the observers: ``"qat"`` → EMA observers with fake quant on (ready to train);
    ``"ptq"`` → min/max observers with fake quant off, awaiting :func:`calibrate`;
    ``"frozen"`` → observers off, fake quant on (for loading a trained quantised ``state_dict``,
    whose ``min_val``/``max_val`` buffers then hold the deployed ranges).
    Calling it twice is harmless (already-quantised layers are skipped).
    """
    arch = arch or model.arch
    if arch.precision == "fp32":
        return model
    mode = mode or arch.quant_mode
    for block in model.blocks:
        op = block.op
        if op.wbits < 32:
            for layer in _quantisable(block):
                if not parametrize.is_parametrized(layer, "weight"):
                    parametrize.register_parametrization(layer, "weight", WeightFakeQuant(op.wbits))
    if isinstance(model.input_quant, nn.Identity):
        model.input_quant = ActFakeQuant(arch.activation_bits)
    for i, (block, q) in enumerate(zip(model.blocks, model.act_quant)):
        if isinstance(q, nn.Identity) and block.op.abits < 32:
            model.act_quant[i] = ActFakeQuant(block.op.abits)
    for q in act_quantizers(model):
        if mode == "qat":
            q.observer, q.fake = "ema", True
        elif mode == "frozen":
            q.observer, q.fake = None, True
        else:
            q.observer, q.fake = "minmax", False
    return model


def act_quantizers(model: nn.Module) -> list[ActFakeQuant]:
    return [m for m in model.modules() if isinstance(m, ActFakeQuant)]


def weight_quantizers(model: nn.Module) -> list[WeightFakeQuant]:
    return [m for m in model.modules() if isinstance(m, WeightFakeQuant)]


def is_quantized(model: nn.Module) -> bool:
    return bool(act_quantizers(model) or weight_quantizers(model))


def freeze(model: nn.Module) -> nn.Module:
    """Stop every observer and turn fake quant on: ranges become the deployed constants."""
    for q in act_quantizers(model):
        q.observer, q.fake, q.calibrating = None, True, False
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches, *, reset: bool = True) -> nn.Module:
    """PTQ: run ``batches`` (tensors already shaped for the model) through the float activations,
    record each tensor's min/max, then :func:`freeze`. Weight fake quant stays on, as deployed.
    """
    quants = act_quantizers(model)
    was_training = model.training
    model.eval()  # BN uses its running statistics, as the folded deployed model does
    for q in quants:
        q.observer, q.fake, q.calibrating = "minmax", False, True
        if reset:
            q.initialized.fill_(False)
    for x in batches:
        model(x)
    freeze(model)
    model.train(was_training)
    return model


@contextmanager
def quant_disabled(model: nn.Module):
    """Temporarily evaluate the float model (fake quant of weights and activations off)."""
    wq, aq = weight_quantizers(model), act_quantizers(model)
    saved = [q.fake for q in aq]
    for q in wq:
        q.enabled = False
    for q in aq:
        q.fake = False
    try:
        yield model
    finally:
        for q in wq:
            q.enabled = True
        for q, f in zip(aq, saved):
            q.fake = f


# ---------------------------------------------------------------- the deployed model

def saved_quantized(state: dict) -> bool:
    """Was ``state`` saved from a fake-quantised model (parametrised weights, activation ranges)?"""
    return any(".parametrizations." in key or key.endswith(".min_val") for key in state)


def float_state_dict(model: nn.Module) -> dict:
    """``model``'s state with the fake quantisation taken out: each quantised layer's float latent
    weight under its plain name, no activation-quantiser buffers. Loads into an unquantised build."""
    quantisers = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, ActFakeQuant))
    state = {key: value for key, value in model.state_dict().items() if not key.startswith(quantisers)}
    for name, layer in model.named_modules():
        if parametrize.is_parametrized(layer, "weight"):
            del state[f"{name}.parametrizations.weight.original"]
            state[f"{name}.weight"] = layer.parametrizations.weight.original.detach()
    return state


def deployable_model(model: OpNet, arch=None) -> OpNet:
    """A new model of ``arch`` as deployed: fake quant stripped (float latent weights kept),
    BatchNorm folded into the preceding convolution or linear layer, eval mode. Every export format
    starts from it (each converter's own quantiser produces the integers).

    Built fresh from :func:`float_state_dict` rather than by deep-copying: a parametrised module's
    class is shared with its copies, so removing the copy's parametrisation would break ``model``.
    """
    arch = arch or model.arch
    fresh = build_model(arch)
    fresh.load_state_dict(float_state_dict(model))
    fresh.eval()
    for seq in [m for m in fresh.modules() if isinstance(m, nn.Sequential)]:
        fold_batchnorm(seq)
    return fresh


def fold_batchnorm(seq: nn.Sequential) -> None:
    """Fold every BatchNorm of ``seq`` into the conv/linear layer before it, in place (eval statistics);
    the BatchNorm becomes an Identity."""
    from torch.nn.utils.fusion import (  # heavy: torch
        fuse_conv_bn_eval,
        fuse_linear_bn_eval,
    )

    children = list(seq)
    for i in range(len(children) - 1):
        layer, bn = children[i], children[i + 1]
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            seq[i] = fuse_conv_bn_eval(layer, bn)
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):  # linear_relu (MLP layers)
            seq[i] = fuse_linear_bn_eval(layer, bn)
        else:
            continue
        seq[i + 1] = nn.Identity()


def layer_bits(model: OpNet) -> dict[str, int]:
    """State-dict weight name → the policy's weight bits (each op module's ``op.wbits``)."""
    out = {}
    for i, block in enumerate(getattr(model, "blocks", [])):
        for name, layer in block.named_modules():
            if isinstance(layer, QUANTISABLE):
                out[f"blocks.{i}.{name}.weight"] = int(block.op.wbits)
    return out


def on_policy_grid(deploy: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of the deployable model whose weights sit on their policy's integer grid — the values
    the search scored (:func:`fake_quant_weight` of the folded weight, which equals folding the
    scored weight: per-channel symmetric rounding commutes with BatchNorm's per-channel scale).
    Quantised formats start from it, so a converter that stores a 4-bit stage as int8 (TFLite) keeps
    the scored weights instead of re-rounding the float latent ones; converters on the same grid
    (int8 everywhere, ONNX int4 via its overrides) store the same codes either way.
    """
    snapped = {key: fake_quant_weight(value, bits[key]) if bits.get(key, 32) < 32 else value
               for key, value in deploy.state_dict().items()}
    twin = copy.deepcopy(deploy)  # a fresh build (see deployable_model): no parametrisations to share
    twin.load_state_dict(snapped)
    return twin.eval()
