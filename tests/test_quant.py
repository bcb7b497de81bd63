"""Fake quantisation: weight grids at 8/4 bits, STE gradients, activation observers and the policy."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.builder import build_model, deployed_params
from workbench.quant import (ActFakeQuant, WeightFakeQuant, act_quantizers, calibrate, fake_quant_weight, freeze,
                             is_quantized, quant_disabled, quantize_model, weight_codes, weight_quantizers)
from workbench.space import load_space


def _arch(space, precision, mode=None, seed=0):
    for arch in load_space(space).random_archs(200, seed=seed):
        if arch.precision == precision and (mode is None or arch.quant_mode == mode):
            return arch
    raise AssertionError("no such arch sampled")


def test_int4_weights_have_at_most_16_levels():
    w = torch.randn(8, 16, 3, 3)
    codes = weight_codes(w, 4)
    assert codes.min() >= -8 and codes.max() <= 7
    assert 8 < len(torch.unique(codes)) <= 16
    q = fake_quant_weight(w, 4)
    for c in range(8):
        assert 8 < len(torch.unique(q[c])) <= 16
    assert (q - w).abs().max() < w.abs().max() / 7  # within one step of the grid


def test_int8_weights_have_at_most_256_levels():
    w = torch.randn(4, 512)
    q = fake_quant_weight(w, 8)
    for c in range(4):
        levels = len(torch.unique(q[c]))
        assert 16 < levels <= 256
    assert len(torch.unique(weight_codes(w, 8))) <= 256
    torch.testing.assert_close(q, w, atol=float(w.abs().max()) / 127, rtol=0)


def test_weight_parametrisation_is_straight_through():
    conv = nn.Conv2d(3, 4, 3)
    latent = conv.weight
    parametrize.register_parametrization(conv, "weight", WeightFakeQuant(4))
    assert conv.parametrizations.weight.original is latent  # optimiser keeps its parameter
    x = torch.randn(2, 3, 5, 5)
    conv(x).sum().backward()
    # STE: the latent gradient equals the gradient w.r.t. the (quantised) weight used in forward
    w_q = conv.weight.detach().requires_grad_()
    nn.functional.conv2d(x, w_q, conv.bias).sum().backward()
    torch.testing.assert_close(latent.grad, w_q.grad)


def test_fp32_arch_is_left_alone():
    arch = _arch("vision", "fp32")
    model = quantize_model(build_model(arch), arch)
    assert not is_quantized(model)


def test_policy_bits_per_op():
    arch = _arch("sensor-imu", "int8")
    model = quantize_model(build_model(arch), arch)
    for block in model.blocks:
        for m in block.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                assert parametrize.is_parametrized(m, "weight")
                assert m.parametrizations.weight[0].bits == block.op.wbits
    assert len(act_quantizers(model)) == len(arch.ops) + 1  # after every op and on the input
    assert deployed_params(model) == arch.n_params
    assert {q.bits for q in weight_quantizers(model)} == {b.op.wbits for b in model.blocks if b.op.kind in ("conv1d", "linear")}


def test_ptq_calibration_then_frozen_int8_activations():
    torch.manual_seed(0)
    arch = _arch("sensor-imu", "int8", "ptq")
    model = quantize_model(build_model(arch), arch, "ptq")
    x = torch.randn(64, *arch.input_shape)
    calibrate(model, [x[:32], x[32:]])
    q = act_quantizers(model)
    assert all(a.observer is None and a.fake for a in q)
    lo, hi = float(q[0].min_val), float(q[0].max_val)
    assert lo == float(x.min()) and hi == float(x.max())  # min/max over all calibration batches
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert len(torch.unique(out)) <= 256
        model.train()
        model(x * 10)  # frozen: training-mode forwards do not move the ranges
    assert float(q[0].max_val) == hi
    model.eval()
    with torch.no_grad():
        quantised = model(x)
        with quant_disabled(model):
            assert not torch.equal(model(x), quantised)  # the float path differs
        torch.testing.assert_close(model(x), quantised)  # and quantisation is restored after
    assert all(a.fake for a in q)


def test_qat_observers_track_ema_and_train():
    torch.manual_seed(0)
    arch = _arch("sensor-imu", "int8", "qat")
    model = quantize_model(build_model(arch), arch)
    q = model.input_quant
    assert isinstance(q, ActFakeQuant) and q.observer == "ema" and q.fake
    model.train()
    model(torch.randn(16, *arch.input_shape))
    first = float(q.max_val)
    model(torch.randn(16, *arch.input_shape) * 4)
    assert first < float(q.max_val) < 4 * first  # moved towards the new range, not jumped
    model.eval()
    before = float(q.max_val)
    model(torch.randn(16, *arch.input_shape) * 100)
    assert float(q.max_val) == before  # eval forwards never update observers
    out = model(torch.randn(4, *arch.input_shape))
    out.sum().backward()  # gradients flow through fake quant
    freeze(model)
    assert q.observer is None


def test_act_fake_quant_grid_contains_zero():
    aq = ActFakeQuant()
    aq.observer, aq.fake = "minmax", True
    aq.train()
    x = torch.linspace(0.5, 6.0, 1000)
    y = aq(x)
    scale, zero = aq.qparams()
    assert len(torch.unique(y)) <= 256
    assert torch.all(torch.abs(y - x) <= scale / 2 + 1e-6)
    assert aq(torch.zeros(3)).abs().max() == 0
